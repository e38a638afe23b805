"""What the open-IE and on-demand components share: prompts per doc -> one model call per batch -> answers.

The model is any callable with spacy-llm's contract: an iterable (one per doc) of iterables of prompt strings
in, an iterable (one per doc) of iterables of responses out, in order. All prompts of a batch of docs go in
one call, so a backend can batch across docs.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, List, Tuple

from spacy.pipeline import Pipe
from spacy.tokens import Doc
from spacy.util import minibatch

from .errors import CodeIEError
from .models.contract import response_text

LLMModel = Callable[[Iterable[Iterable[str]]], Iterable[Iterable[str]]]


class PromptingPipe(Pipe):
    """A component that asks a model about each doc: subclasses say what to ask and what to write."""

    def __init__(self, vocab, *, name: str, model: LLMModel):
        if not callable(model):
            raise CodeIEError(f"The {name!r} component's 'model' must be a callable from the llm_models registry "
                              '(e.g. {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": "THU-KEG/ADELIE-SFT"}).')
        self.vocab = vocab
        self.name = name
        self.model = model

    def plan(self, doc: Doc) -> Tuple[List[str], Any]:
        """The doc's prompts, and what `annotate` needs to read their answers (the windows, say)."""
        raise NotImplementedError

    def annotate(self, doc: Doc, plan: Any, answers: List[str]) -> None:
        """Write what the answers say onto the doc; `answers[i]` answers the plan's `i`-th prompt."""
        raise NotImplementedError

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 64) -> Iterator[Doc]:
        """`batch_size` docs' prompts per model call (`nlp.pipe(batch_size=...)` sets it)."""
        error_handler = self.get_error_handler()
        for batch in minibatch(stream, size=batch_size):
            docs = list(batch)
            try:
                self._process(docs)
            except Exception as err:  # spaCy's error handler decides (raise by default)
                error_handler(self.name, self, docs, err)
                continue
            yield from docs

    def _process(self, docs: List[Doc]) -> None:
        plans = [self.plan(doc) for doc in docs]
        prompts = [doc_prompts for doc_prompts, _ in plans]
        responses = list(self.model(prompts))
        if len(responses) != len(docs):
            raise CodeIEError(
                f"The model returned answers for {len(responses)} docs but was given {len(docs)}. Its callable "
                "must return one iterable of responses per doc (spacy-llm's model contract)."
            )
        for doc, (doc_prompts, plan), doc_responses in zip(docs, plans, responses):
            answers = [response_text(r) for r in doc_responses]
            if len(answers) != len(doc_prompts):
                raise CodeIEError(f"The model returned {len(answers)} responses for {len(doc_prompts)} prompts of "
                                  "one doc. It must answer every prompt.")
            self.annotate(doc, plan, answers)
