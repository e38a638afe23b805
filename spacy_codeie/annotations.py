"""Relations and events on the Doc: stored as plain offsets, exposed as objects holding `Span`s.

Plain character offsets in `doc.user_data` survive `DocBin` and `nlp.to_disk`/`spacy.load`; `Span` objects
would not. The extensions (`doc._.relations`, `doc._.events` by default; names configurable) are getters that
build the span objects on access. An event may have no trigger (`None`): YAYI-UIE's answers name only the
roles, so such an event is its label and its arguments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

from spacy.tokens import Doc, Span

DIAGNOSTICS_KEY = "codeie_diagnostics"


def storage_key(extension: str) -> str:
    """The `doc.user_data` key holding the offsets behind an extension."""
    return f"codeie:{extension}"


@dataclass(frozen=True)
class RelationMention:
    head: Span
    tail: Span
    label: str

    def to_dict(self) -> Dict[str, Any]:
        return {"head": _span_dict(self.head), "tail": _span_dict(self.tail), "label": self.label}


@dataclass(frozen=True)
class EventMention:
    trigger: Optional[Span]  # None for an event whose answer named no trigger (YAYI-UIE)
    label: str
    arguments: Dict[str, List[Span]]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "trigger": _span_dict(self.trigger) if self.trigger is not None else None,
            "label": self.label,
            "arguments": [dict(_span_dict(span), role=role)
                          for role, spans in self.arguments.items() for span in spans],
        }


def _span_dict(span: Span) -> Dict[str, Any]:
    out: Dict[str, Any] = {"start": span.start_char, "end": span.end_char, "text": span.text}
    if span.label_:
        out["label"] = span.label_
    return out


def _char_span(doc: Doc, start: int, end: int, label: str = "") -> Optional[Span]:
    span = doc.char_span(start, end, label=label or "", alignment_mode="expand")
    return span if span is not None and len(span) else None


def _relations_getter(name: str):
    def get(doc: Doc) -> List[RelationMention]:
        out = []
        for rec in doc.user_data.get(storage_key(name), ()):
            head = _char_span(doc, rec["head"][0], rec["head"][1], rec["head"][2])
            tail = _char_span(doc, rec["tail"][0], rec["tail"][1], rec["tail"][2])
            if head is not None and tail is not None:
                out.append(RelationMention(head, tail, rec["label"]))
        return out

    return get


def _events_getter(name: str):
    def get(doc: Doc) -> List[EventMention]:
        out = []
        for rec in doc.user_data.get(storage_key(name), ()):
            trigger = None
            if rec["trigger"] is not None:
                trigger = _char_span(doc, rec["trigger"][0], rec["trigger"][1], rec["label"])
                if trigger is None:
                    continue
            arguments: Dict[str, List[Span]] = {}
            for start, end, role, label in rec["arguments"]:
                span = _char_span(doc, start, end, label or "")
                if span is not None:
                    arguments.setdefault(role, []).append(span)
            if trigger is None and not arguments:  # a trigger-less event is its arguments: nothing to show
                continue
            out.append(EventMention(trigger, rec["label"], arguments))
        return out

    return get


def register_extensions(relations: str = "relations", events: str = "events") -> None:
    """Register the getters once per name; a name already taken by something else is an error."""
    for name, getter in ((relations, _relations_getter(relations)), (events, _events_getter(events))):
        if Doc.has_extension(name):
            existing = Doc.get_extension(name)
            if existing[2] is not None and getattr(existing[2], "__qualname__", "").startswith(
                ("_relations_getter", "_events_getter")
            ):
                continue
            raise ValueError(
                f"The Doc extension 'doc._.{name}' is already registered by another component. Choose another "
                f"name with the codeie config setting 'relations_extension' or 'events_extension'."
            )
        Doc.set_extension(name, getter=getter)


# ---- writing --------------------------------------------------------------------------------------
def relation_record(head: Span, tail: Span, label: str) -> Dict[str, Any]:
    return {"head": [head.start_char, head.end_char, head.label_],
            "tail": [tail.start_char, tail.end_char, tail.label_],
            "label": label}


def event_record(trigger: Optional[Span], label: str, arguments: Iterable[tuple]) -> Dict[str, Any]:
    """`arguments` holds (role, Span) pairs; `trigger` None is stored as None (an event named by roles only)."""
    return {
        "trigger": [trigger.start_char, trigger.end_char] if trigger is not None else None,
        "label": label,
        "arguments": [[span.start_char, span.end_char, role, span.label_] for role, span in arguments],
    }


def set_relation_records(doc: Doc, records: Sequence[Dict[str, Any]], extension: str = "relations") -> None:
    doc.user_data[storage_key(extension)] = list(records)


def set_event_records(doc: Doc, records: Sequence[Dict[str, Any]], extension: str = "events") -> None:
    doc.user_data[storage_key(extension)] = list(records)


def relation_records(doc: Doc, extension: str = "relations") -> List[Dict[str, Any]]:
    return list(doc.user_data.get(storage_key(extension), ()))


def event_records(doc: Doc, extension: str = "events") -> List[Dict[str, Any]]:
    return list(doc.user_data.get(storage_key(extension), ()))


def diagnostics(doc: Doc) -> Dict[str, int]:
    """What the component had to drop or repair for this doc (empty if it never ran)."""
    return dict(doc.user_data.get(DIAGNOSTICS_KEY, {}))
