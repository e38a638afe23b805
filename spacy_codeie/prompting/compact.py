"""A compact code prompt for small models: one line per class, answers on one line.

KnowCoder's format spends 30-60 tokens on each class (base classes, docstring blocks, `__init__` bodies); for a
135M model on a CPU that is most of the prompt and of the training cost, and none of it tells the model more
than the class name, its description and its argument types. This style keeps exactly those:

    class Person(Entity): \"\"\"a human being\"\"\"
    class WorksFor(Relation): \"\"\"employment\"\"\"  # (head: Person, tail: Organization | Location)
    class Attack(Event): \"\"\"an attack\"\"\"  # (trigger, attacker: Person, place)

and answers in the same instance syntax as KnowCoderPrompt.v1 (`Person("Ada")`,
`WorksFor(Person("Ada"), Organization("Acme"))`, `Attack(trigger="hit", attacker=[Person("Bo")])`), written
on one line (`Person("Ada"), Organization("Acme")]`), so the parser and the constrained grammar are shared.

The embedded default model was trained on exactly these bytes: `tests/test_compact_prompt.py` pins them.
Change the rendering only together with a retrained default adapter.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from spacy.util import registry

from ..instances import Instance
from ..schema.types import ANY_ENTITY, EntityType, EventType, RelationType, Schema
from .knowcoder import COMPLETION_PREFIX, INPUT_MARKER, OUTPUT_MARKER, KnowCoderPrompt, python_string_literal

COMPACT_SYSTEM_PROMPT = "Extract the instances of the Python classes below from each sentence, as code."
COMPACT_INSTRUCTION = "# Instantiate every object of these classes that the sentence mentions."


def _doc(description: str, examples: Sequence[str]) -> str:
    """A one-line docstring: the description, then examples; `pass` when there is neither."""
    text = " ".join(description.split())
    if examples:
        shown = ", ".join(" ".join(str(e).split()) for e in examples)
        text = f"{text} (e.g. {shown})" if text else f"e.g. {shown}"
    if not text:
        return "pass"
    # Keep the docstring closed and on its line whatever the description says.
    text = text.replace("\\", "\\\\").replace('"""', "'''")
    if text.endswith('"'):
        text += " "
    return f'"""{text}"""'


class CompactPrompt(KnowCoderPrompt):
    """KnowCoder's instance syntax with a compact schema: the embedded default model's prompt style."""

    registry_name = "spacy_codeie.CompactPrompt.v1"

    def __init__(
        self,
        system_prompt: Optional[str] = COMPACT_SYSTEM_PROMPT,
        instruction: Optional[str] = COMPACT_INSTRUCTION,
        demonstrations: Optional[Sequence[Dict[str, Any]]] = None,
    ):
        super().__init__(system_prompt=system_prompt, instruction=instruction, demonstrations=demonstrations)

    def _hint(self, schema: Schema, labels: Sequence[str]) -> Optional[str]:
        """`Person | Organization`, or None when any entity is allowed."""
        if not labels or ANY_ENTITY in labels:
            return None
        return " | ".join(self.class_name(schema, label) for label in labels)

    def render_entity(self, schema: Schema, t: EntityType) -> str:
        return f"class {t.class_name}(Entity): {_doc(t.description, t.examples)}\n"

    def render_relation(self, schema: Schema, t: RelationType) -> str:
        examples = [f"{h} -> {tl}" for h, tl in t.examples]
        head = self._hint(schema, t.head) or ANY_ENTITY
        tail = self._hint(schema, t.tail) or ANY_ENTITY
        return (f"class {t.class_name}(Relation): {_doc(t.description, examples)}"
                f"  # (head: {head}, tail: {tail})\n")

    def render_event(self, schema: Schema, t: EventType) -> str:
        params = ["trigger"]
        for role in t.roles:
            hint = self._hint(schema, role.types)
            params.append(f"{role.parameter}: {hint}" if hint else role.parameter)
        return f"class {t.class_name}(Event): {_doc(t.description, t.examples)}  # ({', '.join(params)})\n"

    def _render_schema(self, schema: Schema) -> str:
        parts = [self.render_entity(schema, t) for t in schema.entities]
        parts.extend(self.render_relation(schema, t) for t in schema.relations)
        parts.extend(self.render_event(schema, t) for t in schema.events)
        return "".join(parts)

    def render_query(self, schema: Schema, text: str) -> str:
        sentence = python_string_literal(text)
        return f"{self.render_schema(schema)}{self.render_instruction(schema)}\nsentence = {sentence}"

    def render_prompt(self, schema: Schema, text: str,
                      solved: Optional[Sequence[Tuple[str, Sequence[Instance]]]] = None) -> str:
        """System line, then one `Input:`/`Output:` exchange per sentence; the classes come in the first only.

        Earlier exchanges are the configured demonstrations, or `solved` (sentence, instances) pairs.
        """
        if solved is None:
            turns = self.demonstration_turns(schema)
        else:
            turns = [(sentence, self.render_completion(schema, instances)) for sentence, instances in solved]
        parts = [f"{self.system_prompt}\n" if self.system_prompt else ""]
        for i, sentence in enumerate([t for t, _ in turns] + [text]):
            query = self.render_query(schema, sentence) if i == 0 else f"sentence = {python_string_literal(sentence)}"
            answer = turns[i][1] + "\n" if i < len(turns) else ""
            parts.append(f"{INPUT_MARKER}{query}{OUTPUT_MARKER}{COMPLETION_PREFIX}{answer}")
        return "".join(parts)

    def render_completion(self, schema: Schema, instances: Iterable[Instance]) -> str:
        items = [self.render_instance(schema, inst) for inst in instances]
        return ", ".join(items) + "]"

    def render_conversation(self, schema: Schema, turns: Sequence[tuple]) -> List[Dict[str, str]]:
        """Several solved sentences under one rendering of the classes, as one conversation.

        Returns one {"prompt", "completion"} per turn, where each prompt holds every earlier turn with its
        answer: training puts a loss on every answer, and pays for the classes once.
        """
        out = []
        for k, (text, instances) in enumerate(turns):
            solved = [(t, inst) for t, inst in turns[:k]]
            out.append({"prompt": self.render_prompt(schema, text, solved=solved),
                        "completion": self.render_completion(schema, instances)})
        return out


@registry.misc("spacy_codeie.CompactPrompt.v1")
def make_compact_prompt(
    system_prompt: Optional[str] = COMPACT_SYSTEM_PROMPT,
    instruction: Optional[str] = COMPACT_INSTRUCTION,
    demonstrations: Optional[List[Dict[str, Any]]] = None,
) -> CompactPrompt:
    """The embedded default model's style: one line per class, one-line answers in KnowCoder's syntax."""
    return CompactPrompt(system_prompt=system_prompt, instruction=instruction, demonstrations=demonstrations)
