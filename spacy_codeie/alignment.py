"""Mention strings -> character spans -> token spans.

Strings are matched in generation order, each used at most as often as it occurs in the window. Matching tries,
in turn: the exact string; case-insensitive per character (offsets never shift, even where case folding
changes lengths); with whitespace runs collapsed; and last, caseless across Unicode normalization forms (NFC
and NFD, compatibility forms such as 'ﬁ', case-folding expansions such as 'ß' and 'SS', final sigma). Every
rewritten form keeps the original span of each of its characters and a match must start and end on the edge
of an original character, so offsets stay exact. A string not in the text is a hallucination: dropped and
counted, never guessed. Offsets are local to one window and never cross its boundary.

The choices below are made with sorted occurrence lists, queues and a prefix-maximum tree, so a mention that
occurs n times costs about n log n, not n squared, however many instances name it.
"""
from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, Iterator, List, Literal, Optional, Sequence, Set, Tuple, get_args

from spacy.tokens import Doc, Span

from .instances import EntityInstance, EventInstance, Instance, Mention, RelationInstance

CharSpan = Tuple[int, int]
Unit = Tuple[int, int, str]  # (start, end) of original text and what it is rewritten to
_WS = re.compile(r"\s+")
_RUNS = re.compile(r"\s+|\S")


def _fold_char(ch: str) -> str:
    low = ch.lower()
    return low if len(low) == 1 else ch


def _case_units(text: str) -> Iterator[Unit]:
    """Each character lower-cased on its own, where that keeps it one character."""
    for i, ch in enumerate(text):
        yield i, i + 1, _fold_char(ch)


def _collapsed_units(text: str) -> Iterator[Unit]:
    """Whitespace runs as one space, other characters as in `_case_units`."""
    for match in _RUNS.finditer(text):
        ch = match.group()
        yield match.start(), match.end(), " " if ch.isspace() else _fold_char(ch)


def _caseless(piece: str) -> str:
    return unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", piece).casefold())


def _unicode_units(text: str) -> Iterator[Unit]:
    """Whitespace runs as one space; each base character with its combining marks, decomposed and case-folded.

    A base character and its marks are rewritten together, because normalization reorders marks within
    that group but never across it; so rewriting unit by unit gives the same string as rewriting the whole.
    """
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            yield i, j, " "
        else:
            j = i + 1
            while j < n and unicodedata.combining(text[j]):
                j += 1
            yield i, j, _caseless(text[i:j])
        i = j


def _rewrite(text: str, units: Callable[[str], Iterator[Unit]]) -> str:
    return "".join(out for _, _, out in units(text)).strip()


def _find_all(haystack: str, needle: str) -> List[int]:
    starts, i = [], haystack.find(needle)
    while i != -1:
        starts.append(i)
        i = haystack.find(needle, i + 1)
    return starts


class _Projection:
    """A rewritten copy of the text that remembers, for each of its characters, where in the original it came
    from; matches in the copy map back to exact original offsets."""

    def __init__(self, text: str, units: Callable[[str], Iterator[Unit]]):
        pieces: List[str] = []
        self._start: List[int] = []  # original start of the unit of each rewritten character
        self._end: List[int] = []
        self._edge: Set[int] = set()  # rewritten offsets where a unit begins (and len: where the last ends)
        for start, end, out in units(text):
            self._edge.add(len(self._start))
            pieces.append(out)
            self._start.extend([start] * len(out))
            self._end.extend([end] * len(out))
        self._edge.add(len(self._start))
        self.text = "".join(pieces)

    def find(self, needle: str) -> List[CharSpan]:
        """Original spans of the needle's matches that begin and end on unit edges ('s' is not half of 'ß')."""
        if not needle:
            return []
        size = len(needle)
        return [(self._start[s], self._end[s + size - 1]) for s in _find_all(self.text, needle)
                if s in self._edge and s + size in self._edge]


# The matching strategies after the exact one, in the order they are tried.
_STRATEGIES: Tuple[Callable[[str], Iterator[Unit]], ...] = (_case_units, _collapsed_units, _unicode_units)


@dataclass
class AlignedEntity:
    start: int
    end: int
    label: str


@dataclass
class AlignedArgument:
    start: int
    end: int
    label: Optional[str]
    role: Optional[str] = None


@dataclass
class AlignedRelation:
    label: str
    head: AlignedArgument
    tail: AlignedArgument


@dataclass
class AlignedEvent:
    label: str
    trigger: Optional[CharSpan]  # None for an answer that names no trigger (YAYI-UIE's role dicts)
    arguments: List[AlignedArgument] = field(default_factory=list)


@dataclass
class AlignmentResult:
    entities: List[AlignedEntity] = field(default_factory=list)
    relations: List[AlignedRelation] = field(default_factory=list)
    events: List[AlignedEvent] = field(default_factory=list)
    mentions: int = 0  # mention strings looked up
    hallucinated: int = 0  # strings not found in the text
    duplicates: int = 0  # strings generated more often than they occur


def _inside_another(span: CharSpan, placed: Sequence[CharSpan]) -> bool:
    """Whether `span` lies within a different span already placed."""
    start, end = span
    return any(s <= start and end <= e and (s, e) != span for s, e in placed)


class _PrefixMax:
    """Largest end of the spans added so far that start at or before a position (a Fenwick tree)."""

    def __init__(self, size: int):
        self._tree = [-1] * (size + 1)

    def add(self, start: int, end: int) -> None:
        i = start + 1
        while i < len(self._tree):
            if self._tree[i] < end:
                self._tree[i] = end
            i += i & -i

    def upto(self, start: int) -> int:
        i, best = min(start + 1, len(self._tree) - 1), -1
        while i > 0:
            if self._tree[i] > best:
                best = self._tree[i]
            i -= i & -i
        return best


class _Queues:
    """The free occurrences of one mention under one label in one channel, sorted by offset, in the order they
    are preferred: outside placed mentions on word boundaries, outside placed mentions, the same inside placed
    ones, and last the places another label already holds."""

    def __init__(self, whole: List[CharSpan], cut: List[CharSpan]):
        self.outside: Tuple[Deque[CharSpan], Deque[CharSpan]] = (deque(whole), deque(cut))
        self.inside: Tuple[Deque[CharSpan], Deque[CharSpan]] = (deque(), deque())
        self.held: Deque[CharSpan] = deque()


class _Channel:
    """Occurrences handed out in one channel: each occurrence once per label, so a string generated under two
    labels keeps a place under each, as it would from two separate prompts."""

    def __init__(self, length: int):
        self.taken: Set[CharSpan] = set()  # by any label
        self.by_label: Dict[Optional[str], Set[CharSpan]] = {}
        self.cover = _PrefixMax(length)
        self.queues: Dict[Tuple[str, Optional[str]], _Queues] = {}

    def covered(self, span: CharSpan) -> bool:
        """Within a taken span; a free span is never itself taken, so any covering span is a different one."""
        return self.cover.upto(span[0]) >= span[1]

    def place(self, span: CharSpan, label: Optional[str]) -> None:
        self.by_label.setdefault(label, set()).add(span)
        if span not in self.taken:
            self.taken.add(span)
            self.cover.add(*span)

    def best(self, queues: _Queues, label: Optional[str]) -> Optional[CharSpan]:
        used = self.by_label.get(label, set())
        for outside, inside in zip(queues.outside, queues.inside):
            while outside:
                span = outside.popleft()
                if span in used:
                    continue
                if span in self.taken:  # another label's place: only when no free one is left
                    queues.held.append(span)
                    continue
                if self.covered(span):  # stays covered: spans are only ever added
                    inside.append(span)
                    continue
                return span
        for inside in queues.inside:
            while inside:
                span = inside.popleft()
                if span in used:
                    continue
                if span in self.taken:
                    queues.held.append(span)
                    continue
                return span
        while queues.held:
            span = queues.held.popleft()
            if span not in used:
                return span
        return None


class StringAligner:
    """Finds mention strings in one window of text and hands out their occurrences in order."""

    def __init__(self, text: str):
        self.text = text
        self._projections: Dict[int, _Projection] = {}
        self._cache: Dict[str, List[CharSpan]] = {}
        self._channels: Dict[str, _Channel] = {}

    def occurrences(self, mention: str) -> List[CharSpan]:
        """Every place the mention occurs, in text order, by the first matching strategy that finds any."""
        found = self._cache.get(mention)
        if found is not None:
            return found
        spans: List[CharSpan] = []
        needle = mention.strip()
        if needle:
            spans = [(s, s + len(needle)) for s in _find_all(self.text, needle)]
            for level, units in enumerate(_STRATEGIES):
                if spans:
                    break
                if level not in self._projections:
                    self._projections[level] = _Projection(self.text, units)
                spans = self._projections[level].find(_rewrite(needle, units))
        self._cache[mention] = spans
        return spans

    def _cuts_word(self, span: CharSpan) -> bool:
        start, end = span
        text = self.text
        return (start > 0 and text[start - 1].isalnum() and text[start].isalnum()) or (
            end < len(text) and text[end].isalnum() and text[end - 1].isalnum()
        )

    def take(self, mention: str, channel: str, label: Optional[str] = None) -> Tuple[Optional[CharSpan], str]:
        """The best unused occurrence of `mention` in `channel`, with 'ok', 'missing' or 'duplicate'.

        Each occurrence is handed out once per channel and label, so a string generated k times takes k places,
        and one generated under two labels takes a place under each. Preferred are occurrences no other label
        holds, outside mentions already placed, then on word boundaries, then the first in the text.
        """
        spans = self.occurrences(mention)
        if not spans:
            return None, "missing"
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel(len(self.text))
        queues = state.queues.get((mention, label))
        if queues is None:
            cuts = [self._cuts_word(span) for span in spans]
            queues = state.queues[(mention, label)] = _Queues([s for s, c in zip(spans, cuts) if not c],
                                                              [s for s, c in zip(spans, cuts) if c])
        best = state.best(queues, label)
        if best is None:
            return None, "duplicate"
        state.place(best, label)
        return best, "ok"


class _Options:
    """Where one argument may point (spans and labels in the order candidates() lists them), sorted by offset
    for nearest-occurrence look-ups. Shared between instances; each pick makes a fresh AlignedArgument."""

    def __init__(self, spans: List[CharSpan], labels: List[Optional[str]]):
        self.spans = spans
        self.labels = labels
        self.order = sorted(range(len(spans)), key=lambda k: spans[k][0])
        self.starts = [spans[k][0] for k in self.order]

    def arg(self, k: int, role: Optional[str] = None) -> AlignedArgument:
        start, end = self.spans[k]
        return AlignedArgument(start, end, self.labels[k], role)

    def _around(self, anchor: int) -> Iterator[int]:
        """Indices into `spans` by distance from `anchor`, the earlier offset first at equal distance."""
        right = bisect_left(self.starts, anchor)
        left = right - 1
        while left >= 0 or right < len(self.starts):
            if right >= len(self.starts) or (left >= 0 and anchor - self.starts[left] <= self.starts[right] - anchor):
                yield self.order[left]
                left -= 1
            else:
                yield self.order[right]
                right += 1

    def distance(self, anchor: int) -> int:
        """How far the nearest option starts from `anchor`."""
        right = bisect_left(self.starts, anchor)
        return min(abs(self.starts[j] - anchor) for j in (right - 1, right) if 0 <= j < len(self.starts))

    def nearest_ties_in_order(self, anchor: int) -> Tuple[int, int]:
        """(distance, index in `spans`) of the nearest option; at equal distance the one listed first."""
        right = bisect_left(self.starts, anchor)
        best: Optional[Tuple[int, int]] = None
        for j in (right - 1, right):
            if 0 <= j < len(self.starts):
                key = (abs(self.starts[j] - anchor), self.order[j])
                if best is None or key < best:
                    best = key
        assert best is not None
        return best

    def free_nearest(self, anchor: int, placed: List[CharSpan], placed_set: Set[CharSpan]) -> int:
        """The nearest option not yet placed and not inside a placed span; else the nearest inside one; else
        the best of those placed already (a string named more often than it occurs)."""
        first_inside: Optional[int] = None
        already: List[int] = []
        for k in self._around(anchor):
            span = self.spans[k]
            if span in placed_set:
                already.append(k)
            elif _inside_another(span, placed):
                if first_inside is None:
                    first_inside = k
            else:
                return k
        if first_inside is not None:
            return first_inside
        return min(already, key=lambda k: _inside_another(self.spans[k], placed))  # stable: nearest first


def _closest_pair(heads: _Options, tails: _Options) -> Tuple[AlignedArgument, AlignedArgument]:
    """The (head, tail) pair with the nearest offsets, then the earliest head; at equal distance the tail listed
    first. Arguments of one relation sit near each other."""
    best: Optional[Tuple[int, int, int, int]] = None  # distance, head start, head index, tail index
    for h, (start, _) in enumerate(heads.spans):
        distance, t = tails.nearest_ties_in_order(start)
        if best is None or (distance, start) < best[:2]:
            best = (distance, start, h, t)
    assert best is not None
    return heads.arg(best[2]), tails.arg(best[3])


def align_instances(text: str, instances: Sequence[Instance], offset: int = 0) -> AlignmentResult:
    """Tie the instances generated for one window to character offsets in the whole doc."""
    aligner = StringAligner(text)
    result = AlignmentResult()
    entity_spans: List[AlignedEntity] = []
    entity_at: Dict[CharSpan, Tuple[int, AlignedEntity]] = {}  # span -> (generation order, entity)
    known: Dict[Tuple[str, Optional[str], int], Optional[_Options]] = {}
    earlier: Dict[EventInstance, Set[CharSpan]] = {}  # argument places of a trigger-less event named before

    def count(status: str) -> None:
        result.mentions += 1
        if status == "missing":
            result.hallucinated += 1
        elif status == "duplicate":
            result.duplicates += 1

    def candidates(mention: Mention) -> Optional[_Options]:
        """Where an argument may point: mentions the model also named as entities (in the order it named
        them) first, else every occurrence; None where the string is not in the text."""
        spans = aligner.occurrences(mention.text)
        count("ok" if spans else "missing")
        key = (mention.text, mention.label, len(entity_spans))  # entities are only ever added
        if key not in known:
            named = sorted(entity_at[span] for span in spans if span in entity_at
                           and mention.label in (None, entity_at[span][1].label))
            if named:
                known[key] = _Options([(e.start, e.end) for _, e in named],
                                      [mention.label or e.label for _, e in named])
            else:
                known[key] = _Options(spans, [mention.label] * len(spans)) if spans else None
        return known[key]

    for inst in instances:
        if isinstance(inst, EntityInstance):
            span, status = aligner.take(inst.text, "entity", inst.label)
            count(status)
            if span:
                entity_at[span] = (len(entity_spans), AlignedEntity(span[0], span[1], inst.label))
                entity_spans.append(entity_at[span][1])
        elif isinstance(inst, RelationInstance):
            heads, tails = candidates(inst.head), candidates(inst.tail)
            if heads and tails:
                head, tail = _closest_pair(heads, tails)
                result.relations.append(AlignedRelation(inst.label, head, tail))
        elif isinstance(inst, EventInstance) and not inst.trigger:
            event = _align_triggerless(inst, candidates, earlier.setdefault(inst, set()))
            if event is not None:
                result.events.append(event)
        elif isinstance(inst, EventInstance):
            event = _align_event(inst, aligner, candidates, count)
            if event is not None:
                result.events.append(event)
    result.entities = entity_spans
    if offset:
        _shift(result, offset)
    return result


def _align_event(inst: EventInstance, aligner: StringAligner,
                 candidates: Callable[[Mention], Optional[_Options]],
                 count: Callable[[str], None]) -> Optional[AlignedEvent]:
    """Pick the trigger occurrence closest to the event's arguments, then each argument closest to it.

    Several events may share one trigger (FewFC lists one event per shareholder under a single verb), so a
    trigger is not used up like an entity mention; only argument-less events take occurrences in turn.
    """
    triggers = aligner.occurrences(inst.trigger)
    count("ok" if triggers else "missing")
    if not triggers:
        return None
    found = [(role, candidates(mention)) for role, mention in inst.arguments]
    options = [(role, option) for role, option in found if option]
    if len(triggers) == 1:
        trigger = triggers[0]
    elif options:
        trigger = min(triggers, key=lambda t: (sum(o.distance(t[0]) for _, o in options), t[0]))
    else:
        taken, _ = aligner.take(inst.trigger, "trigger:" + inst.label)
        trigger = taken or triggers[0]
    event = AlignedEvent(inst.label, trigger)
    placed: List[CharSpan] = [trigger]
    placed_set: Set[CharSpan] = {trigger}
    for role, option in options:
        # a string named twice takes two places; a place inside another argument comes last; then distance
        chosen = option.arg(option.free_nearest(trigger[0], placed, placed_set), role)
        placed.append((chosen.start, chosen.end))
        placed_set.add((chosen.start, chosen.end))
        event.arguments.append(chosen)
    return event


def _align_triggerless(inst: EventInstance, candidates: Callable[[Mention], Optional[_Options]],
                       earlier: Set[CharSpan]) -> Optional[AlignedEvent]:
    """An event whose answer names no trigger: its arguments placed close to each other, with no trigger.

    The anchor stands in for the trigger: the argument occurrence with the least total distance to the other
    arguments (the earliest at equal cost), and each argument takes its free occurrence nearest to it. The same
    event named again in a window prefers places its earlier copies did not take (`earlier`, updated here), as
    a string named twice in one event takes two places; no occurrence is used up for other instances. With no
    argument in the text there is nothing to place, and the event is dropped.
    """
    options = [(role, option) for role, option in ((r, candidates(m)) for r, m in inst.arguments) if option]
    if not options:
        return None
    spans = {span for _, option in options for span in option.spans}
    starts = {span[0] for span in spans - earlier} or {span[0] for span in spans}
    anchor = min(starts, key=lambda s: (sum(option.distance(s) for _, option in options), s))
    event = AlignedEvent(inst.label, None)
    placed: List[CharSpan] = list(earlier)
    placed_set: Set[CharSpan] = set(earlier)
    for role, option in options:
        chosen = option.arg(option.free_nearest(anchor, placed, placed_set), role)
        placed.append((chosen.start, chosen.end))
        placed_set.add((chosen.start, chosen.end))
        event.arguments.append(chosen)
    earlier.update(placed_set)
    return event


def _shift(result: AlignmentResult, offset: int) -> None:
    for ent in result.entities:
        ent.start += offset
        ent.end += offset
    for rel in result.relations:
        for arg in (rel.head, rel.tail):
            arg.start += offset
            arg.end += offset
    for event in result.events:
        if event.trigger is not None:
            event.trigger = (event.trigger[0] + offset, event.trigger[1] + offset)
        for arg in event.arguments:
            arg.start += offset
            arg.end += offset


AlignmentMode = Literal["strict", "contract", "expand"]
ALIGNMENT_MODES = get_args(AlignmentMode)


def token_span(doc: Doc, start: int, end: int, label: str = "", mode: str = "expand") -> Optional[Span]:
    """The token span for character offsets, or None when it cannot be formed under `mode`.

    'expand' (the default) widens to whole tokens, which is what unsegmented scripts need when the tokenizer
    cuts words differently from the model; 'strict' keeps only exact token boundaries.
    """
    span = doc.char_span(start, end, label=label, alignment_mode=mode)
    if span is None or len(span) == 0:
        return None
    return span
