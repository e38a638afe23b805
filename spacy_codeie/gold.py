"""Gold annotations -> instances -> completions: the instance writer's input, for training data and checks.

The same prompt renderer and instance writer serve inference and training, and `gold_completions` renders,
for every prompt the component would send for a gold doc, the completion a perfect model would write. Run
through the component, those completions must reproduce the gold annotations: that is the round-trip check.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional

from spacy.tokens import Doc, Span
from spacy_llm.registry import registry as llm_registry

from .annotations import event_records, relation_records
from .instances import EntityInstance, EventInstance, Instance, Mention, RelationInstance
from .schema.types import ANY_ENTITY, Schema

TRIGGERLESS_SKIPPED = ("gold_instances left out trigger-less events (no trigger span): the answers of this "
                       "prompt style name a trigger for every event, so such an event cannot be written as one. "
                       "Pass triggerless=True for styles whose answers name no trigger (YAYI-UIE).")


def _inside(start: int, end: int, window: Span) -> bool:
    return window.start_char <= start and end <= window.end_char


def _event_start(rec: Mapping[str, Any]) -> int:
    """Where an event record starts, for text order: its trigger, or (trigger-less) its first argument."""
    if rec["trigger"] is not None:
        return rec["trigger"][0]
    return min((a[0] for a in rec["arguments"]), default=0)


def gold_instances(
    doc: Doc,
    window: Span,
    schema: Schema,
    targets: FrozenSet[str],
    *,
    spans_key: str = "codeie",
    relations_extension: str = "relations",
    events_extension: str = "events",
    triggerless: bool = False,
) -> List[Instance]:
    """The gold instances of one window whose types the group asks for, in text order per kind.

    A trigger-less event (trigger None) becomes an `EventInstance` with trigger "" of its arguments inside the
    window only with `triggerless`, for styles whose answers name no trigger; the code styles need a trigger
    for every event, so otherwise it is left out, with a warning rather than a wrong answer.
    """
    text = doc.text
    spans = doc.spans[spans_key] if spans_key in doc.spans else doc.ents
    entity_labels = {e.label for e in schema.entities}
    instances: List[Instance] = []
    for span in sorted(spans, key=lambda s: (s.start_char, -s.end_char)):
        if span.label_ in targets and span.label_ in entity_labels and _inside(span.start_char, span.end_char, window):
            instances.append(EntityInstance(span.label_, span.text))
    relation_types = {r.label for r in schema.relations}
    for rec in sorted(relation_records(doc, relations_extension), key=lambda r: (r["head"][0], r["tail"][0])):
        (hs, he, hl), (ts, te, tl) = rec["head"], rec["tail"]
        if rec["label"] in targets and rec["label"] in relation_types and _inside(hs, he, window) \
                and _inside(ts, te, window):
            instances.append(RelationInstance(rec["label"], Mention(text[hs:he], hl or None),
                                              Mention(text[ts:te], tl or None)))
    events = {e.label: e for e in schema.events}
    skipped = 0
    for rec in sorted(event_records(doc, events_extension), key=_event_start):
        etype = events.get(rec["label"])
        if etype is None or rec["label"] not in targets:
            continue
        if rec["trigger"] is None:
            if not any(_inside(a_start, a_end, window) for a_start, a_end, _, _ in rec["arguments"]):
                continue
            if not triggerless:
                skipped += 1
                continue
            trigger = ""
        elif _inside(rec["trigger"][0], rec["trigger"][1], window):
            trigger = text[rec["trigger"][0]:rec["trigger"][1]]
        else:
            continue
        roles = {r.name: r for r in etype.roles}
        arguments = []
        for a_start, a_end, role_name, label in rec["arguments"]:
            role = roles.get(role_name)
            if role is None or not _inside(a_start, a_end, window):
                continue
            typed = label if label in entity_labels and (ANY_ENTITY in role.types or label in role.types) else None
            arguments.append((role_name, Mention(text[a_start:a_end], typed)))
        if trigger or arguments:
            instances.append(EventInstance(rec["label"], trigger, tuple(arguments)))
    if skipped:
        warnings.warn(TRIGGERLESS_SKIPPED, stacklevel=2)
    return instances


def gold_completions(component, docs: Iterable[Doc]) -> Dict[str, str]:
    """prompt -> the completion a perfect model writes, for every prompt `component` sends for `docs`."""
    table: Dict[str, str] = {}
    cfg = component.cfg
    for doc in docs:
        units, prompts, _ = component.prompts_for(doc)
        for (window, g), prompt in zip(units, prompts):
            group = component.groups[g]
            instances = gold_instances(
                doc, window, group, component.group_targets[g], spans_key=cfg["spans_key"],
                relations_extension=cfg["relations_extension"], events_extension=cfg["events_extension"],
                triggerless=not getattr(component.prompt, "event_triggers", True),
            )
            table.setdefault(prompt, component.prompt.render_completion(group, instances))
    return table


class CompletionTable:
    """A model that answers each prompt from a table (spacy-llm contract); unknown prompts get an empty list."""

    def __init__(self, table: Dict[str, str]):
        self.table = table

    def __call__(self, prompts: Iterable[Iterable[str]]) -> List[List[str]]:
        return [[self.table.get(p, "]") for p in doc_prompts] for doc_prompts in prompts]


@llm_registry.llm_models("spacy_codeie.CompletionTable.v1")
def completion_table(table: Optional[Dict[str, str]] = None) -> CompletionTable:
    """A model answering from a prompt -> completion table: for round-trip checks and replaying outputs."""
    return CompletionTable(dict(table or {}))


def present_labels(doc: Doc, window: Span, spans_key: str = "codeie") -> frozenset:
    """The labels of the gold entities, relations and events inside `window` (what augmentation calls positive)."""
    def inside(start: int, end: int) -> bool:
        return window.start_char <= start and end <= window.end_char

    labels = {s.label_ for s in doc.spans.get(spans_key, ()) if inside(s.start_char, s.end_char)}
    labels.update(r["label"] for r in relation_records(doc) if inside(*r["head"][:2]) and inside(*r["tail"][:2]))
    for rec in event_records(doc):  # a trigger-less event is inside where one of its arguments is
        spans = [rec["trigger"]] if rec["trigger"] is not None else [a[:2] for a in rec["arguments"]]
        if any(inside(*span) for span in spans):
            labels.add(rec["label"])
    return frozenset(labels)
