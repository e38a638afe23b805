"""KnowCoder's code format: the schema as Python classes, IE as completing `results = [...]`.

The system prompt and the `Input:`/`Output:` wrapper follow what KnowCoder's released checkpoints were trained
with, so such a checkpoint works out of the box. The same object writes gold instances as completions, so
training data and inference prompts never drift apart.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple

from spacy.util import registry

from ..errors import SchemaError
from ..instances import EntityInstance, EventInstance, Instance, Mention, RelationInstance
from ..schema.types import ANY_ENTITY, EntityType, EventType, RelationType, Schema
from .prompt import Prompt

if TYPE_CHECKING:
    from ..parsing import CodeParser

KNOWCODER_SYSTEM_PROMPT = (
    "You are a highly skilled assistant at digesting and extracting information from textual content. "
    "Below is an input containing standard type definitions and textual content. Please complete it with the "
    "extracted information in the form of structured code."
)
INPUT_MARKER = "Input:\n"
OUTPUT_MARKER = "\nOutput:\n"
COMPLETION_PREFIX = "results = ["
INDENT = "\t"

_BASE_CLASSES = {
    "entity": (
        "class Entity:\n"
        '\t"""\n\tThe base class for all entities.\n\t"""\n'
        "\tdef __init__(self, name: str):\n\t\tself.name = name\n"
    ),
    "relation": (
        "class Relation:\n"
        '\t"""\n\tThe base class for all relations.\n\t"""\n'
        "\tdef __init__(self, head_entity: Entity, tail_entity: Entity):\n"
        "\t\tself.head_entity = head_entity\n\t\tself.tail_entity = tail_entity\n"
    ),
    "event": (
        "class Event:\n"
        '\t"""\n\tThe base class for all events.\n\t"""\n'
        "\tdef __init__(self, trigger: str):\n\t\tself.trigger = trigger\n"
    ),
}


def python_string_literal(text: str) -> str:
    """A double-quoted Python literal for `text` that keeps non-ASCII letters readable.

    Quotes, backslashes, line breaks and control characters are escaped, so any input (including text that
    tries to close the string and inject code) stays one inert string literal that `ast` reads back exactly.
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in "\u2028\u2029\ufeff":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _docstring(description: str, examples: Sequence[str]) -> str:
    lines = [f"{INDENT}\"\"\""]
    lines.append(f"{INDENT}Description: {_one_line(description)}".rstrip())
    if examples:
        lines.append(f"{INDENT}Examples: " + ", ".join(_one_line(e) for e in examples))
    lines.append(f"{INDENT}\"\"\"")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    # A docstring must not be closed early by the text it quotes.
    return " ".join(text.split()).replace('"""', "'''").replace("\\", "\\\\")


class KnowCoderPrompt:
    """Renders a schema and a sentence as a KnowCoder prompt, and instances as its completion."""

    completion_prefix = COMPLETION_PREFIX
    input_marker = INPUT_MARKER
    output_marker = OUTPUT_MARKER

    def __init__(
        self,
        system_prompt: Optional[str] = KNOWCODER_SYSTEM_PROMPT,
        instruction: Optional[str] = None,
        demonstrations: Optional[Sequence[Dict[str, Any]]] = None,
    ):
        self.system_prompt = system_prompt or ""
        self.instruction = instruction
        self.demonstrations = [_demonstration(d) for d in demonstrations or ()]

    # ---- schema -> code ---------------------------------------------------------------------
    def class_name(self, schema: Schema, label: str) -> str:
        if label == ANY_ENTITY:
            return ANY_ENTITY
        entity = schema.entity_by_label(label)
        return entity.class_name if entity else ANY_ENTITY

    def _type_hint(self, schema: Schema, labels: Sequence[str]) -> str:
        names = [self.class_name(schema, label) for label in labels]
        return names[0] if len(names) == 1 else "Union[" + ", ".join(names) + "]"

    def render_entity(self, schema: Schema, t: EntityType) -> str:
        return f"class {t.class_name}({t.parent or 'Entity'}):\n{_docstring(t.description, t.examples)}\n{INDENT}pass\n"

    def render_relation(self, schema: Schema, t: RelationType) -> str:
        examples = [f"({h}, {tl})" for h, tl in t.examples]
        head, tail = self._type_hint(schema, t.head), self._type_hint(schema, t.tail)
        return (
            f"class {t.class_name}(Relation):\n{_docstring(t.description, examples)}\n"
            f"{INDENT}def __init__(self, head_entity: {head}, tail_entity: {tail}):\n"
            f"{INDENT * 2}super().__init__(head_entity=head_entity, tail_entity=tail_entity)\n"
        )

    def render_event(self, schema: Schema, t: EventType) -> str:
        lines = [f"class {t.class_name}(Event):", _docstring(t.description, t.examples)]
        lines.append(f"{INDENT}def __init__(")
        lines.append(f"{INDENT * 2}self,")
        lines.append(f"{INDENT * 2}trigger: str,")
        for role in t.roles:
            comment = f"  # {_one_line(role.description)}" if role.description else ""
            lines.append(f"{INDENT * 2}{role.parameter}: List[{self._type_hint(schema, role.types)}] = [],{comment}")
        lines.append(f"{INDENT}):")
        lines.append(f"{INDENT * 2}super().__init__(trigger=trigger)")
        for role in t.roles:
            lines.append(f"{INDENT * 2}self.{role.parameter} = {role.parameter}")
        return "\n".join(lines) + "\n"

    def render_schema(self, schema: Schema) -> str:
        """The class definitions: identical for every sentence, so callers may cache and reuse them."""
        check_base_classes(schema)
        return _render_schema_cached(self, schema)

    def _render_schema(self, schema: Schema) -> str:
        parts = [_BASE_CLASSES["entity"]]
        if schema.relations:
            parts.append(_BASE_CLASSES["relation"])
        if schema.events:
            parts.append(_BASE_CLASSES["event"])
        parts.extend(self.render_entity(schema, t) for t in schema.entities)
        parts.extend(self.render_relation(schema, t) for t in schema.relations)
        parts.extend(self.render_event(schema, t) for t in schema.events)
        return "\n".join(parts)

    def render_instruction(self, schema: Schema) -> str:
        if self.instruction:
            return self.instruction
        kinds = []
        if schema.entities:
            kinds.append("Entity")
        if schema.relations:
            kinds.append("Relation")
        if schema.events:
            kinds.append("Event")
        kind = "/".join(kinds)
        return (
            f"This is an object-oriented programming task: some {kind} Classes are defined above. "
            f"Please instantiate all the corresponding {kind} Objects in the following sentence."
        )

    def demonstration_turns(self, schema: Schema) -> List[Tuple[str, str]]:
        """Solved examples as (sentence, completion) pairs, limited to the types this schema (group) has."""
        known = {t.label for t in schema.types}
        turns = []
        for text, instances in self.demonstrations:
            kept = [i for i in instances if i.label in known and _mentions_known(i, schema)]
            turns.append((text, self.render_completion(schema, kept)))
        return turns

    def render_query(self, schema: Schema, text: str) -> str:
        """The first `Input:` part: class definitions, instruction and a sentence."""
        return (
            f"{self.render_schema(schema)}\n\"\"\"\n{self.render_instruction(schema)}\n\"\"\"\n"
            f"sentence = {python_string_literal(text)}\n"
        )

    def render_prompt(self, schema: Schema, text: str,
                      solved: Optional[Sequence[Tuple[str, Sequence[Instance]]]] = None) -> str:
        """The full prompt, ending where the model writes the list items.

        Demonstrations come as earlier Input/Output exchanges (the classes are shown once, in the first), so
        a chat model sees them as previous turns and a plain model as a few-shot continuation. `solved`
        replaces the configured demonstrations with (sentence, instances) pairs, e.g. a source sentence and
        its answer before its translation (translated-instance prediction).
        """
        head = f"{self.system_prompt}\n" if self.system_prompt else ""
        if solved is None:
            turns = self.demonstration_turns(schema)
        else:
            turns = [(sentence, self.render_completion(schema, instances)) for sentence, instances in solved]
        sentences = [t for t, _ in turns] + [text]
        parts = []
        for i, sentence in enumerate(sentences):
            query = self.render_query(schema, sentence) if i == 0 else f"sentence = {python_string_literal(sentence)}\n"
            answer = turns[i][1] + "\n" if i < len(turns) else ""
            parts.append(f"{INPUT_MARKER}{query}{OUTPUT_MARKER}{COMPLETION_PREFIX}{answer}")
        return head + "".join(parts)

    def parser(self, schema: Schema) -> "CodeParser":
        """The reader of this style's answers for `schema` (`parse(completion) -> ParseResult`)."""
        from ..parsing import CodeParser

        return CodeParser(schema)

    def prompt_for(self, schema: Schema, text: str) -> "Prompt":
        """`render_prompt` as a `Prompt` that carries the classes its answer may use, for constrained decoding."""
        from ..models.constrained import classes_for_schema

        literal = python_string_literal(text)[1:-1]
        return Prompt(self.render_prompt(schema, text), classes_for_schema(schema), literal)

    # ---- instances -> code ------------------------------------------------------------------
    def _mention(self, schema: Schema, mention: Mention) -> str:
        cls = self.class_name(schema, mention.label) if mention.label else ANY_ENTITY
        return f"{cls}({python_string_literal(mention.text)})"

    def render_instance(self, schema: Schema, instance: Instance) -> str:
        if isinstance(instance, EntityInstance):
            return self._mention(schema, Mention(instance.text, instance.label))
        if isinstance(instance, RelationInstance):
            relation = next((r for r in schema.relations if r.label == instance.label), None)
            if relation is None:
                raise KeyError(f"relation label {instance.label!r} is not in the schema")
            head, tail = self._mention(schema, instance.head), self._mention(schema, instance.tail)
            return f"{relation.class_name}({head}, {tail})"
        found = next((e for e in schema.events if e.label == instance.label), None)
        if found is None:
            raise KeyError(f"event label {instance.label!r} is not in the schema")
        grouped: dict = {}
        for role_name, mention in instance.arguments:
            role = next((r for r in found.roles if r.name == role_name), None)
            if role is None:
                raise KeyError(f"role {role_name!r} is not a role of event {instance.label!r}")
            grouped.setdefault(role.parameter, []).append(self._mention(schema, mention))
        args = [f"trigger={python_string_literal(instance.trigger)}"]
        args.extend(f"{param}=[{', '.join(values)}]" for param, values in grouped.items())
        return f"{found.class_name}({', '.join(args)})"

    def render_completion(self, schema: Schema, instances: Iterable[Instance]) -> str:
        """What the model should write after the prompt: the list items and the closing bracket."""
        items = [self.render_instance(schema, inst) for inst in instances]
        if not items:
            return "]"
        return "\n" + ",\n".join(INDENT + item for item in items) + "\n]"


def check_base_classes(schema: Schema) -> None:
    """Refuse a schema (group) whose entity class `Event` or `Relation` would shadow the base class of its own
    events or relations in one prompt."""
    for kind, types in (("Event", schema.events), ("Relation", schema.relations)):
        if types and schema.entity_label_for_class(kind) is not None:
            raise SchemaError(
                f"The entity type {schema.entity_label_for_class(kind)!r} has the class name {kind!r}, which this "
                f"prompt also needs for the base class of its {kind.lower()} types. Give the entity another "
                "class_name, or send entities and the other types in separate prompts (task_split = \"per_task\")."
            )


def _mentions_known(instance: Instance, schema: Schema) -> bool:
    labels = {e.label for e in schema.entities}
    if isinstance(instance, RelationInstance):
        return all(m.label is None or m.label in labels for m in (instance.head, instance.tail))
    if isinstance(instance, EventInstance):
        return all(m.label is None or m.label in labels for _, m in instance.arguments)
    return True


def _demonstration(data: Dict[str, Any]) -> Tuple[str, List[Instance]]:
    """A solved example given as {"text", "entities": [{"text", "label"}], "relations": [{"head": {"text",
    "label"}, "tail": {...}, "label"}], "events": [{"trigger", "label", "arguments": [{"text", "role"}]}]}."""
    try:
        instances: List[Instance] = [EntityInstance(e["label"], e["text"]) for e in data.get("entities", ())]
        for r in data.get("relations", ()):
            instances.append(RelationInstance(r["label"], Mention(r["head"]["text"], r["head"].get("label")),
                                              Mention(r["tail"]["text"], r["tail"].get("label"))))
        for ev in data.get("events", ()):
            args = tuple((a["role"], Mention(a["text"], a.get("label"))) for a in ev.get("arguments", ()))
            instances.append(EventInstance(ev["label"], ev["trigger"], args))
        return str(data["text"]), instances
    except (KeyError, TypeError, AttributeError) as err:
        raise SchemaError(
            f"A prompt demonstration is malformed ({err!r}). Write it as {{'text': ..., 'entities': "
            "[{'text': ..., 'label': ...}], 'relations': [...], 'events': [...]}."
        ) from None


@lru_cache(maxsize=256)
def _render_schema_cached(style: KnowCoderPrompt, schema: Schema) -> str:
    return style._render_schema(schema)


@registry.misc("spacy_codeie.KnowCoderPrompt.v1")
def make_knowcoder_prompt(
    system_prompt: Optional[str] = KNOWCODER_SYSTEM_PROMPT,
    instruction: Optional[str] = None,
    demonstrations: Optional[List[Dict[str, Any]]] = None,
) -> KnowCoderPrompt:
    """The default prompt style: KnowCoder's classes, system prompt and Input/Output wrapper.

    `demonstrations` are solved examples shown before each sentence; small models that were not fine-tuned
    on this format need one to answer in it.
    """
    return KnowCoderPrompt(system_prompt=system_prompt, instruction=instruction, demonstrations=demonstrations)
