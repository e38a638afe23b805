"""How prompts are cut into generate batches, and what happens when a batch does not fit in memory.

A batch's memory grows with rows x (longest prompt + new tokens): padding makes every row as long as the
longest. Sorting by length keeps padding small; a token budget keeps long prompts in small batches and short
ones in large batches, so one setting fits both a 40-token tweet and a 1,500-token event schema.
"""
from __future__ import annotations

from typing import Callable, List, Sequence, TypeVar

T = TypeVar("T")


def plan_batches(lengths: Sequence[int], batch_size: int, max_new_tokens: int,
                 max_batch_tokens: int = 0) -> List[List[int]]:
    """Indices of prompts, longest first, in batches of at most `batch_size` rows whose padded size
    (rows x (longest + max_new_tokens)) stays within `max_batch_tokens` (0: no token limit).

    A single prompt over the budget still gets a batch of its own: the budget shapes batches, it never
    drops a prompt.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: List[List[int]] = []
    current: List[int] = []
    for i in order:
        if current:
            longest = lengths[current[0]]  # sorted: the first row is the longest
            rows = len(current) + 1
            over_rows = rows > batch_size
            over_tokens = max_batch_tokens > 0 and rows * (longest + max_new_tokens) > max_batch_tokens
            if over_rows or over_tokens:
                batches.append(current)
                current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def is_out_of_memory(err: BaseException) -> bool:
    """A CUDA out-of-memory error, or the CPU allocator failing (torch raises a RuntimeError then)."""
    try:
        import torch

        if isinstance(err, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):  # pragma: no cover - torch is a requirement
        pass
    if isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def run_with_backoff(rows: List[T], run: Callable[[List[T]], List[str]],
                     on_split: Callable[[int], None]) -> List[str]:
    """`run(rows)`, splitting the rows in halves (recursively) when it runs out of memory.

    `on_split(n)` is told the row count that did not fit, so the caller can shrink later batches instead of
    failing on each one. A single row that does not fit raises the original error.
    """
    try:
        return run(rows)
    except Exception as err:  # noqa: BLE001 - only memory errors are handled, the rest re-raised
        if not is_out_of_memory(err) or len(rows) < 2:
            raise
    free_accelerator_memory()
    on_split(len(rows))
    half = (len(rows) + 1) // 2
    return run_with_backoff(rows[:half], run, on_split) + run_with_backoff(rows[half:], run, on_split)
