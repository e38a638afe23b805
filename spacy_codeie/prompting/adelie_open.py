"""ADELIE's open-IE and on-demand-IE formats: prompts in Tulu's layout, answers read back as plain strings.

Taken from THU-KEG/ADELIE at commit 70f01ff0 (facts, not code):

- Open IE (IEInstruct's OPENIE task; `scripts/tasks/openie4/load_data_fs.py` for training, `ROBUST/` for the
  test set): an instruction of `scripts/tasks/instructions.json` "OPENIE" with the answer form of
  `scripts/tasks/ROBUST/desc.py` OUTPUT_BASE[0] appended and the text in its `<text>` slot as `Text: '...'`.
  The answer is `[Answer]: ` and one `(predicate; subject; object; time; location); ` a line, the parts that
  do not exist left out (so three parts are read as predicate, subject, object); "nothing" is `NA` or the
  instruction's own sentence ("No tuples found.").
- On-demand IE (`scripts/tasks/ondemandie/load_data_fs.py`, test rows in
  `unified_data/test_format/zeroshot/ondemand.jsonl`): a system message, then the user's instruction, a blank
  line and `Text: ` with the text; the answer is `[Answer]: ` and a markdown table. ADELIE's instructions name
  the wanted columns in prose; this style can add the header the caller asks for (`columns_sentence`).

Answers are untrusted: they are cut to a bounded size and split with string operations, never executed.
"""
from __future__ import annotations

import re
from typing import ClassVar, Dict, Iterable, List, Literal, Optional, Sequence, Tuple

from spacy.util import registry

from ..errors import SchemaError
from ..instances import TUPLE_PARTS, TableParse, TupleInstance, TupleParse
from ._untrusted import clip
from .adelie import ANSWER, NO_ANSWER, answer_body, place_text, says_nothing, tulu_chat

ChatFormat = Literal["tulu", "none"]

# instructions.json "OPENIE"[0][0] and ROBUST/desc.py OUTPUT_BASE[0][0] (the form used for ADELIE's test set).
OPENIE_INSTRUCTION = (
    "Open information extraction requires the extraction of all relations in the sentence, i.e., predicates, the "
    "subjects and objects corresponding to these relations, and the possible time and place thesis elements. "
    "Please extract all the relational tuples in the following sentence: <text>. If there are no relations in the "
    'text, please answer "NA".'
)
OPENIE_FORM = ('Please give the answer in the tuple form "[Answer]: ({predicate}; {subject}; {object}; {time}; '
               '{location})\n". If one or more of the last three elements does not exist, it can be omitted.')
# The "nothing found" answers of the OPENIE instructions (second column of instructions.json), lower-cased.
OPENIE_NOTHING = frozenset({
    "na", "no tuples", "there are no possible relational tuples", "no tuples found", "no relational tuples identified",
    "no tuples to report", "no relationships identified", "relationships not found", "extracted tuples not available",
    "tuples cannot be extracted", "unable to extract tuples", "extraction of tuples is not possible",
    "tuples not found", "no identifiable tuples", "extraction failed",
})
# The order ADELIE writes a tuple's parts in (predicate first).
ANSWER_ORDER = ("predicate", "subject", "object", "time", "location")
# ondemandie/load_data_fs.py's system message.
ONDEMAND_SYSTEM = ("You are a helpful assistant. Follow the user instruction to extract information from the given "
                   "text into a concise markdown table.")
# Ours, not ADELIE's: how the columns asked for are added to the instruction ("" adds nothing).
COLUMNS_SENTENCE = "Use this table header: <columns>"
NONE_VALUES = frozenset({"", "none", "null", "n/a", "na", "-", "--", "\u2014"})
_PLACEHOLDERS = frozenset(TUPLE_PARTS) | {"relation"}
_SEPARATOR_CELL = re.compile(r"^:?-+:?$")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _is_nothing(body: str) -> bool:
    plain = " ".join(body.split()).strip(" .'\"").casefold()
    return plain in OPENIE_NOTHING or says_nothing(body)


class ADELIEOpenIEPrompt:
    """ADELIE's open-IE prompt in Tulu's chat layout, and the reader of its tuple answers."""

    registry_name: ClassVar[str] = "spacy_codeie.ADELIEOpenIEPrompt.v1"
    task: ClassVar[str] = "open_ie"

    def __init__(self, instruction: str = OPENIE_INSTRUCTION, chat_format: ChatFormat = "tulu"):
        if chat_format not in ("tulu", "none"):
            raise SchemaError(f"ADELIEOpenIEPrompt chat_format must be 'tulu' or 'none', not {chat_format!r}.")
        if not instruction.strip():
            raise SchemaError("ADELIEOpenIEPrompt needs an instruction; leave the setting out to use ADELIE's.")
        # Another of IEInstruct's OPENIE instructions may suit a checkpoint better; the answer form stays.
        self.instruction = instruction
        self.chat_format = chat_format

    def render_user(self, text: str) -> str:
        return place_text(self.instruction + OPENIE_FORM, text)

    def render_prompt(self, text: str) -> str:
        user = self.render_user(text)
        return user if self.chat_format == "none" else tulu_chat([(user, None)])

    def render_completion(self, tuples: Iterable[TupleInstance]) -> str:
        """The answer a perfect model gives: the SFT target, and what `parse` reads back."""
        lines = []
        for t in tuples:
            parts = [getattr(t, name) for name in ANSWER_ORDER]
            lines.append("(" + "; ".join(p for p in parts if p) + "); \n")
        return ANSWER + ("".join(lines) if lines else NO_ANSWER)

    def parse(self, completion: str) -> TupleParse:
        result = TupleParse()
        completion, result.truncated = clip(completion or "")
        body = answer_body(completion)
        result.empty = not body
        outside: List[str] = []
        for line in body.splitlines():
            groups, rest, unclosed = _top_level_groups(line)
            outside.append(rest)
            result.unparseable += unclosed
            for group in groups:
                found = _read_tuple(group)
                if found is None:
                    result.unparseable += 1
                else:
                    result.tuples.append(found)
        leftover = " ".join(outside).strip(" \t;,.")
        if leftover and not _is_nothing(leftover):
            result.unparseable += 1
        return result


def _top_level_groups(line: str) -> Tuple[List[str], str, bool]:
    """The insides of the line's outermost (...) groups, the text outside them, and whether one is left open."""
    groups: List[str] = []
    outside: List[str] = []
    depth = start = 0
    for i, ch in enumerate(line):
        if ch == "(":
            if depth == 0:
                start = i + 1
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                groups.append(line[start:i])
        elif depth == 0:
            outside.append(ch)
    return groups, "".join(outside), depth > 0


def _read_tuple(group: str) -> Optional[TupleInstance]:
    """`predicate; subject[; object[; time[; location]]]`, or the same parts named (`subject: Ada; ...`)."""
    parts = [p.strip() for p in group.split(";")]
    if parts and not parts[-1]:
        parts.pop()  # "(a; b; c;)"
    if not 2 <= len(parts) <= len(ANSWER_ORDER):
        return None
    if all(p.strip("{} ").casefold() in _PLACEHOLDERS for p in parts):
        return None  # the answer form echoed back, "(predicate; subject; object)": small models do
    named: Dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition(":")
        if sep and key.strip().casefold() in TUPLE_PARTS and key.strip().casefold() not in named:
            named[key.strip().casefold()] = value.strip()
    values = named if len(named) == len(parts) else dict(zip(ANSWER_ORDER, parts))
    clean = {name: ("" if values.get(name, "").casefold() in NONE_VALUES else values.get(name, ""))
             for name in TUPLE_PARTS}
    if not clean["subject"] or not clean["predicate"]:
        return None
    return TupleInstance(**clean)


class ADELIEOnDemandPrompt:
    """ADELIE's on-demand-IE prompt (system message, instruction, text) and the reader of its markdown tables."""

    registry_name: ClassVar[str] = "spacy_codeie.ADELIEOnDemandPrompt.v1"
    task: ClassVar[str] = "on_demand"

    def __init__(self, system: str = ONDEMAND_SYSTEM, columns_sentence: str = COLUMNS_SENTENCE,
                 chat_format: ChatFormat = "tulu"):
        if chat_format not in ("tulu", "none"):
            raise SchemaError(f"ADELIEOnDemandPrompt chat_format must be 'tulu' or 'none', not {chat_format!r}.")
        if columns_sentence and "<columns>" not in columns_sentence:
            raise SchemaError("ADELIEOnDemandPrompt columns_sentence needs a <columns> slot for the header, e.g. "
                              f"{COLUMNS_SENTENCE!r}; or set it to \"\" to leave the columns out of the prompt.")
        self.system = system
        self.columns_sentence = columns_sentence
        self.chat_format = chat_format

    def render_user(self, instruction: str, columns: Sequence[str], text: str) -> str:
        if self.columns_sentence:
            instruction = instruction.rstrip() + " " + self.columns_sentence.replace("<columns>", header_row(columns))
        return instruction + "\n\nText: " + text

    def render_prompt(self, instruction: str, columns: Sequence[str], text: str) -> str:
        user = self.render_user(instruction, columns, text)
        if self.chat_format == "none":
            return user
        return tulu_chat([(user, None)], system=self.system or None)

    def render_completion(self, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
        lines = [header_row(columns), "| " + " | ".join("---" for _ in columns) + " |"]
        lines.extend(header_row(row) for row in rows)
        return ANSWER + "\n".join(lines)

    def parse(self, completion: str, columns: Sequence[str]) -> TableParse:
        result = TableParse(tuple(columns))
        completion, result.truncated = clip(completion or "")
        body = answer_body(completion)
        result.empty = not body
        block = _first_table(body)
        if not block:
            result.no_table = int(bool(body) and not says_nothing(body))
            return result
        header, rows = split_row(block[0]), [split_row(line) for line in block[1:]]
        index = _column_index(header, columns, result)
        for cells in rows:
            if all(_SEPARATOR_CELL.match(c) for c in cells):
                continue
            if len(cells) != len(header):
                result.ragged_rows += 1
                cells = (cells + [""] * len(header))[:len(header)]
            out = [""] * len(columns)
            for cell, target in zip(cells, index):
                if target is not None:
                    out[target] = cell
            if all(c.casefold() in NONE_VALUES for c in out):
                result.empty_rows += 1
                continue
            result.rows.append(tuple(out))
        return result


def header_row(cells: Sequence[str]) -> str:
    """One markdown table row, pipes inside cells escaped."""
    return "| " + " | ".join(" ".join(str(c).split()).replace("|", "\\|") for c in cells) + " |"


def split_row(line: str) -> List[str]:
    """The cells of one markdown table row (outer pipes optional, `\\|` a pipe inside a cell)."""
    row = line.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [cell.strip().replace("\\|", "|") for cell in _UNESCAPED_PIPE.split(row)]


def _first_table(body: str) -> List[str]:
    """The first run of lines with a pipe in them: a markdown table ends at the first line without one."""
    block: List[str] = []
    for line in body.splitlines():
        if _UNESCAPED_PIPE.search(line):
            block.append(line)
        elif block:
            break
    return block


def _norm(name: str) -> str:
    return " ".join(name.replace("*", "").replace("`", "").split()).casefold()


def _column_index(header: List[str], columns: Sequence[str], result: TableParse) -> List[Optional[int]]:
    """For each column of the answer, the column asked for that it fills (None: not asked for)."""
    wanted = {_norm(c): i for i, c in enumerate(columns)}
    index: List[Optional[int]] = []
    for name in header:
        target = wanted.pop(_norm(name), None)  # popped: a column named twice fills it once
        index.append(target)
    if all(i is None for i in index) and len(header) == len(columns):
        result.positional_header = 1
        index = list(range(len(columns)))
    result.extra_columns = sum(i is None for i in index)
    result.missing_columns = len(columns) - sum(i is not None for i in index)
    return index


@registry.misc("spacy_codeie.ADELIEOpenIEPrompt.v1")
def make_adelie_openie_prompt(instruction: str = OPENIE_INSTRUCTION,
                              chat_format: ChatFormat = "tulu") -> ADELIEOpenIEPrompt:
    """ADELIE's open-IE prompt; `instruction` may be another of IEInstruct's OPENIE instructions (`<text>` is
    where the text goes; without it the text follows on its own line)."""
    return ADELIEOpenIEPrompt(instruction=instruction, chat_format=chat_format)


@registry.misc("spacy_codeie.ADELIEOnDemandPrompt.v1")
def make_adelie_ondemand_prompt(system: str = ONDEMAND_SYSTEM, columns_sentence: str = COLUMNS_SENTENCE,
                                chat_format: ChatFormat = "tulu") -> ADELIEOnDemandPrompt:
    """ADELIE's on-demand-IE prompt; `columns_sentence` ("" for none) adds the header asked for to the
    instruction, so the answer's columns are the ones the component reads."""
    return ADELIEOnDemandPrompt(system=system, columns_sentence=columns_sentence, chat_format=chat_format)
