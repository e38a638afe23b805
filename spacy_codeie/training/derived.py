"""Relation data derived from event annotations, for corpora whose license allows no relation dataset.

Two arguments of one event stand in a relation ("the subject of an adverse event -> its effect"). Each event
type contributes its most frequent pair of co-occurring roles as one relation type, so an event corpus also
teaches the relation format `Rel(Entity("a"), Entity("b"))` on real text.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..schema.types import ANY_ENTITY, RelationType, Schema, class_name_from_label


def _role_pairs(record: Dict[str, Any]) -> Iterable[Tuple[str, Tuple[str, str]]]:
    for event in record.get("events") or ():
        roles = sorted({a["role"] for a in event.get("arguments") or ()})
        for i, a in enumerate(roles):
            for b in roles[i + 1:]:
                yield event["label"], (a, b)


def event_relation_types(schema: Schema, records: Iterable[Dict[str, Any]]) -> Dict[str, Tuple[str, str, str]]:
    """relation label -> (event label, head role, tail role): the most frequent role pair per event type."""
    counts: Counter = Counter(item for record in records for item in _role_pairs(record))
    best: Dict[str, Tuple[str, str]] = {}
    for (event, pair), _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][1])):
        best.setdefault(event, pair)
    return {f"{e.label} {best[e.label][0]} {best[e.label][1]}": (e.label, *best[e.label])
            for e in schema.events if e.label in best}


def relation_schema(schema: Schema, types: Dict[str, Tuple[str, str, str]]) -> Optional[Schema]:
    events = {e.label: e for e in schema.events}
    relations = []
    for label, (event, head, tail) in types.items():
        what = events[event].description
        description = f"The {head} and the {tail} of one {event} event." + (f" The event: {what}" if what else "")
        relations.append(RelationType(label=label, class_name=class_name_from_label(label), head=(ANY_ENTITY,),
                                      tail=(ANY_ENTITY,), description=description))
    return Schema.build([], relations, []) if relations else None


def relation_record(record: Dict[str, Any], types: Dict[str, Tuple[str, str, str]]) -> Dict[str, Any]:
    """The record's events rewritten as relations between argument spans (entities get no type)."""
    by_event = {(event, head, tail): label for label, (event, head, tail) in types.items()}
    entities: List[Dict[str, Any]] = []
    index: Dict[Tuple[int, int], int] = {}
    relations = []

    def entity(arg: Dict[str, Any]) -> int:
        key = (arg["start"], arg["end"])
        if key not in index:
            index[key] = len(entities)
            entities.append({"start": arg["start"], "end": arg["end"], "label": ANY_ENTITY, "text": arg["text"]})
        return index[key]

    for event in record.get("events") or ():
        for (label_event, head, tail), label in by_event.items():
            if label_event != event["label"]:
                continue
            heads = [a for a in event.get("arguments") or () if a["role"] == head]
            tails = [a for a in event.get("arguments") or () if a["role"] == tail]
            for h in heads:
                for t in tails:
                    relations.append({"head": entity(h), "tail": entity(t), "label": label})
    return {**{k: v for k, v in record.items() if k not in ("entities", "relations", "events")},
            "entities": entities, "relations": relations, "events": []}
