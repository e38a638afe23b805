"""Mention strings -> character spans -> token spans.

Strings are matched in generation order, each used at most as often as it occurs in the window: exact match
first, then case-insensitive (per character, so offsets never shift even where case folding changes
lengths), then with whitespace runs collapsed. A string not in the text is a hallucination: dropped and
counted, never guessed. Offsets are local to one window and never cross its boundary.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Sequence, Tuple, get_args

from spacy.tokens import Doc, Span

from .instances import EntityInstance, EventInstance, Instance, Mention, RelationInstance

CharSpan = Tuple[int, int]
_WS = re.compile(r"\s+")


def _fold(text: str) -> str:
    """Lower-case each character on its own, keeping one character per character."""
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)


def _find_all(haystack: str, needle: str) -> List[int]:
    starts, i = [], haystack.find(needle)
    while i != -1:
        starts.append(i)
        i = haystack.find(needle, i + 1)
    return starts


class _Collapsed:
    """The text with whitespace runs collapsed to one space, and a map back to original offsets."""

    def __init__(self, text: str):
        chars: List[str] = []
        index: List[int] = []
        for match in re.finditer(r"\s+|\S+", text):
            if match.group().isspace():
                chars.append(" ")
                index.append(match.start())
            else:
                chars.extend(match.group())
                index.extend(range(match.start(), match.end()))
        self.text = "".join(chars)
        self.index = index


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
    trigger: CharSpan
    arguments: List[AlignedArgument] = field(default_factory=list)


@dataclass
class AlignmentResult:
    entities: List[AlignedEntity] = field(default_factory=list)
    relations: List[AlignedRelation] = field(default_factory=list)
    events: List[AlignedEvent] = field(default_factory=list)
    mentions: int = 0  # mention strings looked up
    hallucinated: int = 0  # strings not found in the text
    duplicates: int = 0  # strings generated more often than they occur


def _inside_another(span: CharSpan, placed: List[CharSpan]) -> bool:
    """Whether `span` lies within a different span already placed."""
    start, end = span
    return any(s <= start and end <= e and (s, e) != span for s, e in placed)


class StringAligner:
    """Finds mention strings in one window of text and hands out their occurrences in order."""

    def __init__(self, text: str):
        self.text = text
        self._folded: Optional[str] = None
        self._collapsed: Optional[_Collapsed] = None
        self._collapsed_folded: Optional[str] = None
        self._cache: Dict[str, List[CharSpan]] = {}
        self._taken: Dict[str, List[CharSpan]] = {}

    def occurrences(self, mention: str) -> List[CharSpan]:
        """Every place the mention occurs, by the first matching strategy that finds any."""
        if mention in self._cache:
            return self._cache[mention]
        spans: List[CharSpan] = []
        needle = mention.strip()
        if needle:
            spans = [(s, s + len(needle)) for s in _find_all(self.text, needle)]
            if not spans:
                if self._folded is None:
                    self._folded = _fold(self.text)
                folded = _fold(needle)
                spans = [(s, s + len(folded)) for s in _find_all(self._folded, folded)]
            if not spans:
                spans = self._collapsed_occurrences(needle)
        self._cache[mention] = spans
        return spans

    def _collapsed_occurrences(self, mention: str) -> List[CharSpan]:
        if self._collapsed is None:
            self._collapsed = _Collapsed(self.text)
            self._collapsed_folded = _fold(self._collapsed.text)
        needle = _fold(_WS.sub(" ", mention.strip()))
        index = self._collapsed.index
        spans = []
        for s in _find_all(self._collapsed_folded, needle):
            last = s + len(needle) - 1
            spans.append((index[s], index[last] + 1))
        return spans

    def _rank(self, span: CharSpan, taken: List[CharSpan]) -> Tuple[bool, bool, int]:
        """Prefer occurrences outside mentions already placed, then whole words, then text order."""
        start, end = span
        inside_other = _inside_another(span, taken)
        cuts_word = (start > 0 and self.text[start - 1].isalnum() and self.text[start].isalnum()) or (
            end < len(self.text) and self.text[end].isalnum() and self.text[end - 1].isalnum()
        )
        return inside_other, cuts_word, start

    def take(self, mention: str, channel: str, label: str = "") -> Tuple[Optional[CharSpan], str]:
        """The best unused occurrence of `mention` in `channel`, with 'ok', 'missing' or 'duplicate'.

        Each occurrence is handed out once per channel and label, so a string generated k times takes k places,
        and one generated under two labels takes a place under each (as it would from two separate prompts);
        a place no other label holds comes first.
        """
        spans = self.occurrences(mention)
        if not spans:
            return None, "missing"
        taken = self._taken.setdefault(channel, [])
        used = self._taken.setdefault(f"{channel}:{label}", []) if label else taken
        free = [span for span in spans if span not in used]
        if not free:
            return None, "duplicate"
        best = min(free, key=lambda span: (span in taken, self._rank(span, taken)))
        taken.append(best)
        if used is not taken:
            used.append(best)
        return best, "ok"


def align_instances(text: str, instances: Sequence[Instance], offset: int = 0) -> AlignmentResult:
    """Tie the instances generated for one window to character offsets in the whole doc."""
    aligner = StringAligner(text)
    result = AlignmentResult()
    entity_spans: List[AlignedEntity] = []

    def count(status: str) -> None:
        result.mentions += 1
        if status == "missing":
            result.hallucinated += 1
        elif status == "duplicate":
            result.duplicates += 1

    def candidates(mention: Mention) -> List[AlignedArgument]:
        """Where an argument may point: mentions the model also named as entities first, else every occurrence."""
        spans = aligner.occurrences(mention.text)
        count("ok" if spans else "missing")
        named = [AlignedArgument(e.start, e.end, mention.label or e.label) for e in entity_spans
                 if (e.start, e.end) in spans and mention.label in (None, e.label)]
        return named or [AlignedArgument(start, end, mention.label) for start, end in spans]

    def nearest(options: List[AlignedArgument], anchor: int) -> AlignedArgument:
        return min(options, key=lambda a: (abs(a.start - anchor), a.start))

    for inst in instances:
        if isinstance(inst, EntityInstance):
            span, status = aligner.take(inst.text, "entity", inst.label)
            count(status)
            if span:
                entity_spans.append(AlignedEntity(span[0], span[1], inst.label))
        elif isinstance(inst, RelationInstance):
            heads, tails = candidates(inst.head), candidates(inst.tail)
            if heads and tails:  # the closest pair: arguments of one relation sit near each other
                head, tail = min(((h, t) for h in heads for t in tails),
                                 key=lambda pair: (abs(pair[0].start - pair[1].start), pair[0].start))
                result.relations.append(AlignedRelation(inst.label, head, tail))
        elif isinstance(inst, EventInstance):
            event = _align_event(inst, aligner, candidates, nearest, count)
            if event is not None:
                result.events.append(event)
    result.entities = entity_spans
    if offset:
        _shift(result, offset)
    return result


def _align_event(inst: EventInstance, aligner: StringAligner, candidates, nearest, count) -> Optional[AlignedEvent]:
    """Pick the trigger occurrence closest to the event's arguments, then each argument closest to it.

    Several events may share one trigger (FewFC lists one event per shareholder under a single verb), so a
    trigger is not used up like an entity mention; only argument-less events take occurrences in turn.
    """
    triggers = aligner.occurrences(inst.trigger)
    count("ok" if triggers else "missing")
    if not triggers:
        return None
    options = [(role, candidates(mention)) for role, mention in inst.arguments]
    options = [(role, found) for role, found in options if found]
    if len(triggers) == 1:
        trigger = triggers[0]
    elif options:
        trigger = min(triggers, key=lambda t: (sum(abs(nearest(found, t[0]).start - t[0]) for _, found in options), t[0]))
    else:
        taken, _ = aligner.take(inst.trigger, "trigger:" + inst.label)
        trigger = taken or triggers[0]
    event = AlignedEvent(inst.label, trigger)
    placed: List[CharSpan] = [trigger]
    for role, found in options:
        # a string named twice takes two places; a place inside another argument comes last; then distance
        chosen = min(found, key=lambda a: (
            (a.start, a.end) in placed,
            _inside_another((a.start, a.end), placed),
            abs(a.start - trigger[0]),
            a.start,
        ))
        placed.append((chosen.start, chosen.end))
        event.arguments.append(AlignedArgument(chosen.start, chosen.end, chosen.label, role))
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
