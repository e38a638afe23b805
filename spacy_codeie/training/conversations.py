"""Conversation records: several sentences answered under one rendering of the classes.

A single-turn record pays for the whole schema with every sentence; with a compact schema that is still half
of each record. A conversation shows the classes once, in its first turn, and then asks for sentence after
sentence, with a loss on every answer, so each optimizer step teaches several answers for the price of one
schema. The first turn of every conversation is exactly the prompt the component sends at inference.

Each conversation draws one augmented view of its dataset's schema (negative sampling, dropout, shuffling,
guideline dropout, masking, renamed labels), so the model learns to read the classes, not a label set.
"""
from __future__ import annotations

import keyword
import random
import re
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ..errors import SchemaError
from ..gold import gold_instances, present_labels
from ..instances import EntityInstance
from ..readers import GoldConverter, blank_pipeline
from ..schema.types import (
    RESERVED_CLASS_NAMES,
    EntityType,
    EventType,
    RelationType,
    Schema,
    class_name_from_label,
    entity_labels_named_by,
)
from ..windows import split_windows
from .augment import AugmentSettings, SchemaView, schema_view


def abbreviation(name: str, rng: random.Random) -> Optional[str]:
    """A tag-like short form of a class name, as label sets often write them ('Person' -> 'Per' or 'PERS',
    'Organization' -> 'Org'); None when the name has no shorter ASCII form."""
    words = re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", name)
    if not words or not name.isascii():
        return None
    short = words[0][:rng.choice((3, 4))]
    if len(short) < 2 or len(short) >= len(name):
        return None
    return short.upper() if rng.random() < 0.4 else short[:1].upper() + short[1:].lower()


def usable_class_name(name: str) -> bool:
    """Whether a name can stand for a type in the rendered code: an identifier that is no keyword and no name the
    prompt defines itself (a synonym that fails this is never drawn)."""
    return name.isidentifier() and not keyword.iskeyword(name) and name not in RESERVED_CLASS_NAMES


def _plain_and_described(t) -> bool:
    """A type that keeps the class name its label gives and a description to read its meaning from (a masked or
    renamed name, or one without guidelines, is not shortened)."""
    try:
        return bool(t.description) and t.class_name == class_name_from_label(t.label)
    except SchemaError:
        return False


def rename_labels(view: SchemaView, synonyms: Mapping[str, Sequence[str]], rate: float,
                  rng: random.Random, abbreviate_rate: float = 0.0) -> SchemaView:
    """Give some types another class name, so no label set is learnt by heart: a synonym from `synonyms`
    (label -> names) with chance `rate`, else, for a described type that still has its label's class name, a
    short form of that name with chance `abbreviate_rate` (the description then says what the type is, as in
    label sets with tags such as `Peop` or `GPE`).

    Keys match labels case-insensitively; a name already used in the view is never taken twice.
    """
    if (rate <= 0 or not synonyms) and abbreviate_rate <= 0:
        return view
    lookup = {key.lower(): list(names) for key, names in synonyms.items()}
    taken = {t.class_name for t in view.schema.types}
    applied = list(view.applied)

    def free(name: str) -> bool:
        return usable_class_name(name) and name not in taken

    def vary(types):
        out = []
        for t in types:
            names = [n for n in lookup.get(t.label.lower(), ()) if free(n)]
            if names and rng.random() < rate:
                name = rng.choice(names)
                taken.add(name)
                t = replace(t, class_name=name)
                applied.append("rename")
            elif abbreviate_rate > 0 and _plain_and_described(t) and rng.random() < abbreviate_rate:
                short = abbreviation(t.class_name, rng)
                if short is not None and free(short):
                    taken.add(short)
                    t = replace(t, class_name=short)
                    applied.append("abbreviate")
            out.append(t)
        return out

    schema = view.schema
    renamed = Schema.build([e for e in vary(schema.entities) if isinstance(e, EntityType)],
                           [r for r in vary(schema.relations) if isinstance(r, RelationType)],
                           [e for e in vary(schema.events) if isinstance(e, EventType)])
    return SchemaView(renamed, view.targets, tuple(sorted(set(applied))))


@dataclass(frozen=True)
class Merge:
    """Two entity types shown as one coarser class: gold instances of `parts` are answered as `label`."""

    label: str
    parts: Tuple[str, str]


def merge_entity_types(view: SchemaView, rate: float, rng: random.Random) -> Tuple[SchemaView, Optional[Merge]]:
    """With chance `rate`, show two of the view's entity types as one class ('PersonOrOrganization', described as
    either), as label sets differ in how finely they cut the same mentions: the model must answer from the class
    the prompt defines, not from the label set it remembers. Only types no relation or role of the view names are
    merged, and only when the merged class name is free."""
    if rate <= 0 or rng.random() >= rate:
        return view, None
    schema = view.schema
    named = entity_labels_named_by(schema.types)
    candidates = [e for e in schema.entities if e.label in view.targets and e.label not in named]
    if len(candidates) < 2:
        return view, None
    first, second = rng.sample(candidates, 2)
    class_name = f"{first.class_name}Or{second.class_name}"
    taken = {t.class_name for t in schema.types}
    if not class_name.isidentifier() or class_name in taken or class_name in RESERVED_CLASS_NAMES:
        return view, None
    label = f"{first.label}|{second.label}"
    described = first.description and second.description
    merged = EntityType(label=label, class_name=class_name,
                        description=f"{first.description}; or {second.description}" if described else "",
                        examples=first.examples + second.examples if described else ())
    entities = [merged if e is first else e for e in schema.entities if e is not second]
    coarse = Schema.build(entities, schema.relations, schema.events)
    targets = (view.targets - {first.label, second.label}) | {label}
    applied = tuple(sorted(set(view.applied) | {"merge"}))
    return SchemaView(coarse, frozenset(targets), applied), Merge(label, (first.label, second.label))


# (name class suffix, nominal class suffix, what the name class holds, what the nominal class holds): the ways
# label sets that split names from nominal mentions (ACE, ERE, Weibo) tend to write the pair.
_SPLIT_STYLES = (
    ("Nam", "Nom", "named mention (a proper name)", "nominal mention (a common noun phrase, not a name)"),
    ("Name", "Nominal", "a proper name", "a nominal mention: a common noun or noun phrase that refers to one "
     "without naming it"),
    ("Named", "Generic", "referred to by its name", "referred to generically, by a common noun, not by name"),
)


def split_entity_types(view: SchemaView, rate: float, rng: random.Random) -> SchemaView:
    """With chance `rate`, show each entity type of the view as two finer classes, its names and its nominal
    mentions ('PerNam' and 'PerNom'), as label sets that follow ACE or ERE do. The corpora mark names only, so
    gold mentions are answered with the name class and the nominal class is an absent type: the model learns to
    put a name in the class the prompt reserves for names, not in its nominal sibling. Only types no relation or
    role of the view names are split, and only when both class names are free."""
    if rate <= 0 or rng.random() >= rate:
        return view
    schema = view.schema
    named = entity_labels_named_by(schema.types)
    name_suffix, nominal_suffix, name_gloss, nominal_gloss = rng.choice(_SPLIT_STYLES)
    taken = {t.class_name for t in schema.types} | set(RESERVED_CLASS_NAMES)
    labels = {t.label for t in schema.types}
    entities: List[EntityType] = []
    targets = set(view.targets)
    for e in schema.entities:
        name, nominal = e.class_name + name_suffix, e.class_name + nominal_suffix
        nominal_label = f"{e.label}.{nominal_suffix.upper()}"
        if (e.label in named or e.label not in view.targets or name in taken or nominal in taken
                or nominal_label in labels or not name.isidentifier()):
            entities.append(e)
            continue
        taken |= {name, nominal}
        head = f"{e.description}, " if e.description else ""
        entities.append(replace(e, class_name=name, description=head + name_gloss))
        entities.append(EntityType(label=nominal_label, class_name=nominal, description=head + nominal_gloss))
        targets.add(nominal_label)
    if len(entities) == len(schema.entities):  # no type could be split
        return view
    finer = Schema.build(entities, schema.relations, schema.events)
    return SchemaView(finer, frozenset(targets), tuple(sorted(set(view.applied) | {"split"})))


def answered_as(instances: Sequence[Any], merge: Optional[Merge]) -> List[Any]:
    """Gold instances with the merged types' labels replaced by the merged class's, once per mention."""
    if merge is None:
        return list(instances)
    out: List[Any] = []
    for inst in instances:
        if isinstance(inst, EntityInstance) and inst.label in merge.parts:
            inst = EntityInstance(merge.label, inst.text)
            if inst in out:
                continue
        out.append(inst)
    return out


def conversation_records(
    records: Sequence[Dict[str, Any]],
    schema: Schema,
    *,
    dataset: str,
    lang: str,
    prompt,
    augment: AugmentSettings,
    seed: int,
    max_turns: int = 6,
    max_chars: int = 1500,
    window_size: int = 1000,
    synonyms: Optional[Mapping[str, Sequence[str]]] = None,
    rename_rate: float = 0.0,
    abbreviate_rate: float = 0.0,
    merge_rate: float = 0.0,
    split_rate: float = 0.0,
) -> Iterator[Dict[str, Any]]:
    """Conversations of 1..max_turns windows (at most max_chars of sentence text), in a seeded random order."""
    nlp = blank_pipeline(lang)
    converter = GoldConverter(nlp)
    units: List[Tuple[str, Any, Any]] = []
    for n, record in enumerate(records):
        doc = converter.doc(record)
        for w, window in enumerate(split_windows(doc, window_size)):
            units.append((f"{record.get('id', n)}#{w}", doc, window))
    rng = random.Random(f"{seed}:{dataset}:conversations")
    rng.shuffle(units)
    i = 0
    while i < len(units):
        turns = rng.randint(1, max_turns)
        chunk = [units[i]]
        chars = len(units[i][2].text)
        while len(chunk) < turns and i + len(chunk) < len(units):
            nxt = units[i + len(chunk)]
            if chars + len(nxt[2].text) > max_chars:
                break
            chunk.append(nxt)
            chars += len(nxt[2].text)
        i += len(chunk)
        present = frozenset().union(*(present_labels(doc, window) for _, doc, window in chunk))
        view = schema_view(schema, present, augment, rng)
        view = rename_labels(view, synonyms or {}, rename_rate, rng, abbreviate_rate)
        view = split_entity_types(view, split_rate, rng)
        fine = view
        merge = None
        if "split" not in view.applied:  # a merge would join a name class with its nominal sibling
            view, merge = merge_entity_types(view, merge_rate, rng)
        solved = [(window.text, answered_as(gold_instances(doc, window, fine.schema, fine.targets), merge))
                  for _, doc, window in chunk]
        turns = prompt.render_conversation(view.schema, solved)
        for turn, (text, _) in zip(turns, solved):
            turn["text"] = text
        yield {
            "id": "+".join(uid for uid, _, _ in chunk),
            "dataset": dataset,
            "lang": lang,
            "schema": view.schema.to_dict(),
            "turns": turns,
            "instances": sum(len(inst) for _, inst in solved),
            "augment": list(view.applied),
        }


def first_turns(records: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Single-turn records as the component sends them: a conversation's first turn, with its schema and text
    (what DPO samples from); single-turn records pass through."""
    out = []
    for record in records:
        if "turns" not in record:
            out.append(record)
            continue
        first = record["turns"][0]
        out.append({"id": record.get("id"), "dataset": record.get("dataset"), "lang": record.get("lang"),
                    "schema": record.get("schema"), "text": first.get("text"), "prompt": first["prompt"],
                    "completion": first["completion"]})
    return out
