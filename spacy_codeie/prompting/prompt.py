"""A rendered prompt that also carries what its answer may contain, for constrained decoding.

spacy-llm's model contract passes prompts as strings, so a `Prompt` *is* a string: any model reads it as one.
A backend that decodes under a grammar reads `prompt.answer_classes` and `prompt.sentence_literal` instead of
reading the classes back out of the text, so every prompt style is constrained by its own schema, however it
renders it.
"""
from __future__ import annotations

from typing import Any, Optional


class Prompt(str):
    """Prompt text plus the classes its answer may instantiate and the sentence (as its literal's body) that
    mentions are copied from. Either may be None: then a backend does not constrain this prompt."""

    answer_classes: Optional[Any]
    sentence_literal: Optional[str]

    def __new__(cls, text: str, answer_classes: Optional[Any] = None, sentence_literal: Optional[str] = None):
        prompt = super().__new__(cls, text)
        prompt.answer_classes = answer_classes
        prompt.sentence_literal = sentence_literal
        return prompt

    def __reduce__(self):
        return (Prompt, (str(self), self.answer_classes, self.sentence_literal))
