"""A rendered prompt that also carries what its answer may contain, for constrained decoding.

spacy-llm's model contract passes prompts as strings, so a `Prompt` *is* a string: any model reads it as one.
A backend that decodes under a grammar reads `prompt.answer_classes` and `prompt.sentence_literal` instead of
reading the classes back out of the text, so every prompt style is constrained by its own schema, however it
renders it. Two more fields let a style say what only it knows:

- `answer_end`: where an answer ends. "prefilled": the prompt opened the list the answer continues
  (`results = [`), and generation stops where that list closes; "answer_opens": the answer opens its own
  bracket (KnowCoder's released format writes `results = [` itself, GoLLIE `[`, YAYI `{`) and generation stops
  where it closes; "free": text answers (ADELIE's) that only the model's end-of-sequence ends. None: a backend
  decides from the text (a prompt ending in `[` is "prefilled").
- `segments`: the pieces a system's training code tokenized one by one (KnowCoder: the system prompt, the
  separator, the `Input:`/`Output:` turn). A local backend that tokenizes each piece on its own gives the model
  the token boundaries it was trained on, so its first answer token is the one it learnt. None: one piece.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Tuple

AnswerEnd = Literal["prefilled", "answer_opens", "free"]


class Prompt(str):
    """Prompt text plus the classes its answer may instantiate and the sentence (as its literal's body) that
    mentions are copied from. Either may be None: then a backend does not constrain this prompt."""

    answer_classes: Optional[Any]
    sentence_literal: Optional[str]
    answer_end: Optional[AnswerEnd]
    segments: Optional[Tuple[str, ...]]

    def __new__(cls, text: str, answer_classes: Optional[Any] = None, sentence_literal: Optional[str] = None,
                answer_end: Optional[AnswerEnd] = None, segments: Optional[Tuple[str, ...]] = None):
        if segments is not None and "".join(segments) != text:
            raise ValueError("A prompt's segments must join to its text.")
        prompt = super().__new__(cls, text)
        prompt.answer_classes = answer_classes
        prompt.sentence_literal = sentence_literal
        prompt.answer_end = answer_end
        prompt.segments = tuple(segments) if segments is not None else None
        return prompt

    def __reduce__(self):
        return (Prompt, (str(self), self.answer_classes, self.sentence_literal, self.answer_end, self.segments))
