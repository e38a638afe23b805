"""Relation data derived from event annotations, for corpora whose license allows no relation dataset.

Two arguments of one event stand in a relation ("the subject of an adverse event -> its effect"). Each event
type contributes its most frequent pair of co-occurring roles as one relation type, so an event corpus also
teaches the relation format `Rel(Entity("a"), Entity("b"))` on real text. Typed, every argument span is also an
entity of its role's class and the relations join those classes (`Rel(Effect("a"), Treatment("b"))`), which is
how NER + RE schemas ask: entities and relations in one answer. Joint, the events stay beside them, as a schema
that asks for entities, relations and events at once does (the component's own examples do).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..schema.types import ANY_ENTITY, EntityType, RelationType, Schema, class_name_from_label


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


def role_entity_types(schema: Schema) -> Dict[str, EntityType]:
    """role -> the entity type its argument spans get in typed relation data (one per role name)."""
    out: Dict[str, EntityType] = {}
    for event in schema.events:
        for role in event.roles:
            if role.name not in out:
                what = role.description or f"The {role.name} argument of a {event.label} event."
                out[role.name] = EntityType(label=role.name, class_name=class_name_from_label(role.name),
                                            description=what)
    return out


def relation_schema(schema: Schema, types: Dict[str, Tuple[str, str, str]], typed: bool = False,
                    with_events: bool = False) -> Optional[Schema]:
    """The derived relation types; `typed` adds an entity type per role and types the relations' arguments;
    `with_events` keeps the corpus's event types beside them (one schema asking for all three)."""
    events = {e.label: e for e in schema.events}
    relations = []
    for label, (event, head, tail) in types.items():
        what = events[event].description
        description = f"The {head} and the {tail} of one {event} event." + (f" The event: {what}" if what else "")
        relations.append(RelationType(label=label, class_name=class_name_from_label(label),
                                      head=(head,) if typed else (ANY_ENTITY,),
                                      tail=(tail,) if typed else (ANY_ENTITY,), description=description))
    if not relations:
        return None
    return Schema.build(role_entity_types(schema).values() if typed else [], relations,
                        schema.events if with_events else [])


def relation_record(record: Dict[str, Any], types: Dict[str, Tuple[str, str, str]], typed: bool = False,
                    keep_events: bool = False) -> Dict[str, Any]:
    """The record's events rewritten as relations between argument spans: untyped, only the spans in a relation,
    as `Entity`; typed, every argument span as an entity labelled with its role. `keep_events` keeps the events
    too, for a joint record (entities, relations and events in one answer)."""
    by_event = {(event, head, tail): label for label, (event, head, tail) in types.items()}
    entities: List[Dict[str, Any]] = []
    index: Dict[Tuple[int, int, str], int] = {}
    relations = []

    def entity(arg: Dict[str, Any]) -> int:
        label = arg["role"] if typed else ANY_ENTITY
        key = (arg["start"], arg["end"], label)
        if key not in index:
            index[key] = len(entities)
            entities.append({"start": arg["start"], "end": arg["end"], "label": label, "text": arg["text"]})
        return index[key]

    for event in record.get("events") or ():
        if typed:
            for arg in event.get("arguments") or ():
                entity(arg)
        for (label_event, head, tail), label in by_event.items():
            if label_event != event["label"]:
                continue
            heads = [a for a in event.get("arguments") or () if a["role"] == head]
            tails = [a for a in event.get("arguments") or () if a["role"] == tail]
            for h in heads:
                for t in tails:
                    relations.append({"head": entity(h), "tail": entity(t), "label": label})
    return {**{k: v for k, v in record.items() if k not in ("entities", "relations", "events")},
            "entities": entities, "relations": relations,
            "events": list(record.get("events") or ()) if keep_events else []}
