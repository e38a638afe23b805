"""Base classes for schema files.

A schema file subclasses these so that editors and type checkers understand it; spacy-codeie itself only
reads such files with `ast` and never imports them.
"""
from typing import Any, List


class Entity:
    """An entity mention. Subclass it once per entity type; set `label` to choose the spaCy label."""

    label: str

    def __init__(self, name: str):
        self.name = name


class Relation:
    """A relation between two entities. Annotate `head` and `tail` with entity classes."""

    label: str

    def __init__(self, head: Entity, tail: Entity):
        self.head = head
        self.tail = tail


class Event:
    """An event: a trigger word plus roles, each annotated `List[<EntityClass>]`."""

    label: str

    def __init__(self, trigger: str, **roles: List[Any]):
        self.trigger = trigger
        self.roles = roles
