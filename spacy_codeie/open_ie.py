"""The `codeie_openie` component: schema-free (subject; predicate; object; time; location) tuples on the Doc.

Each window of the doc is one prompt in an open-IE style (ADELIE's by default); the answer's tuples are read
as strings, their parts found in the window, and stored as offsets under `doc._.<extension>` (see
open_annotations.py). A part not found in the text keeps its text with no span.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example

from .alignment import ALIGNMENT_MODES, AlignmentMode, token_span
from .errors import CodeIEError
from .open_alignment import TupleAligner
from .open_annotations import (
    OPENIE_DIAGNOSTICS_KEY,
    phrase_record,
    register_triples_extension,
    set_triple_records,
)
from .prompting.style import OpenIEStyle
from .prompting_pipe import LLMModel, PromptingPipe
from .windows import split_windows

DIAGNOSTIC_FIELDS = ("windows", "skipped_windows", "prompts", "empty_completions", "truncated", "tuples",
                     "unparseable", "duplicates", "parts", "unaligned", "misaligned")

DEFAULT_CONFIG = {
    # The base instruct model, not an adapter: the shipped adapters were tuned to closed-IE code formats.
    "model": {"@llm_models": "spacy_codeie.DefaultModel.v1"},
    "prompt": {"@misc": "spacy_codeie.ADELIEOpenIEPrompt.v1"},
    "extension": "triples",
    "window_size": 1000,
    "alignment_mode": "expand",
    "scorer": {"@scorers": "spacy_codeie.openie_scorer.v1"},
}


@Language.factory(
    "codeie_openie",
    default_config=DEFAULT_CONFIG,
    assigns=["doc._.triples"],
    default_score_weights={"openie_exact_f": 1.0, "openie_exact_p": 0.0, "openie_exact_r": 0.0,
                           "openie_text_f": 0.0},
)
def make_openie(
    nlp: Language,
    name: str,
    model: LLMModel,
    prompt: Any,  # checked in OpenIE, which names what it expects
    extension: str,
    window_size: int,
    alignment_mode: AlignmentMode,
    scorer: Optional[Callable],
) -> "OpenIE":
    return OpenIE(nlp.vocab, name=name, model=model, prompt=prompt, extension=extension, window_size=window_size,
                  alignment_mode=alignment_mode, scorer=scorer)


class OpenIE(PromptingPipe):
    """Extracts schema-free tuples by prompting a model, one prompt per window."""

    def __init__(self, vocab, *, name: str = "codeie_openie", model: LLMModel, prompt: Any,
                 extension: str = "triples", window_size: int = 1000, alignment_mode: AlignmentMode = "expand",
                 scorer: Optional[Callable] = None):
        super().__init__(vocab, name=name, model=model)
        if not isinstance(prompt, OpenIEStyle) or getattr(prompt, "task", None) != "open_ie":
            raise CodeIEError(
                f"The {name!r} component's 'prompt' must be an open-IE style such as "
                f'{{"@misc": "spacy_codeie.ADELIEOpenIEPrompt.v1"}}, not {type(prompt).__name__}. Closed-IE styles '
                "(ADELIEPrompt.v1, KnowCoderPrompt.v1, ...) belong to the 'codeie' component."
            )
        if window_size < 1:
            raise CodeIEError(f"The {name!r} component's window_size must be a positive number of characters.")
        if alignment_mode not in ALIGNMENT_MODES:
            raise CodeIEError(f"alignment_mode={alignment_mode!r} is not one of {ALIGNMENT_MODES}.")
        register_triples_extension(extension)
        self.prompt: OpenIEStyle = prompt
        self.cfg: Dict[str, Any] = {"extension": extension, "window_size": window_size,
                                    "alignment_mode": alignment_mode}
        self.scorer = scorer

    def plan(self, doc: Doc) -> Tuple[List[str], Tuple[List[Span], Counter]]:
        diag: Counter = Counter()
        size = self.cfg["window_size"]
        windows = []
        for window in split_windows(doc, size):
            diag["windows"] += 1
            if len(window.text) > size:  # one token longer than the window: never cut, counted
                diag["skipped_windows"] += 1
                continue
            windows.append(window)
        prompts = [self.prompt.render_prompt(window.text) for window in windows]
        diag["prompts"] = len(prompts)
        return prompts, (windows, diag)

    def annotate(self, doc: Doc, plan: Tuple[List[Span], Counter], answers: List[str]) -> None:
        windows, diag = plan
        records: Dict[Any, Dict[str, Any]] = {}
        for window, answer in zip(windows, answers):
            parsed = self.prompt.parse(answer)
            diag["empty_completions"] += parsed.empty
            diag["truncated"] += parsed.truncated and not parsed.empty
            diag["unparseable"] += parsed.unparseable
            aligner = TupleAligner(window.text)
            seen = set()
            for tup in parsed.tuples:
                if tup in seen:
                    diag["duplicates"] += 1
                    continue
                seen.add(tup)
                record = self._record(doc, window, tup.parts(), aligner.align(tup), diag)
                key = _freeze(record)
                if key in records:
                    diag["duplicates"] += 1
                    continue
                records[key] = record
                diag["tuples"] += 1
        set_triple_records(doc, list(records.values()), self.cfg["extension"])
        doc.user_data[OPENIE_DIAGNOSTICS_KEY] = {key: int(diag.get(key, 0)) for key in DIAGNOSTIC_FIELDS}

    def _record(self, doc: Doc, window: Span, parts, placed, diag: Counter) -> Dict[str, Any]:
        record: Dict[str, Any] = {}
        for name, text in parts:
            if not text:
                record[name] = None
                continue
            diag["parts"] += 1
            span = None
            found = placed.get(name)
            if found is None:
                diag["unaligned"] += 1
            else:
                start, end = found[0] + window.start_char, found[1] + window.start_char
                span = token_span(doc, start, end, name, self.cfg["alignment_mode"])
                diag["misaligned"] += span is None
            record[name] = phrase_record(text, span)
        return record

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
        if self.scorer is None:
            return {}
        return self.scorer(examples, extension=self.cfg["extension"], **kwargs)


def _freeze(record: Dict[str, Any]) -> Tuple:
    return tuple((name, tuple(part) if part is not None else None) for name, part in sorted(record.items()))
