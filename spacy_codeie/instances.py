"""Typed instances: what the generated code says, before it is tied to offsets.

The parser produces them from completions; the instance writer renders them (from gold annotations) into
completions. One structure both ways keeps training data and inference in step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union


@dataclass(frozen=True)
class Mention:
    """A mention string with its entity label; label None means the generic `Entity` class."""

    text: str
    label: Optional[str] = None


@dataclass(frozen=True)
class EntityInstance:
    label: str
    text: str


@dataclass(frozen=True)
class RelationInstance:
    label: str
    head: Mention
    tail: Mention


@dataclass(frozen=True)
class EventInstance:
    label: str
    trigger: str
    arguments: Tuple[Tuple[str, Mention], ...] = ()  # (role name, mention), in generation order


Instance = Union[EntityInstance, RelationInstance, EventInstance]


@dataclass
class ParseResult:
    """The instances recovered from one completion, and what had to be dropped on the way."""

    instances: List[Instance] = field(default_factory=list)
    unparseable: int = 0  # elements that are not valid Python expressions
    unknown_class: int = 0  # calls of a class the schema does not define (or not a call at all)
    unknown_role: int = 0  # event arguments under a role the event type does not have
    bad_arguments: int = 0  # wrong shape or type of arguments
    truncated: bool = False  # the list was never closed (cut off by a token limit)
    empty: bool = False  # the completion held nothing at all

    @property
    def rejected(self) -> int:
        return self.unparseable + self.unknown_class + self.unknown_role + self.bad_arguments
