"""What a view draws, before any HTML: mentions (with nesting), arcs between them, and an error status for each.

A `DocView` is built from a shared-format record or from a `Doc` (through `readers.doc_to_record`, so both
paths draw the same thing). Mentions are deduplicated: a span that is an entity, a relation argument and an
event argument is drawn once and every arc points at it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Set, Tuple, Union

from ..errors import CodeIEError

MentionKind = Literal["entity", "trigger", "argument"]
ArcKind = Literal["relation", "role"]
Status = Literal["ok", "fp", "fn", "label", "boundary"]

# Where two mentions cover the same characters, entities enclose triggers, which enclose bare arguments.
KIND_ORDER: Dict[str, int] = {"entity": 0, "trigger": 1, "argument": 2}


class VisualizeError(CodeIEError):
    """A record or option cannot be drawn as given."""


@dataclass
class Mention:
    id: int
    start: int
    end: int
    label: str  # "" for an event argument that is not also an entity
    kind: MentionKind
    status: Status = "ok"


@dataclass
class Arc:
    head: Optional[int]  # mention ids; head None: a role of a trigger-less event, drawn on its argument alone
    tail: int
    label: str  # relation label, or the argument's role
    kind: ArcKind
    event: str = ""  # the event type, for role arcs
    status: Status = "ok"


@dataclass
class DocView:
    key: str
    text: str
    lang: str = ""
    mentions: List[Mention] = field(default_factory=list)
    arcs: List[Arc] = field(default_factory=list)
    note: str = ""  # a line shown under the doc's title (e.g. the extraction diagnostics)
    triggerless_events: int = 0  # events with no trigger to mark (YAYI-UIE's answers): counted, not drawn

    def mention(self, mention_id: int) -> Mention:
        return self.mentions[mention_id]

    def labels(self) -> Set[str]:
        """Every label the view shows: entity and event types, relation labels and roles."""
        out = {m.label for m in self.mentions if m.label}
        out.update(a.label for a in self.arcs)
        out.update(a.event for a in self.arcs if a.event)  # the type of a trigger-less event is on its arcs only
        return out

    def counts(self) -> Dict[str, int]:
        return {
            "entities": sum(m.kind == "entity" for m in self.mentions),
            "relations": sum(a.kind == "relation" for a in self.arcs),
            "events": sum(m.kind == "trigger" for m in self.mentions) + self.triggerless_events,
        }


class _Builder:
    """Adds mentions once per (span, label, kind) and finds the mention an arc should point at."""

    def __init__(self, view: DocView, where: str):
        self.view = view
        self.where = where
        self.index: Dict[Tuple[int, int, str, str], int] = {}

    def _check(self, start: Any, end: Any, what: str) -> Tuple[int, int]:
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(self.view.text)):
            raise VisualizeError(
                f"{self.where}: {what} has offsets ({start!r}, {end!r}) that are not a non-empty span of the "
                f"text (length {len(self.view.text)}). Offsets are code points into 'text', end exclusive; fix "
                f"or drop that annotation.")
        return start, end

    def add(self, start: Any, end: Any, label: str, kind: MentionKind, what: str) -> int:
        start, end = self._check(start, end, what)
        key = (start, end, label, kind)
        if key not in self.index:
            self.index[key] = len(self.view.mentions)
            self.view.mentions.append(Mention(len(self.view.mentions), start, end, label, kind))
        return self.index[key]

    def argument(self, start: Any, end: Any, what: str) -> int:
        """An event argument: an existing mention of that span (entity first), else a bare one."""
        start, end = self._check(start, end, what)
        for kind in ("entity", "trigger"):
            for (s, e, _, k), mention_id in self.index.items():
                if (s, e, k) == (start, end, kind):
                    return mention_id
        return self.add(start, end, "", "argument", what)


def view_from_record(record: Mapping[str, Any], key: Optional[str] = None) -> DocView:
    """A view of one record in the shared JSONL format (what `extract` writes, or gold data)."""
    text = record.get("text")
    name = str(record.get("id", key if key is not None else ""))
    where = f"record {name!r}" if name else "a record"
    if not isinstance(text, str):
        raise VisualizeError(f"{where} has no 'text' string; records need 'text' (see the shared JSONL format).")
    view = DocView(key=name, text=text, lang=str(record.get("lang") or ""))
    build = _Builder(view, where)
    entity_ids: List[int] = []
    for i, ent in enumerate(record.get("entities") or ()):
        entity_ids.append(build.add(ent.get("start"), ent.get("end"), str(ent.get("label", "")), "entity",
                                    f"entity {i}"))
    for i, rel in enumerate(record.get("relations") or ()):
        head, tail = rel.get("head"), rel.get("tail")
        if not (isinstance(head, int) and isinstance(tail, int) and 0 <= head < len(entity_ids)
                and 0 <= tail < len(entity_ids)):
            raise VisualizeError(f"{where}: relation {i} has head/tail {head!r}/{tail!r}, which are not indices "
                                 f"into its {len(entity_ids)} entities.")
        view.arcs.append(Arc(entity_ids[head], entity_ids[tail], str(rel.get("label", "")), "relation"))
    for i, event in enumerate(record.get("events") or ()):
        label = str(event.get("label", ""))
        trig = event.get("trigger")
        trigger: Optional[int] = None  # a trigger-less event: its role arcs start nowhere
        if trig is not None:
            trigger = build.add(trig.get("start"), trig.get("end"), label, "trigger", f"event {i}'s trigger")
        else:
            view.triggerless_events += 1
        for j, arg in enumerate(event.get("arguments") or ()):
            target = build.argument(arg.get("start"), arg.get("end"), f"event {i}'s argument {j}")
            view.arcs.append(Arc(trigger, target, str(arg.get("role", "")), "role", event=label))
    diagnostics = record.get("diagnostics")
    if isinstance(diagnostics, dict):
        dropped = {k: v for k, v in diagnostics.items()
                   if k in ("unparseable", "unknown_class", "unknown_role", "bad_arguments", "hallucinated",
                            "truncated", "misaligned") and v}
        view.note = ", ".join(f"{k}: {v}" for k, v in sorted(dropped.items()))
    return view


def view_from_doc(
    doc: Any,
    *,
    spans_key: str = "codeie",
    relations_extension: str = "relations",
    events_extension: str = "events",
    key: Optional[str] = None,
) -> DocView:
    """A view of a Doc: every mention in `doc.spans[spans_key]` and `doc.ents`, relations and events."""
    from ..readers import RECORD_ID_KEY, doc_to_record

    record = doc_to_record(doc, spans_key=spans_key, relations_extension=relations_extension,
                           events_extension=events_extension)
    seen = {(e["start"], e["end"], e["label"]) for e in record["entities"]}
    for ent in doc.ents:  # entities set by another component, outside the codeie span group
        if (ent.start_char, ent.end_char, ent.label_) not in seen:
            record["entities"].append({"start": ent.start_char, "end": ent.end_char, "label": ent.label_})
    if RECORD_ID_KEY not in doc.user_data:
        record["id"] = key if key is not None else ""
    return view_from_record(record)


Viewable = Union[Mapping[str, Any], Any]


def to_views(docs: Union[Viewable, Sequence[Viewable]], **doc_settings: Any) -> List[DocView]:
    """Docs, records (dicts in the shared format) or views, alone or in a list, as views keyed by position."""
    from spacy.tokens import Doc

    items = [docs] if isinstance(docs, (Doc, Mapping, DocView)) else list(docs)
    views = []
    for i, item in enumerate(items):
        if isinstance(item, DocView):
            views.append(item)
        elif isinstance(item, Doc):
            views.append(view_from_doc(item, key=str(i), **doc_settings))
        elif isinstance(item, Mapping):
            views.append(view_from_record(item, key=str(i)))
        else:
            raise VisualizeError(f"Cannot draw a {type(item).__name__}: give spaCy Docs or records (dicts in the "
                                 f"shared JSONL format), one or a list.")
    return views


# ---- nesting ------------------------------------------------------------------------------------------
@dataclass
class Piece:
    """A run of text inside one mention; a mention that crosses another is cut into several pieces."""
    mention: Optional[Mention]
    children: List[Union[str, "Piece"]] = field(default_factory=list)
    first: bool = True
    last: bool = False

    @property
    def height(self) -> int:
        """How many mentions are stacked inside this piece (itself included): sets its padding."""
        inner = [c.height for c in self.children if isinstance(c, Piece)]
        return (1 if self.mention is not None else 0) + max(inner, default=0)


def nest(text: str, mentions: Sequence[Mention]) -> Piece:
    """The text as a tree of pieces that HTML can nest: longer mentions outside, crossing ones split."""
    order = sorted(mentions, key=lambda m: (m.start, -m.end, KIND_ORDER[m.kind], m.id))
    starts: Dict[int, List[Mention]] = {}
    for m in order:
        starts.setdefault(m.start, []).append(m)
    points = sorted({0, len(text)} | {m.start for m in mentions} | {m.end for m in mentions})
    root = Piece(None)
    stack = [root]

    def open_piece(mention: Mention, first: bool) -> None:
        piece = Piece(mention, first=first)
        stack[-1].children.append(piece)
        stack.append(piece)

    for i, point in enumerate(points):
        reopen: List[Mention] = []
        while any(p.mention is not None and p.mention.end == point for p in stack[1:]):
            piece = stack.pop()
            if piece.mention is None:  # only the root has none, and it is never popped
                break
            if piece.mention.end == point:
                piece.last = True
            else:
                reopen.append(piece.mention)
        for mention in reversed(reopen):
            open_piece(mention, first=False)
        for mention in starts.get(point, ()):
            open_piece(mention, first=True)
        if i + 1 < len(points):
            stack[-1].children.append(text[point:points[i + 1]])
    return root
