"""Where the strings of open-IE tuples and table cells occur in the text, as character spans.

Strings are matched as for closed IE (alignment.StringAligner: exact, then case-insensitive, whitespace- and
Unicode-tolerant, offsets exact). What differs is the choice among occurrences:

- a tuple's parts belong together: the occurrence of its anchor (the part with the fewest occurrences, the
  predicate first among equals) with the other parts nearest is taken, then each other part nearest to it;
- table cells are chosen column by column in text order (a value repeated down a column takes its next
  occurrence, and the first one again when they run out), since rows usually follow the text.

A string that is not in the text keeps no span; the caller keeps its text and counts it.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Dict, List, Optional, Sequence, Tuple

from .alignment import CharSpan, StringAligner
from .instances import TupleInstance

# Occurrences of the anchor considered for one tuple: bounds the cost when every part is a frequent string.
MAX_ANCHORS = 64


def _nearest(spans: Sequence[CharSpan], starts: Sequence[int], anchor: int) -> Tuple[int, CharSpan]:
    """(distance, span) of the occurrence starting nearest `anchor`, the earlier one at equal distance."""
    right = bisect_left(starts, anchor)
    best: Optional[Tuple[int, CharSpan]] = None
    for j in (right - 1, right):
        if 0 <= j < len(spans):
            candidate = (abs(starts[j] - anchor), spans[j])
            if best is None or candidate[0] < best[0]:
                best = candidate
    assert best is not None
    return best


class TupleAligner:
    """Places the parts of tuples generated for one window of text."""

    def __init__(self, text: str):
        self.strings = StringAligner(text)
        self._starts: Dict[str, List[int]] = {}
        # (string, anchor offset) -> its nearest occurrence: tuples of one answer share strings and anchors
        self._near: Dict[Tuple[str, int], Tuple[int, CharSpan]] = {}

    def _nearest(self, text: str, anchor: int) -> Tuple[int, CharSpan]:
        key = (text, anchor)
        found = self._near.get(key)
        if found is None:
            spans = self.strings.occurrences(text)
            if text not in self._starts:
                self._starts[text] = [start for start, _ in spans]
            found = self._near[key] = _nearest(spans, self._starts[text], anchor)
        return found

    def align(self, tup: TupleInstance) -> Dict[str, Optional[CharSpan]]:
        """part name -> character span (None where the string is not in the text); empty parts are left out."""
        texts = {name: text for name, text in tup.parts() if text}
        found = {name: self.strings.occurrences(text) for name, text in texts.items()}
        placed: Dict[str, Optional[CharSpan]] = {name: None for name in found}
        present = [name for name in found if found[name]]
        if not present:
            return placed
        order = ("predicate", "subject", "object", "time", "location")
        anchor_name = min(present, key=lambda name: (len(found[name]), order.index(name)))
        others = [texts[name] for name in present if name != anchor_name]

        def cost(anchor: CharSpan) -> Tuple[int, int]:
            return sum(self._nearest(text, anchor[0])[0] for text in others), anchor[0]

        anchor = min(found[anchor_name][:MAX_ANCHORS], key=cost)
        placed[anchor_name] = anchor
        for name in present:
            if name != anchor_name:
                placed[name] = self._nearest(texts[name], anchor[0])[1]
        return placed


class CellAligner:
    """Places the cells of one table, column by column in text order."""

    def __init__(self, text: str):
        self.strings = StringAligner(text)
        self._next: Dict[Tuple[int, str], int] = {}

    def align(self, column: int, text: str) -> Optional[CharSpan]:
        spans = self.strings.occurrences(text)
        if not spans:
            return None
        key = (column, text)
        i = self._next.get(key, 0)
        self._next[key] = i + 1
        return spans[i] if i < len(spans) else spans[0]
