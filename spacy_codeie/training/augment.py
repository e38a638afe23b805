"""Schema augmentations for SFT records: which types a prompt shows, in what order, named and described how.

A model trained on one fixed label set learns that label set, not the task. Varying the classes in the prompt
teaches it to read them: negative label sampling (YAYI-UIE) shows types that have no instance in the sentence,
so the model learns to answer nothing for them; positive dropout hides types that do, so it learns to extract
only what is asked; shuffling breaks the habit of a fixed class order; guideline dropout and name masking make
it lean on the class name in one case and on the docstring in the other. Decoys (`with_decoys`) are entity
types a corpus never annotates, added to its schema so that negative sampling can grow its prompts to the size
of real schemas (9 to 17 types) although no training corpus has that many.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, FrozenSet, List, Sequence, Set, Tuple, TypeVar

from ..errors import CodeIEError
from ..schema.types import AnyType, EntityType, EventType, RelationType, Schema

T = TypeVar("T", EntityType, RelationType, EventType)


@dataclass(frozen=True)
class AugmentSettings:
    """Every augmentation is a switch; the defaults are the recipe the embedded model was trained with."""

    full_schema_rate: float = 0.5  # share of records that show the dataset's whole schema, as at inference
    negative_types: int = -1  # absent types added otherwise: -1 a random number of them, n at most n
    positive_dropout: float = 0.1  # chance to hide each type that has instances (never all of them)
    shuffle_types: bool = True  # random class order within entities, relations and events
    guideline_dropout: float = 0.2  # chance to drop a type's docstring description and examples
    name_masking: float = 0.05  # chance to replace a described type's class name by a meaningless one

    def __post_init__(self) -> None:
        for name in ("full_schema_rate", "positive_dropout", "guideline_dropout", "name_masking"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise CodeIEError(f"augment.{name}={value} must be a probability between 0 and 1.")
        if self.negative_types < -1:
            raise CodeIEError("augment.negative_types must be -1 (a random number), 0 (none) or a positive count.")

    @classmethod
    def off(cls) -> "AugmentSettings":
        """The inference condition only: whole schema, schema order, all guidelines and names."""
        return cls(full_schema_rate=1.0, negative_types=0, positive_dropout=0.0, shuffle_types=False,
                   guideline_dropout=0.0, name_masking=0.0)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SchemaView:
    """The schema one prompt shows, the labels it asks for, and what was done to it."""

    schema: Schema
    targets: FrozenSet[str]
    applied: Tuple[str, ...]


def choose_types(schema: Schema, present: FrozenSet[str], settings: AugmentSettings,
                 rng: random.Random) -> List[AnyType]:
    """Positives (maybe some dropped) plus sampled negatives, or every type."""
    types = list(schema.types)
    if rng.random() < settings.full_schema_rate:
        return types
    positives = [t for t in types if t.label in present]
    negatives = [t for t in types if t.label not in present]
    kept = [t for t in positives if rng.random() >= settings.positive_dropout]
    if positives and not kept:
        kept = [rng.choice(positives)]
    if settings.negative_types == -1:
        count = rng.randint(0, len(negatives))
    else:
        count = min(settings.negative_types, len(negatives))
    chosen = kept + rng.sample(negatives, count)
    if not chosen:  # a sentence without instances must still ask for something
        chosen = [rng.choice(types)]
    order = {id(t): i for i, t in enumerate(types)}
    return sorted(chosen, key=lambda t: order[id(t)])


def _masked_names(count: int, taken: Sequence[str], rng: random.Random) -> List[str]:
    pool = [f"Type{i}" for i in range(1, 100) if f"Type{i}" not in taken]
    return rng.sample(pool, count)


def _vary(types: Sequence[T], settings: AugmentSettings, rng: random.Random, applied: List[str],
          taken: Set[str]) -> List[T]:
    """Shuffle, mask and drop guidelines in one group of types; `taken` holds the class names of the whole view
    (all groups), so a masked name is never one another group already uses."""
    out = list(types)
    if settings.shuffle_types and len(out) > 1:
        rng.shuffle(out)
        applied.append("shuffle")
    masked = [i for i, t in enumerate(out) if t.description and rng.random() < settings.name_masking]
    for i, name in zip(masked, _masked_names(len(masked), sorted(taken), rng)):
        out[i] = replace(out[i], class_name=name)
        taken.add(name)
        applied.append("mask")
    for i, t in enumerate(out):
        if i not in masked and (t.description or t.examples) and rng.random() < settings.guideline_dropout:
            out[i] = replace(t, description="", examples=())
            applied.append("no_guideline")
    return out


def schema_view(schema: Schema, present: FrozenSet[str], settings: AugmentSettings, rng: random.Random) -> SchemaView:
    """An augmented view of `schema` for one record whose gold instances have the labels in `present`."""
    chosen = choose_types(schema, present, settings, rng)
    applied: List[str] = []
    if len(chosen) < len(schema.types):
        applied.append("subset")
    shown = schema.subset(chosen)
    taken = {t.class_name for t in shown.types}
    entities = _vary(shown.entities, settings, rng, applied, taken)
    relations = _vary([t for t in shown.relations if isinstance(t, RelationType)], settings, rng, applied, taken)
    events = _vary([t for t in shown.events if isinstance(t, EventType)], settings, rng, applied, taken)
    varied = Schema.build([e for e in entities if isinstance(e, EntityType)], relations, events)
    # Every class shown is asked for, as at inference: an entity type shown only because a chosen relation
    # names it must still get its instances in the answer.
    return SchemaView(varied, frozenset(t.label for t in shown.types), tuple(sorted(set(applied))))


def with_decoys(schema: Schema, decoys: Schema, dataset: str) -> Schema:
    """`schema` plus the entity types of `decoys`: absent from every record, so they are shown only as negatives.

    A decoy must be a type the corpus does not annotate *and* whose mentions its text hardly holds (a disease
    type for news NER, not a product type): otherwise the model learns to miss real mentions.
    """
    if decoys.relations or decoys.events:
        raise CodeIEError(f"Dataset {dataset!r}: decoys are entity types only; the decoy file defines "
                          f"{len(decoys.relations)} relation and {len(decoys.events)} event types.")
    own = {t.label for t in schema.types}
    clash = sorted(t.label for t in decoys.entities if t.label in own)
    if clash:
        raise CodeIEError(f"Dataset {dataset!r}: decoy types {clash} are in its own schema. A decoy must be a type "
                          "the corpus never annotates; take them out of the decoy file.")
    return Schema.build(schema.entities + decoys.entities, schema.relations, schema.events)
