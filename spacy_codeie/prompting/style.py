"""What a prompt style is: the one object that knows a format.

A style renders a schema and a text as a prompt (for inference and, identically, for training data), writes
gold instances as the answer a model should give, and reads answers back. The component and the backends ask
the style; nothing else knows a format. Styles are registered in spaCy's `misc` registry
(`spacy_codeie.<Name>Prompt.vN`) and chosen with the component's `prompt` setting.
"""
from __future__ import annotations

from typing import ClassVar, Iterable, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

from ..instances import Instance, ParseResult, TableParse, TupleInstance, TupleParse
from ..schema.types import Schema
from .prompt import Prompt


@runtime_checkable
class AnswerParser(Protocol):
    def parse(self, completion: str) -> ParseResult: ...


@runtime_checkable
class PromptStyle(Protocol):
    def render_prompt(self, schema: Schema, text: str,
                      solved: Optional[Sequence[Tuple[str, Sequence[Instance]]]] = None) -> str:
        """The prompt text for one window; `solved` (sentence, instances) pairs come first as earlier turns."""

    def prompt_for(self, schema: Schema, text: str) -> Prompt:
        """`render_prompt` as a `Prompt` carrying what constrained decoding needs (or None for no grammar)."""

    def render_completion(self, schema: Schema, instances: Iterable[Instance]) -> str:
        """The answer a perfect model writes after the prompt: the SFT target."""

    def parser(self, schema: Schema) -> AnswerParser:
        """The reader of this style's answers: untrusted text in, instances and diagnostics out, never run."""


@runtime_checkable
class AsksFollowUps(Protocol):
    """A style whose systems answer in stages (KnowCoder's and ADELIE's event arguments, asked for once the
    events are detected). The component sends the follow-up prompts in a second round, and an event the
    follow-up answers replaces the one detected with the same type and trigger; one it leaves out stays,
    trigger only."""

    def follow_ups(self, schema: Schema, text: str,
                   found: Sequence[Instance]) -> List[Tuple[Prompt, AnswerParser]]:
        """The second-stage prompts for what the first answer `found`, each with the parser of its answer."""


@runtime_checkable
class OpenIEStyle(Protocol):
    """A format for schema-free tuples (the `codeie_openie` component): one prompt per window of text."""

    task: ClassVar[str]  # "open_ie"

    def render_prompt(self, text: str) -> str: ...

    def render_completion(self, tuples: Iterable[TupleInstance]) -> str: ...

    def parse(self, completion: str) -> TupleParse: ...


@runtime_checkable
class OnDemandStyle(Protocol):
    """A format for instruction-driven tables (the `codeie_ondemand` component): one prompt per doc."""

    task: ClassVar[str]  # "on_demand"

    def render_prompt(self, instruction: str, columns: Sequence[str], text: str) -> str: ...

    def render_completion(self, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str: ...

    def parse(self, completion: str, columns: Sequence[str]) -> TableParse: ...
