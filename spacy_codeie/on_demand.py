"""The `codeie_ondemand` component: a user's instruction and column names in, a table on the Doc out.

The whole doc is one prompt in an on-demand style (ADELIE's by default): a table draws on the whole text,
which a window would cut. The answer's table is read into the columns asked for, each cell kept as text and
found in the doc where it occurs (see open_annotations.Table).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from .alignment import ALIGNMENT_MODES, AlignmentMode, token_span
from .errors import CodeIEError
from .open_alignment import CellAligner
from .open_annotations import ONDEMAND_DIAGNOSTICS_KEY, phrase_record, register_table_extension, set_table_record
from .prompting.adelie_open import NONE_VALUES
from .prompting.style import OnDemandStyle
from .prompting_pipe import LLMModel, PromptingPipe

DIAGNOSTIC_FIELDS = ("prompts", "empty_completions", "truncated", "no_table", "rows", "ragged_rows",
                     "missing_columns", "extra_columns", "positional_header", "empty_rows", "cells", "unaligned",
                     "misaligned")

DEFAULT_CONFIG = {
    "model": {"@llm_models": "spacy_codeie.DefaultModel.v1", "max_new_tokens": 512},
    "prompt": {"@misc": "spacy_codeie.ADELIEOnDemandPrompt.v1"},
    "extension": "table",
    "alignment_mode": "expand",
}


@Language.factory("codeie_ondemand", default_config=DEFAULT_CONFIG, assigns=["doc._.table"])
def make_ondemand(
    nlp: Language,
    name: str,
    instruction: str,
    columns: List[str],
    model: LLMModel,
    prompt: Any,  # checked in OnDemand, which names what it expects
    extension: str,
    alignment_mode: AlignmentMode,
) -> "OnDemand":
    return OnDemand(nlp.vocab, name=name, instruction=instruction, columns=columns, model=model, prompt=prompt,
                    extension=extension, alignment_mode=alignment_mode)


def check_columns(name: str, columns: Sequence[str]) -> Tuple[str, ...]:
    """The column names, or an error naming what to fix: none, an empty one, or two that read the same."""
    if isinstance(columns, str) or not columns:
        raise CodeIEError(f'The {name!r} component needs its columns as a list of names, e.g. columns = ["Drug", '
                          '"Side effect"].')
    seen: Dict[str, str] = {}
    out = []
    for column in columns:
        if not isinstance(column, str) or not column.strip():
            raise CodeIEError(f"The {name!r} component's columns must be non-empty strings; {column!r} is not one.")
        key = " ".join(column.split()).casefold()
        if key in seen:
            raise CodeIEError(f"The {name!r} component's columns {seen[key]!r} and {column!r} read the same, so an "
                              "answer could not tell them apart. Give them different names.")
        seen[key] = column
        out.append(column.strip())
    return tuple(out)


class OnDemand(PromptingPipe):
    """Fills a table of the columns asked for from each doc, following the user's instruction."""

    def __init__(self, vocab, *, name: str = "codeie_ondemand", instruction: str, columns: Sequence[str],
                 model: LLMModel, prompt: Any, extension: str = "table", alignment_mode: AlignmentMode = "expand"):
        super().__init__(vocab, name=name, model=model)
        if not isinstance(instruction, str) or not instruction.strip():
            raise CodeIEError(f"The {name!r} component needs an instruction: what the table should gather, e.g. "
                              'instruction = "List the drugs the text mentions and their side effects."')
        if not isinstance(prompt, OnDemandStyle) or getattr(prompt, "task", None) != "on_demand":
            raise CodeIEError(
                f"The {name!r} component's 'prompt' must be an on-demand style such as "
                f'{{"@misc": "spacy_codeie.ADELIEOnDemandPrompt.v1"}}, not {type(prompt).__name__}. Open-IE styles '
                "belong to the 'codeie_openie' component, closed-IE styles to 'codeie'."
            )
        if alignment_mode not in ALIGNMENT_MODES:
            raise CodeIEError(f"alignment_mode={alignment_mode!r} is not one of {ALIGNMENT_MODES}.")
        register_table_extension(extension)
        self.prompt: OnDemandStyle = prompt
        self.instruction = instruction.strip()
        self.columns = check_columns(name, columns)
        self.cfg: Dict[str, Any] = {"extension": extension, "alignment_mode": alignment_mode}

    def plan(self, doc: Doc) -> Tuple[List[str], None]:
        return [self.prompt.render_prompt(self.instruction, self.columns, doc.text)], None

    def annotate(self, doc: Doc, plan: None, answers: List[str]) -> None:
        diag: Counter = Counter(prompts=len(answers))
        rows = []
        aligner = CellAligner(doc.text)
        for answer in answers:
            parsed = self.prompt.parse(answer, self.columns)
            diag["empty_completions"] += parsed.empty
            diag["truncated"] += parsed.truncated and not parsed.empty
            for key in ("no_table", "ragged_rows", "missing_columns", "extra_columns", "positional_header",
                        "empty_rows"):
                diag[key] += getattr(parsed, key)
            for row in parsed.rows:
                rows.append([self._cell(doc, aligner, column, text, diag) for column, text in enumerate(row)])
        diag["rows"] = len(rows)
        set_table_record(doc, {"instruction": self.instruction, "columns": list(self.columns), "rows": rows},
                         self.cfg["extension"])
        doc.user_data[ONDEMAND_DIAGNOSTICS_KEY] = {key: int(diag.get(key, 0)) for key in DIAGNOSTIC_FIELDS}

    def _cell(self, doc: Doc, aligner: CellAligner, column: int, text: str, diag: Counter) -> List[Any]:
        if text.casefold() in NONE_VALUES:  # "N/A", "-": an empty cell, not a string to look for
            return phrase_record(text, None)
        diag["cells"] += 1
        found = aligner.align(column, text)
        if found is None:
            diag["unaligned"] += 1
            return phrase_record(text, None)
        span = token_span(doc, found[0], found[1], self.columns[column], self.cfg["alignment_mode"])
        diag["misaligned"] += span is None
        return phrase_record(text, span)
