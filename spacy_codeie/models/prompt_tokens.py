"""How a codeie prompt becomes the token ids a local model is sent, the same way for every local runtime
(transformers, llama.cpp): so a model answers the tokens it was trained on, whichever runs it."""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import ModelLoadError
from ..prompting.knowcoder import INPUT_MARKER, OUTPUT_MARKER
from .constrained import sentence_literal

# Characters that can open, close or escape a list; a generated token without any cannot close the answer's list.
SCANNED_CHARS = frozenset("()[]{}\"'\\\n")

_TURN = re.compile("(" + re.escape("\n" + INPUT_MARKER) + "|" + re.escape(OUTPUT_MARKER) + ")")


def split_knowcoder_prompt(prompt: str) -> Tuple[List[Dict[str, str]], str]:
    """Chat messages and the assistant prefill of a KnowCoder-style prompt.

    '{system}\nInput:\n{q1}\nOutput:\n{a1}\nInput:\n{q2}\nOutput:\n{prefill}' becomes a system message, user
    and assistant turns, and the prefill that starts the last answer. Prompts without the markers become one
    user message.
    """
    text = "\n" + prompt if prompt.startswith(INPUT_MARKER) else prompt
    pieces = _TURN.split(text)
    if len(pieces) < 5 or pieces[-2] != OUTPUT_MARKER:
        return [{"role": "user", "content": prompt}], ""
    messages = [{"role": "system", "content": pieces[0]}] if pieces[0].strip() else []
    for marker, content in zip(pieces[1:-2:2], pieces[2:-2:2]):
        role = "user" if marker.endswith(INPUT_MARKER) else "assistant"
        messages.append({"role": role, "content": content.rstrip("\n")})
    return messages, pieces[-1]


def uses_chat_template(tokenizer, chat_template: Optional[bool], name: str) -> bool:
    """Whether prompts go through the tokenizer's chat template: by default when it has one; asking for it
    when it has none is an error."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat_template is None:
        return has_template
    if chat_template and not has_template:
        raise ModelLoadError(f"chat_template=true, but the tokenizer of {name!r} has no chat template.")
    return bool(chat_template)


def chat_text(tokenizer, prompt: str) -> str:
    """The prompt as the tokenizer's chat template lays it out, ending with the answer's prefill."""
    messages, prefill = split_knowcoder_prompt(prompt)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return str(text) + prefill


def prompt_segments(prompt: str, chat_template: bool) -> Optional[Sequence[str]]:
    """The pieces a style asks to tokenize one by one (its system's training code did), or None: the whole
    prompt at once. Chat-formatted prompts are always tokenized whole."""
    segments = getattr(prompt, "segments", None)
    return segments if segments and not chat_template else None


def encode_segments(tokenizer, segments: Sequence[str]) -> List[int]:
    """Token ids of pieces tokenized one by one, after the special tokens the tokenizer puts first."""
    ids = list(tokenizer("", add_special_tokens=True)["input_ids"])
    for piece in segments:
        ids.extend(tokenizer(piece, add_special_tokens=False)["input_ids"])
    return ids


def answer_token_budget(tokenizer, prompt: str, max_new_tokens: int, per_token: float) -> int:
    """New tokens an answer to `prompt` may take: `max_new_tokens`, or with `per_token` set, 16 plus that many
    tokens per token of its sentence (at most `max_new_tokens`), so that an answer caught in a loop stops early
    instead of holding its batch to `max_new_tokens`."""
    if not per_token:
        return max_new_tokens
    sentence = getattr(prompt, "sentence_literal", None) or sentence_literal(prompt) or prompt
    size = len(tokenizer(sentence, add_special_tokens=False)["input_ids"])
    return max(1, min(max_new_tokens, int(16 + per_token * size)))
