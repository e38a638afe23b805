"""Long docs -> windows that fit the model's context. Nothing is ever cut off silently.

Windows are token ranges, so character offsets map back exactly and a mention can never cross a boundary.
Sentences are packed greedily when the doc has sentence boundaries; a sentence (or a doc without them) that
is still too long is split after whitespace, and a run without whitespace (Chinese, Japanese) between tokens.
"""
from __future__ import annotations

from typing import Iterator, List, Tuple

from spacy.tokens import Doc, Span


def _chunks(doc: Doc, start: int, end: int, max_chars: int) -> Iterator[Tuple[int, int]]:
    """Split tokens [start, end) into pieces of at most max_chars, preferring to cut after whitespace."""
    i = start
    while i < end:
        base = doc[i].idx
        j = i
        last_space = -1
        while j < end and doc[j].idx + len(doc[j].text) - base <= max_chars:
            if doc[j].whitespace_:
                last_space = j
            j += 1
        if j == end:
            yield i, end
            return
        if j == i:  # a single token longer than the budget: it goes alone rather than being cut
            j = i + 1
        elif last_space >= i and last_space + 1 < j:
            j = last_space + 1
        yield i, j
        i = j


def _sentence_bounds(doc: Doc) -> List[Tuple[int, int]]:
    if doc.has_annotation("SENT_START"):
        return [(sent.start, sent.end) for sent in doc.sents]
    return [(0, len(doc))]


def _pack(doc: Doc, pieces: List[Tuple[int, int]], max_chars: int) -> List[Span]:
    """Consecutive pieces joined while they fit in max_chars; pieces of only whitespace are dropped."""
    windows: List[Tuple[int, int]] = []
    for start, end in pieces:
        if windows:
            w_start, w_end = windows[-1]
            if doc[end - 1].idx + len(doc[end - 1].text) - doc[w_start].idx <= max_chars:
                windows[-1] = (w_start, end)
                continue
        windows.append((start, end))
    return [doc[start:end] for start, end in windows if doc[start:end].text.strip()]


def split_windows(doc: Doc, max_chars: int) -> List[Span]:
    """Token spans covering every non-space token of the doc, each at most `max_chars` long if possible."""
    if max_chars < 1:
        raise ValueError("window_size must be a positive number of characters.")
    pieces: List[Tuple[int, int]] = []
    for s_start, s_end in _sentence_bounds(doc):
        pieces.extend(_chunks(doc, s_start, s_end, max_chars))
    return _pack(doc, pieces, max_chars)


def split_window(window: Span, max_chars: int) -> List[Span]:
    """A window cut again into windows of at most `max_chars`, the same way: for one whose prompt fits
    `window_size` in characters but not the model's context in tokens. Each has fewer tokens than `window`
    when it has more than one token and `max_chars` is shorter than its text."""
    if max_chars < 1:
        raise ValueError("max_chars must be positive.")
    doc = window.doc
    pieces: List[Tuple[int, int]] = []
    for s_start, s_end in _sentence_bounds(doc):
        start, end = max(s_start, window.start), min(s_end, window.end)
        if start < end:
            pieces.extend(_chunks(doc, start, end, max_chars))
    return _pack(doc, pieces, max_chars)
