"""Open-IE tuples and on-demand tables on the Doc: plain records in `doc.user_data`, objects with Spans on access.

As for relations (annotations.py), records are text and character offsets, so they survive `DocBin`,
`Doc.to_bytes` and `nlp.to_disk`/`spacy.load`; the extensions (`doc._.triples`, `doc._.table` by default) are
getters that build `Span`s from them. A part or cell keeps the model's text even where it is not in the
document (a paraphrase, an implicit "is"): then its span is None.

Records: a phrase is `[text, start, end]` (start and end None when not found); a tuple is a dict of
`subject`, `predicate` (phrases) and `object`, `time`, `location` (phrases or None); a table is
`{"instruction", "columns", "rows"}` with rows as lists of phrases.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from spacy.tokens import Doc, Span

from .alignment import StringAligner, token_span
from .annotations import storage_key
from .errors import CodeIEError
from .instances import TUPLE_PARTS

OPENIE_DIAGNOSTICS_KEY = "codeie_openie_diagnostics"
ONDEMAND_DIAGNOSTICS_KEY = "codeie_ondemand_diagnostics"
PhraseRecord = List[Any]  # [text, start or None, end or None]


@dataclass(frozen=True)
class Phrase:
    """A string the model wrote, and where it occurs in the text (None when it does not)."""

    text: str
    span: Optional[Span] = None

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"text": self.text}
        if self.span is not None:
            out.update(start=self.span.start_char, end=self.span.end_char)
        return out


@dataclass(frozen=True)
class OpenTuple:
    """One schema-free tuple: subject and predicate always, object, time and location when the answer had them."""

    subject: Phrase
    predicate: Phrase
    object: Optional[Phrase] = None
    time: Optional[Phrase] = None
    location: Optional[Phrase] = None

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for name in TUPLE_PARTS:
            part = getattr(self, name)
            out[name] = part.to_dict() if part is not None else None
        return out


@dataclass(frozen=True)
class Table:
    """The table an instruction asked for: `columns` as given, each row one Phrase per column ("" if empty)."""

    instruction: str
    columns: Tuple[str, ...]
    rows: Tuple[Tuple[Phrase, ...], ...]

    def to_dict(self) -> Dict[str, Any]:
        return {"instruction": self.instruction, "columns": list(self.columns),
                "rows": [[cell.to_dict() for cell in row] for row in self.rows]}

    def to_text_rows(self) -> List[Dict[str, str]]:
        """The rows as {column: cell text} dicts, e.g. for `pandas.DataFrame(table.to_text_rows())`."""
        return [{c: cell.text for c, cell in zip(self.columns, row)} for row in self.rows]


# ---- records <-> objects ------------------------------------------------------------------------
def phrase_record(text: str, span: Optional[Span]) -> PhraseRecord:
    return [text, span.start_char, span.end_char] if span is not None else [text, None, None]


def _phrase(doc: Doc, record: Sequence[Any], label: str) -> Phrase:
    text, start, end = record
    span = token_span(doc, start, end, label) if start is not None and end is not None else None
    return Phrase(text, span)


def _tuple(doc: Doc, record: Mapping[str, Any]) -> OpenTuple:
    parts = {name: _phrase(doc, record[name], name) if record.get(name) is not None else None for name in TUPLE_PARTS}
    return OpenTuple(**parts)  # type: ignore[arg-type]  # subject and predicate are never None in a record


def _table(doc: Doc, record: Mapping[str, Any]) -> Table:
    columns = tuple(record["columns"])
    rows = tuple(tuple(_phrase(doc, cell, column) for cell, column in zip(row, columns)) for row in record["rows"])
    return Table(record["instruction"], columns, rows)


def _triples_getter(name: str) -> Callable[[Doc], List[OpenTuple]]:
    def get(doc: Doc) -> List[OpenTuple]:
        return [_tuple(doc, rec) for rec in doc.user_data.get(storage_key(name), ())]

    return get


def _table_getter(name: str) -> Callable[[Doc], Optional[Table]]:
    def get(doc: Doc) -> Optional[Table]:
        record = doc.user_data.get(storage_key(name))
        return _table(doc, record) if record is not None else None

    return get


def _register(name: str, getter: Callable, setting: str) -> None:
    if not name.isidentifier():
        raise CodeIEError(f"{setting} = {name!r} is not a valid extension name; use letters, digits and '_'.")
    if Doc.has_extension(name):
        existing = Doc.get_extension(name)[2]
        if getattr(existing, "__qualname__", "").split(".")[0] == getter.__qualname__.split(".")[0]:
            return
        raise CodeIEError(f"The Doc extension 'doc._.{name}' is already registered by another component or kind of "
                          f"annotation. Choose another name with the setting '{setting}'.")
    Doc.set_extension(name, getter=getter)


def register_triples_extension(name: str = "triples") -> None:
    _register(name, _triples_getter(name), "extension")


def register_table_extension(name: str = "table") -> None:
    _register(name, _table_getter(name), "extension")


def set_triple_records(doc: Doc, records: Sequence[Dict[str, Any]], extension: str = "triples") -> None:
    doc.user_data[storage_key(extension)] = list(records)


def triple_records(doc: Doc, extension: str = "triples") -> List[Dict[str, Any]]:
    return list(doc.user_data.get(storage_key(extension), ()))


def set_table_record(doc: Doc, record: Dict[str, Any], extension: str = "table") -> None:
    doc.user_data[storage_key(extension)] = record


def table_record(doc: Doc, extension: str = "table") -> Optional[Dict[str, Any]]:
    return doc.user_data.get(storage_key(extension))


def openie_diagnostics(doc: Doc) -> Dict[str, int]:
    """What the open-IE component dropped or could not place for this doc (empty if it never ran)."""
    return dict(doc.user_data.get(OPENIE_DIAGNOSTICS_KEY, {}))


def ondemand_diagnostics(doc: Doc) -> Dict[str, int]:
    """What the on-demand component dropped or repaired for this doc (empty if it never ran)."""
    return dict(doc.user_data.get(ONDEMAND_DIAGNOSTICS_KEY, {}))


# ---- gold tuples ----------------------------------------------------------------------------------
PartSpec = Union[None, str, Mapping[str, Any]]


def gold_triple_record(doc: Doc, tuple_spec: Mapping[str, PartSpec], alignment_mode: str = "expand") -> Dict[str, Any]:
    """A tuple record from gold data: each part a string (found in the text, first occurrence) or a dict with
    `start`/`end` offsets (and optionally `text`); object, time and location may be missing or None."""
    aligner = StringAligner(doc.text)
    record: Dict[str, Any] = {}
    for name in TUPLE_PARTS:
        spec = tuple_spec.get(name)
        if spec is None or spec == "":
            if name in ("subject", "predicate"):
                raise CodeIEError(f"A gold tuple needs a {name}: {dict(tuple_spec)!r}.")
            record[name] = None
            continue
        start: Optional[int]
        end: Optional[int]
        if isinstance(spec, str):
            found = aligner.occurrences(spec)
            start, end = found[0] if found else (None, None)
            text = spec
        else:
            start, end = spec.get("start"), spec.get("end")
            given = spec.get("text")
            text = str(given) if given is not None else (
                doc.text[start:end] if start is not None and end is not None else "")
        span = token_span(doc, start, end, name, alignment_mode) if start is not None and end is not None else None
        record[name] = phrase_record(text, span)
    return record
