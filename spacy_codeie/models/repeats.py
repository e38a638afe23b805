"""Ending an answer that has started to loop.

A small model decoding greedily sometimes repeats its items until the token budget runs out
(`Loc("Paris"), Loc("Paris"), ...`): that costs time, and leaves a list the parser must report as truncated.
An item may rightly come back as often as its mention occurs in the text, so a row is stopped when a top-level
item comes back more often than its first quoted string occurs in the prompt, and the answer is closed after
the last item within that limit. Both local backends use `RepeatWatch`, token by token to stop the row, and
`close_before_repeats` on the decoded text to cut it the same way.
"""
from __future__ import annotations

import codecs
import re
from typing import Dict, Optional, Tuple

from ..parsing import BROKEN, CLOSE, SEPARATOR, ListScanner
from .prompt_tokens import SCANNED_CHARS

# The first one-line string literal of an item: the mention its repeats are counted against.
_FIRST_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"|\'((?:[^\'\\\n]|\\.)*)\'')


class RepeatWatch:
    """Follows one answer as it is generated: where its list closes, and whether an item repeats too often."""

    def __init__(self, prompt: str, depth: int):
        self.prompt = str(prompt)
        self.scanner = ListScanner(depth)
        self.text = ""
        self.cut: Optional[int] = None  # where the kept answer ends, once an item repeated too often
        self._pos = 0
        self._item_start = 0
        self._counts: Dict[str, int] = {}
        self._opener_pending = depth == 0  # the first item of an answer that opens its list starts with `[`
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    @property
    def closed(self) -> bool:
        return self.scanner.closed

    @property
    def repeating(self) -> bool:
        return self.cut is not None

    @property
    def done(self) -> bool:
        return self.closed or self.repeating

    def feed(self, piece: str) -> bool:
        """Add generated text; True once the answer is done (its list closed, or an item came back too often)."""
        if self.done:
            return True
        self.text += piece
        if SCANNED_CHARS.isdisjoint(piece):  # nothing that could end an item or the list: scan it with the next
            return False
        while True:
            self._pos, event = self.scanner.step(self.text, self._pos)
            if event is None or event == CLOSE:
                return self.closed
            if event == BROKEN:
                self._item_start = self._pos
            elif event == SEPARATOR:
                if self._over_limit(self.text[self._item_start: self._pos - 1]):
                    self.cut = self._item_start
                    return True
                self._item_start = self._pos

    def feed_bytes(self, data: bytes) -> bool:
        """`feed` for a token's bytes. A character whose bytes span several tokens (most Chinese and Japanese
        characters under a byte-level vocabulary) is read once it is whole: decoded token by token it would be
        U+FFFD, its mention would occur nowhere in the prompt, and its item would count as a repeat at once."""
        return self.feed(self._utf8.decode(data))

    def kept_text(self) -> str:
        """The answer closed after the last item within its limit (the whole text while none went over)."""
        if self.cut is None:
            return self.text
        return self.text[: self.cut].rstrip() + "\n]"

    def _over_limit(self, item: str) -> bool:
        if self._opener_pending:
            self._opener_pending = False
            item = item.split("[", 1)[-1]
        key = " ".join(item.split())
        if not key:
            return False
        seen = self._counts[key] = self._counts.get(key, 0) + 1
        return seen > 1 and seen > self._allowed(key)

    def _allowed(self, item: str) -> int:
        found = _FIRST_STRING.search(item)
        if found is None:
            return 1
        mention = found.group(1) if found.group(1) is not None else found.group(2)
        return max(1, self.prompt.count(mention)) if mention else 1


def close_before_repeats(text: str, prompt: str, depth: Optional[int]) -> Tuple[str, bool]:
    """(`text` closed before its first item over the repeat limit, whether it was cut); unchanged when the
    answer is not a list the prompt opened or asked for (`depth` None)."""
    if depth is None:
        return text, False
    watch = RepeatWatch(prompt, depth)
    watch.feed(text)
    return watch.kept_text(), watch.repeating
