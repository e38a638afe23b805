"""Schema-prefix KV caching: the class definitions are encoded once per schema group, not once per doc.

Every prompt of a type group starts with the same system prompt, class definitions and instruction; only the
sentence at the end differs. Its keys and values are computed once, kept in a small LRU table, and copied
into each batch, so a batch only pays for its sentences. The rows of a batch are laid out as
[shared prefix][left padding][sentence]; positions come from the attention mask, so each token sees the same
positions and the same visible context as without the cache.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any, Callable, Hashable, List, Sequence, Tuple

# Where the per-document part of a KnowCoder prompt starts (the last sentence = "..." line).
SENTENCE_LINE = "\nsentence = "


def shared_prefix_end(formatted_prompt: str) -> int:
    """Character offset where the per-document part of a formatted prompt begins (0: no shared part)."""
    at = formatted_prompt.rfind(SENTENCE_LINE)
    return at + 1 if at >= 0 else 0


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_length(ids: Sequence[int], prefix_ids: Sequence[int], minimum: int) -> int:
    """How many leading tokens of a prompt may come from the cache.

    The prefix is tokenized on its own and kept only as far as it agrees with the whole prompt's tokens (a
    merge across the boundary would otherwise change the text). At least one token is left for the model to
    read, and prefixes shorter than `minimum` are not worth a cache entry.
    """
    n = min(common_length(ids, prefix_ids), len(ids) - 1)
    return n if n >= minimum else 0


class PrefixCache:
    """An LRU table of values computed from a prompt prefix on first use: prefix token ids -> the model's KV
    cache for them (batch size 1), and prefix text -> its token ids."""

    def __init__(self, compute: Callable[[Any], Any], max_entries: int = 8):
        self._compute = compute
        self._entries: "OrderedDict[Hashable, Any]" = OrderedDict()
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def get(self, prefix: Hashable) -> Any:
        if prefix in self._entries:
            self._entries.move_to_end(prefix)
            self.hits += 1
            return self._entries[prefix]
        self.misses += 1
        value = self._compute(prefix)
        self._entries[prefix] = value
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def expand_for_batch(cache: Any, rows: int) -> Any:
    """A private copy of a batch-1 KV cache, repeated for `rows` rows (generate extends it in place)."""
    batch_cache = copy.deepcopy(cache)
    if rows > 1:
        batch_cache.batch_repeat_interleave(rows)
    return batch_cache


def layout_rows(prefix: Sequence[int], suffixes: List[Sequence[int]], pad: int) -> Tuple[Any, Any]:
    """input_ids and attention_mask for [prefix][left padding][suffix] rows."""
    import torch

    width = max(len(s) for s in suffixes)
    rows = len(suffixes)
    input_ids = torch.full((rows, len(prefix) + width), pad, dtype=torch.long)
    attention = torch.zeros((rows, len(prefix) + width), dtype=torch.long)
    if prefix:
        input_ids[:, : len(prefix)] = torch.tensor(list(prefix), dtype=torch.long)
        attention[:, : len(prefix)] = 1
    total = len(prefix) + width
    for row, ids in enumerate(suffixes):
        input_ids[row, total - len(ids):] = torch.tensor(list(ids), dtype=torch.long)
        attention[row, total - len(ids):] = 1
    return input_ids, attention

