"""The shared JSONL format <-> Docs with gold entities, relations and events; DocBin; a spaCy corpus reader.

Record: {"id", "lang", "text", "entities": [{start, end, label, text}], "relations": [{head, tail, label}]
(indices into entities), "events": [{"trigger": {start, end, text} or null, "label", "arguments": [{start,
end, text, role}]}]}; a null trigger is an event named by its arguments only (YAYI-UIE's answers). Offsets
are code points into `text`, end exclusive. Optional, for open IE: "triples": [{"subject", "predicate",
"object", "time", "location"}], each part {start, end, text} ({text} alone where it is not in the text), a
string (found in the text), or null.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import filter_spans, registry

from .annotations import (
    event_record,
    event_records,
    register_extensions,
    relation_record,
    relation_records,
    set_event_records,
    set_relation_records,
)
from .errors import CodeIEError
from .open_annotations import gold_triple_record, register_triples_extension, set_triple_records, triple_records

RECORD_ID_KEY = "codeie_id"


def blank_pipeline(lang: Optional[str], *, fallback_to_multilingual: bool = False) -> Language:
    """The one way codeie makes a blank pipeline for a language, so training windows and inference windows are
    cut by the same tokenizer. Korean gets the rule-based tokenizer (the default needs mecab-ko). A code spaCy
    does not know is an error, or with `fallback_to_multilingual` the multi-language pipeline ("xx")."""
    import spacy

    if lang == "ko":
        return spacy.blank("ko", config={"nlp": {"tokenizer": {"@tokenizers": "spacy.Tokenizer.v1"}}})
    try:
        return spacy.blank(lang or "xx")
    except (ImportError, OSError, KeyError, ValueError) as err:
        if fallback_to_multilingual:
            return spacy.blank("xx")
        raise CodeIEError(f"spaCy has no language {lang!r} ({err}). Use an ISO code spaCy knows, or 'xx' for the "
                          "multi-language tokenizer.") from None


def read_jsonl(path: Union[str, Path], limit: int = 0) -> Iterator[Dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise CodeIEError(f"The file {str(path)!r} does not exist.")
    for i, record in enumerate(srsly.read_jsonl(path)):
        if limit and i >= limit:
            return
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CodeIEError(f"Line {i + 1} of {str(path)!r} is not a record with a 'text' string.")
        yield record


class GoldConverter:
    """Builds gold Docs from records, counting annotations that do not fall on token boundaries."""

    def __init__(
        self,
        nlp: Language,
        *,
        spans_key: str = "codeie",
        relations_extension: str = "relations",
        events_extension: str = "events",
        alignment_mode: str = "expand",
        triples_extension: str = "triples",
    ):
        self.nlp = nlp
        self.triples_extension = triples_extension
        self.spans_key = spans_key
        self.relations_extension = relations_extension
        self.events_extension = events_extension
        self.alignment_mode = alignment_mode
        self.misaligned = 0
        register_extensions(relations_extension, events_extension)

    def _span(self, doc: Doc, start: int, end: int, label: str = "") -> Optional[Span]:
        span = doc.char_span(start, end, label=label, alignment_mode=self.alignment_mode)
        if span is None or not len(span):
            self.misaligned += 1
            return None
        return span

    def doc(self, record: Mapping[str, Any]) -> Doc:
        doc = self.nlp.make_doc(record["text"])
        if record.get("id") is not None:
            doc.user_data[RECORD_ID_KEY] = record["id"]
        entity_spans: List[Optional[Span]] = []
        for ent in record.get("entities") or ():
            entity_spans.append(self._span(doc, ent["start"], ent["end"], ent["label"]))
        mentions = sorted({(s.start, s.end, s.label_): s for s in entity_spans if s is not None}.values(),
                          key=lambda s: (s.start, -s.end))
        doc.spans[self.spans_key] = mentions
        doc.ents = filter_spans(mentions)
        relations = []
        for rel in record.get("relations") or ():
            head, tail = entity_spans[rel["head"]], entity_spans[rel["tail"]]
            if head is not None and tail is not None:
                relations.append(relation_record(head, tail, rel["label"]))
        set_relation_records(doc, relations, self.relations_extension)
        events = []
        for event in record.get("events") or ():
            trig, trigger = event.get("trigger"), None
            if trig is not None:
                trigger = self._span(doc, trig["start"], trig["end"], event["label"])
                if trigger is None:
                    continue
            args = []
            for arg in event.get("arguments") or ():
                span = self._span(doc, arg["start"], arg["end"], arg.get("filler_type") or "")
                if span is not None:
                    args.append((arg["role"], span))
            if trigger is None and not args:  # trigger-less, and none of its arguments is left
                continue
            events.append(event_record(trigger, event["label"], args))
        set_event_records(doc, events, self.events_extension)
        if record.get("triples") is not None:
            register_triples_extension(self.triples_extension)
            set_triple_records(doc, [gold_triple_record(doc, t, self.alignment_mode) for t in record["triples"]],
                               self.triples_extension)
        return doc

    def example(self, record: Dict[str, Any]) -> Example:
        gold = self.doc(record)
        predicted = self.nlp.make_doc(record["text"])
        if RECORD_ID_KEY in gold.user_data:
            predicted.user_data[RECORD_ID_KEY] = gold.user_data[RECORD_ID_KEY]
        return Example(predicted, gold)


def doc_to_record(
    doc: Doc,
    *,
    spans_key: str = "codeie",
    relations_extension: str = "relations",
    events_extension: str = "events",
    lang: Optional[str] = None,
    triples_extension: str = "triples",
) -> Dict[str, Any]:
    """A Doc's annotations in the shared JSONL format (entities from `doc.spans[spans_key]`, else `doc.ents`)."""
    spans = list(doc.spans[spans_key]) if spans_key in doc.spans else list(doc.ents)
    entities = [{"start": s.start_char, "end": s.end_char, "label": s.label_, "text": s.text} for s in spans]
    index = {(e["start"], e["end"], e["label"]): i for i, e in enumerate(entities)}

    def entity_index(start: int, end: int, label: str) -> int:
        key = (start, end, label)
        if key not in index:
            index[key] = len(entities)
            entities.append({"start": start, "end": end, "label": label, "text": doc.text[start:end]})
        return index[key]

    relations = []
    for rec in relation_records(doc, relations_extension):
        relations.append({"head": entity_index(*rec["head"]), "tail": entity_index(*rec["tail"]),
                          "label": rec["label"]})
    events = []
    for rec in event_records(doc, events_extension):
        trigger = None
        if rec["trigger"] is not None:
            start, end = rec["trigger"]
            trigger = {"start": start, "end": end, "text": doc.text[start:end]}
        events.append({
            "trigger": trigger,
            "label": rec["label"],
            "arguments": [{"start": s, "end": e, "text": doc.text[s:e], "role": role}
                          for s, e, role, _ in rec["arguments"]],
        })
    record: Dict[str, Any] = {}
    if RECORD_ID_KEY in doc.user_data:
        record["id"] = doc.user_data[RECORD_ID_KEY]
    record.update({"lang": lang or doc.lang_, "text": doc.text, "entities": entities, "relations": relations,
                   "events": events})
    triples = triple_records(doc, triples_extension)
    if triples:
        record["triples"] = [{name: _part_dict(part) for name, part in rec.items()} for rec in triples]
    return record


def _part_dict(part: Optional[List[Any]]) -> Optional[Dict[str, Any]]:
    if part is None:
        return None
    text, start, end = part
    return {"start": start, "end": end, "text": text} if start is not None else {"text": text}


def jsonl_to_docbin(path: Union[str, Path], nlp: Language, limit: int = 0, **kwargs: Any) -> DocBin:
    converter = GoldConverter(nlp, **kwargs)
    docbin = DocBin(store_user_data=True)
    for record in read_jsonl(path, limit):
        docbin.add(converter.doc(record))
    return docbin


@registry.readers("spacy_codeie.JsonlCorpus.v1")
def jsonl_corpus(
    path: str, limit: int = 0, spans_key: str = "codeie", relations_extension: str = "relations",
    events_extension: str = "events", triples_extension: str = "triples",
) -> Callable[[Language], Iterator[Example]]:
    """A corpus of Examples from a JSONL file in the shared format, for `spacy evaluate` and training configs."""

    def read(nlp: Language) -> Iterator[Example]:
        converter = GoldConverter(nlp, spans_key=spans_key, relations_extension=relations_extension,
                                  events_extension=events_extension, triples_extension=triples_extension)
        for record in read_jsonl(path, limit):
            yield converter.example(record)

    return read


def examples_from_jsonl(path: Union[str, Path], nlp: Language, limit: int = 0, **kwargs: Any) -> List[Example]:
    converter = GoldConverter(nlp, **kwargs)
    return [converter.example(record) for record in read_jsonl(path, limit)]
