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


# ---- open IE and on-demand IE: strings as the model wrote them, before they are found in the text ----------
TUPLE_PARTS = ("subject", "predicate", "object", "time", "location")


@dataclass(frozen=True)
class TupleInstance:
    """One schema-free tuple; an empty string is a part the answer left out (only object, time, location)."""

    subject: str
    predicate: str
    object: str = ""
    time: str = ""
    location: str = ""

    def parts(self) -> Tuple[Tuple[str, str], ...]:
        """(part name, text) in TUPLE_PARTS order, the empty ones included."""
        return tuple((name, getattr(self, name)) for name in TUPLE_PARTS)


@dataclass
class TupleParse:
    """The tuples read from one answer, and what had to be dropped on the way."""

    tuples: List[TupleInstance] = field(default_factory=list)
    unparseable: int = 0  # bracketed groups that are not tuples, text that is neither tuples nor "nothing found"
    truncated: bool = False  # the answer was cut to the longest one read
    empty: bool = False  # the answer held nothing at all


@dataclass
class TableParse:
    """The table read from one answer, its cells in the order of the columns asked for."""

    columns: Tuple[str, ...]
    rows: List[Tuple[str, ...]] = field(default_factory=list)
    no_table: int = 0  # the answer held no table (and did not say there was nothing to report)
    ragged_rows: int = 0  # rows with more or fewer cells than the header (padded or cut)
    missing_columns: int = 0  # columns asked for that the answer's header lacks (their cells stay empty)
    extra_columns: int = 0  # columns of the answer that were not asked for (dropped)
    positional_header: int = 0  # the header named none of the columns but had as many: read by position
    empty_rows: int = 0  # rows with no cell under a column asked for (dropped)
    truncated: bool = False
    empty: bool = False
