"""The ontology: entity, relation and event types, and the checks that keep it renderable as code."""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from ..errors import SchemaError

# Names the rendered prompt defines itself; a user class may not shadow them.
RESERVED_CLASS_NAMES = frozenset({"Entity", "Relation", "Event", "List", "str", "results", "sentence"})
# An entity class may be called `Event` or `Relation` (KnowCoder's NER data has `class Event(Entity)`): a prompt
# that defines those base classes as well refuses such a schema group when it renders it.
RESERVED_ENTITY_CLASS_NAMES = RESERVED_CLASS_NAMES - {"Relation", "Event"}
# The generic entity class: a role or relation argument typed with it accepts any entity.
ANY_ENTITY = "Entity"


def class_name_from_label(label: str) -> str:
    """Turn a spaCy label into a CamelCase class name: 'WORKS_FOR' -> 'WorksFor', '人名' -> '人名'.

    A name the prompt defines itself ('event' -> 'Event') gets a 'Type' suffix ('EventType'), so that any label
    set loads. Raises SchemaError when no identifier can be derived, so that the user gives one explicitly.
    """
    parts = [p for p in re.split(r"[^\w]+|_", label) if p]
    name = "".join(p[:1].upper() + (p[1:].lower() if p.isupper() or p.islower() else p[1:]) for p in parts)
    if not name or not name.isidentifier() or keyword.iskeyword(name):
        raise SchemaError(
            f"The label {label!r} cannot become a Python class name. Give the type an explicit class name, "
            f"e.g. {{'class_name': 'MyType'}} in a dict schema, or name the class in a schema file and set "
            f"its 'label' attribute to {label!r}."
        )
    return name + "Type" if name in RESERVED_CLASS_NAMES else name


def parameter_name_from_role(role: str) -> str:
    """Turn an event role into a keyword-parameter name: 'Attack-Pattern' -> 'attack_pattern'."""
    name = "_".join(p for p in re.split(r"[^\w]+", role) if p).lower()
    if name and name[0].isdigit():
        name = "role_" + name
    if keyword.iskeyword(name):  # 'from' -> 'from_', as PEP 8 suggests; KnowCoder's style writes it back as 'from'
        name += "_"
    if not name or not name.isidentifier() or name == "trigger":
        raise SchemaError(
            f"The event role {role!r} cannot become a Python parameter name. Rename the role to a word "
            f"such as 'agent' or 'place' (roles are written as keyword arguments in the generated code)."
        )
    return name


@dataclass(frozen=True)
class EntityType:
    label: str
    class_name: str
    description: str = ""
    examples: Tuple[str, ...] = ()
    parent: str = ""  # the base class a prompt names (KnowCoder's hierarchies: `class Dna(ChemicalCompound)`)


@dataclass(frozen=True)
class RelationType:
    label: str
    class_name: str
    head: Tuple[str, ...]  # allowed entity labels of the head; ("Entity",) stands for any
    tail: Tuple[str, ...]
    description: str = ""
    examples: Tuple[Tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Role:
    name: str  # the role as the data names it ("Attack-Pattern")
    parameter: str  # the keyword parameter the code uses ("attack_pattern")
    types: Tuple[str, ...] = (ANY_ENTITY,)
    description: str = ""


@dataclass(frozen=True)
class EventType:
    label: str
    class_name: str
    roles: Tuple[Role, ...] = ()
    description: str = ""
    examples: Tuple[str, ...] = ()  # trigger words

    def role_by_parameter(self, parameter: str) -> Optional[Role]:
        for role in self.roles:
            if role.parameter == parameter:
                return role
        return None


AnyType = Union[EntityType, RelationType, EventType]  # one type of the ontology, of any kind


def entity_labels_named_by(types: Sequence[AnyType]) -> Set[str]:
    """The entity labels that the heads and tails of the relations, and the roles of the events, in `types` name."""
    named: Set[str] = set()
    for t in types:
        if isinstance(t, RelationType):
            named.update(t.head + t.tail)
        elif isinstance(t, EventType):
            for role in t.roles:
                named.update(role.types)
    return named


@dataclass(frozen=True)
class Schema:
    """An ontology whose types all render as Python classes. Build it with `Schema.build` to validate it."""

    entities: Tuple[EntityType, ...] = ()
    relations: Tuple[RelationType, ...] = ()
    events: Tuple[EventType, ...] = ()
    _by_class: Dict[str, "AnyType"] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        entities: Iterable[EntityType] = (),
        relations: Iterable[RelationType] = (),
        events: Iterable[EventType] = (),
    ) -> "Schema":
        schema = cls(tuple(entities), tuple(relations), tuple(events))
        schema._validate()
        return schema

    # ---- lookup -------------------------------------------------------------------------------
    def type_for_class(self, class_name: str):
        """The type a generated class name stands for, or None for a class outside the schema."""
        return self._by_class.get(class_name)

    def entity_label_for_class(self, class_name: str) -> Optional[str]:
        found = self._by_class.get(class_name)
        return found.label if isinstance(found, EntityType) else None

    def entity_by_label(self, label: str) -> Optional[EntityType]:
        for entity in self.entities:
            if entity.label == label:
                return entity
        return None

    @property
    def types(self) -> Tuple["AnyType", ...]:
        return self.entities + self.relations + self.events

    @property
    def is_empty(self) -> bool:
        return not (self.entities or self.relations or self.events)

    def subset(self, types: Sequence["AnyType"]) -> "Schema":
        """A schema holding `types` plus the entity types their relations and roles refer to."""
        wanted = {t.label for t in types if isinstance(t, EntityType)} | entity_labels_named_by(types)
        return Schema.build(
            [e for e in self.entities if e.label in wanted],
            [t for t in types if isinstance(t, RelationType)],
            [t for t in types if isinstance(t, EventType)],
        )

    # ---- validation ---------------------------------------------------------------------------
    def _validate(self) -> None:
        if self.is_empty:
            raise SchemaError("The schema defines no entity, relation or event type. Add at least one type.")
        labels: Dict[Tuple[str, str], str] = {}
        by_class: Dict[str, AnyType] = {}
        for kind, group in (("entity", self.entities), ("relation", self.relations), ("event", self.events)):
            for t in group:
                if not t.label or not t.label.strip():
                    raise SchemaError(f"A {kind} type has an empty label. Give every type a non-empty label.")
                if (kind, t.label) in labels:
                    raise SchemaError(f"The {kind} label {t.label!r} is defined twice. Each label must be unique.")
                labels[(kind, t.label)] = t.class_name
                if not t.class_name.isidentifier() or keyword.iskeyword(t.class_name):
                    raise SchemaError(
                        f"The class name {t.class_name!r} of {kind} type {t.label!r} is not a Python identifier. "
                        "Use letters, digits and underscores, not starting with a digit."
                    )
                reserved = RESERVED_ENTITY_CLASS_NAMES if kind == "entity" else RESERVED_CLASS_NAMES
                if t.class_name in reserved:
                    raise SchemaError(
                        f"The class name {t.class_name!r} of {kind} type {t.label!r} is reserved by the prompt. "
                        "Choose another class name."
                    )
                if t.class_name in by_class:
                    other = by_class[t.class_name]
                    raise SchemaError(
                        f"The types {other.label!r} and {t.label!r} both become the class {t.class_name!r}. "
                        "Give one of them an explicit class name."
                    )
                by_class[t.class_name] = t
        for e in self.entities:
            if e.parent and (not e.parent.isidentifier() or keyword.iskeyword(e.parent)):
                raise SchemaError(
                    f"The parent {e.parent!r} of entity type {e.label!r} is not a Python class name. Give the "
                    "name of its base class, e.g. 'PhysicalEntity', or leave it out."
                )
        entity_labels = {e.label for e in self.entities} | {ANY_ENTITY}
        for rel in self.relations:
            for side, allowed in (("head", rel.head), ("tail", rel.tail)):
                if not allowed:
                    raise SchemaError(f"The relation {rel.label!r} has no {side} type. Name an entity type.")
                for label in allowed:
                    if label not in entity_labels:
                        raise SchemaError(
                            f"The relation {rel.label!r} has {side} type {label!r}, which is not an entity type "
                            f"of the schema. Define it as an entity, or use one of {sorted(entity_labels)}."
                        )
        for event in self.events:
            seen = set()
            for role in event.roles:
                if role.parameter in seen:
                    raise SchemaError(
                        f"The event {event.label!r} has two roles that both become the parameter "
                        f"{role.parameter!r}. Rename one of them."
                    )
                seen.add(role.parameter)
                for label in role.types:
                    if label not in entity_labels:
                        raise SchemaError(
                            f"The role {role.name!r} of event {event.label!r} has type {label!r}, which is not an "
                            f"entity type of the schema. Define it as an entity, or use 'Entity' for any."
                        )
        object.__setattr__(self, "_by_class", by_class)

    # ---- serialization ------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, object]:
        """A plain dict that `schema_from_dict` reads back into an equal schema."""
        return {
            "entities": {
                e.label: {"class_name": e.class_name, "description": e.description, "examples": list(e.examples),
                          **({"parent": e.parent} if e.parent else {})}
                for e in self.entities
            },
            "relations": {
                r.label: {
                    "class_name": r.class_name,
                    "head": list(r.head),
                    "tail": list(r.tail),
                    "description": r.description,
                    "examples": [list(pair) for pair in r.examples],
                }
                for r in self.relations
            },
            "events": {
                ev.label: {
                    "class_name": ev.class_name,
                    "description": ev.description,
                    "examples": list(ev.examples),
                    "roles": {
                        role.name: {"types": list(role.types), "parameter": role.parameter,
                                    "description": role.description}
                        for role in ev.roles
                    },
                }
                for ev in self.events
            },
        }


def entity_labels_for(allowed: Sequence[str], schema: Schema) -> List[str]:
    """Expand ('Entity',) to every entity label of the schema."""
    if ANY_ENTITY in allowed:
        return [e.label for e in schema.entities]
    return list(allowed)
