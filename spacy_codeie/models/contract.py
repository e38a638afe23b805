"""What every codeie generation backend does the same way: spacy-llm's model contract, and the list a
completion continues.

Prompts end inside `results = [`; a backend returns the completion up to where that list closes, and answers
all prompts of all docs it is given in one call, so that it can batch (or send concurrently) across docs.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional, Protocol, Sequence, runtime_checkable

from ..parsing import ListScanner
from ..prompting.knowcoder import COMPLETION_PREFIX


def answer_per_doc(generate: Callable[[Sequence[str]], List[str]],
                   prompts: Iterable[Iterable[str]]) -> List[List[str]]:
    """spacy-llm's contract (one iterable of prompts per doc in, one list of completions per doc out, in order)
    over a `generate` that takes all prompts at once."""
    per_doc = [list(doc_prompts) for doc_prompts in prompts]
    completions = iter(generate([p for doc_prompts in per_doc for p in doc_prompts]))
    return [[next(completions) for _ in doc_prompts] for doc_prompts in per_doc]


def completes_list(prompt: str) -> bool:
    """Whether the prompt ends inside `results = [`, so generation stops when that list closes."""
    return prompt.rstrip().endswith(COMPLETION_PREFIX[-1])


def cut_at_list_close(text: str) -> str:
    """`text` up to and including the bracket that closes the list it continues (all of it if none does)."""
    scanner = ListScanner()
    for i, ch in enumerate(text):
        scanner.feed(ch)
        if scanner.closed:
            return text[: i + 1]
    return text


@runtime_checkable
class DeclaresPromptStyle(Protocol):
    """A model that knows the prompt style it was trained with (e.g. from its adapter's `prompt_style.json`)."""

    @property
    def prompt_style(self) -> Optional[Any]: ...


def declared_prompt_style(model: Any) -> Optional[Any]:
    """The prompt style a model declares, or None (then the component uses its configured or default style)."""
    return model.prompt_style if isinstance(model, DeclaresPromptStyle) else None
