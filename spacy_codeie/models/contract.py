"""What every codeie generation backend does the same way: spacy-llm's model contract, and the list a
completion continues.

Prompts end inside `results = [`; a backend returns the completion up to where that list closes, and answers
all prompts of all docs it is given in one call, so that it can batch (or send concurrently) across docs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Protocol, Sequence, Union, runtime_checkable

from ..parsing import ListScanner
from ..prompting.knowcoder import COMPLETION_PREFIX


@runtime_checkable
class CountsTokens(Protocol):
    """A backend that measures prompts in its own tokens, so that the codeie component can cut windows to fit
    its context instead of having a whole batch refused for one long window."""

    @property
    def max_prompt_tokens(self) -> Optional[int]:
        """The longest prompt it takes, in tokens (None: no limit)."""

    def count_tokens(self, prompts: Sequence[str]) -> List[int]:
        """How many tokens each prompt is, as the backend will send it (chat template and all)."""


@runtime_checkable
class CarriesAdapter(Protocol):
    """A backend with LoRA weights of its own, which the codeie component saves with the pipeline (to_disk and
    to_bytes) and puts back at load, so that the answers do not change on the way."""

    @property
    def has_adapter(self) -> bool: ...

    def save_adapter(self, path: Union[str, Path]) -> None: ...

    def load_adapter(self, path: Union[str, Path]) -> None: ...


def answer_per_doc(generate: Callable[[Sequence[str]], List[str]],
                   prompts: Iterable[Iterable[str]]) -> List[List[str]]:
    """spacy-llm's contract (one iterable of prompts per doc in, one list of completions per doc out, in order)
    over a `generate` that takes all prompts at once."""
    per_doc = [list(doc_prompts) for doc_prompts in prompts]
    completions = iter(generate([p for doc_prompts in per_doc for p in doc_prompts]))
    return [[next(completions) for _ in doc_prompts] for doc_prompts in per_doc]


def response_text(response: Any) -> str:
    """The text of one answer: spacy-llm models answer a prompt with a string, or with a list of strings (n > 1)."""
    if isinstance(response, str):
        return response
    if isinstance(response, (list, tuple)) and response and isinstance(response[0], str):
        return response[0]
    return "" if response is None else str(response)


def completes_list(prompt: str) -> bool:
    """Whether the prompt ends inside `results = [`, so generation stops when that list closes."""
    return prompt.rstrip().endswith(COMPLETION_PREFIX[-1])


def answer_depth(prompt: str) -> Optional[int]:
    """The bracket depth an answer to `prompt` starts at, for a `ListScanner` that stops it where the list
    closes: 1 when the prompt opened the list, 0 when the answer opens its own, None when only the model's
    end-of-sequence ends it. A style says which through `Prompt.answer_end`; a plain string ending in `[` is a
    prefilled list."""
    end = getattr(prompt, "answer_end", None)
    if end == "answer_opens":
        return 0
    if end == "free":
        return None
    if end == "prefilled":
        return 1
    return 1 if completes_list(prompt) else None


def cut_at_list_close(text: str, depth: int = 1) -> str:
    """`text` up to and including the bracket that closes the list it continues (all of it if none does);
    `depth=0` for an answer that opens its list itself."""
    scanner = ListScanner(depth)
    for i, ch in enumerate(text):
        scanner.feed(ch)
        if scanner.closed:
            return text[: i + 1]
    return text


def list_closes(text: str, depth: int = 1) -> bool:
    """Whether the list `text` continues (or, with `depth=0`, opens) is closed in it."""
    scanner = ListScanner(depth)
    scanner.feed_text(text)
    return scanner.closed


@runtime_checkable
class DeclaresPromptStyle(Protocol):
    """A model that knows the prompt style it was trained with (e.g. from its adapter's `prompt_style.json`)."""

    @property
    def prompt_style(self) -> Optional[Any]: ...


def declared_prompt_style(model: Any) -> Optional[Any]:
    """The prompt style a model declares, or None (then the component uses its configured or default style)."""
    return model.prompt_style if isinstance(model, DeclaresPromptStyle) else None
