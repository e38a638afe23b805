"""KnowCoder's released format, byte for byte, for KnowCoder's own checkpoints.

KnowCoder (ICT-GoKnow/KnowCoder) was tuned on one task per prompt, rendered as in its SFT data
(`sft/data/example_data/example_data.jsonl`) and wrapped by its `KnowCoder` template
(`sft/src/llmtuner/data/template.py`): the system prompt, a newline, then `Input:\\n{code}\\nOutput:\\n`, each
piece tokenized on its own. The model writes the whole answer, `results = [...]`, itself. The tasks:

- NER: the `Entity` base class and one class per entity type (a type may name its own base class, its
  `parent`); answers `Person("Ada")`.
- RE: the `Entity` and `Relation` bases, the entity classes typed relations refer to, the relation classes;
  answers `WorksFor(Entity("Ada"), Entity("Acme"))` (typed: `WorksFor(Person("Ada"), Organization("Acme"))`).
- Events in two stages. Detection: an `Event` base taking `arg_names, *args` and per type only its role
  names; answers `Education("school")`. Argument extraction, for the detected types only: roles as
  `List[ Entity ]` parameters and the detected triggers stated in the instruction; answers
  `Education(trigger = "student", student = [Entity("Ada")])`.

The sentence is written raw, as KnowCoder's data has it. Role names that are Python keywords (`from`) are
written as such and read back (the schema's parameter is `from_`).
"""
from __future__ import annotations

import keyword
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from spacy.util import registry

from ..errors import SchemaError
from ..instances import EntityInstance, EventInstance, Instance, Mention, ParseResult, RelationInstance
from ..parsing import MAX_ITEM_CHARS, CodeParser
from ..schema.types import ANY_ENTITY, AnyType, EntityType, EventType, RelationType, Role, Schema
from .knowcoder import INPUT_MARKER, KNOWCODER_SYSTEM_PROMPT, OUTPUT_MARKER, python_string_literal
from .prompt import Prompt

ANSWER_OPENING = "results = ["
TASK_INSTRUCTION = "This is an object-oriented programming task: some {kinds} are defined above. " \
                   "Please instantiate all the corresponding {objects} in the following sentence."
TRIGGERS_CONFIRMED = " It is important to note that the triggers of the events are confirmed as follows: {}."
ENTITY_BASE = ('class Entity:\n\t"""\n\tThe base class for all entities.\n\t"""\n'
               "\tdef __init__(self, name: str):\n\t\tself.name = name\n")
RELATION_BASE = ('class Relation:\n\t"""\n\tThe base class for all relations.\n\t"""\n'
                 "\tdef __init__(self, head_entity: Entity, tail_entity: Entity):\n"
                 "\t\tself.head_entity = head_entity\n\t\tself.tail_entity = tail_entity\n")
DETECTION_EVENT_BASE = ('class Event:\n\t"""\n\tThe base class for all events.\n\t"""\n'
                        "\tdef __init__(self, trigger: str, arg_names, *args):\n\t\tself.trigger = trigger\n"
                        "\t\tself.arguments = {}\n\t\tfor arg_name, arg_values in zip(arg_names, args):\n"
                        "\t\t\tself.arguments[arg_name] = arg_values\n")
ARGUMENT_EVENT_BASE = ('class Event:\n\t"""\n\tThe base class for all events.\n\t"""\n'
                       "\tdef __init__(self, trigger: str):\n\t\tself.trigger = trigger\n")


def role_name(role: Role) -> str:
    """The name KnowCoder writes for a role: its parameter, with the `_` a Python keyword got taken off."""
    bare = role.parameter[:-1]
    return bare if role.parameter.endswith("_") and keyword.iskeyword(bare) else role.parameter


def _line(text: str) -> str:
    """Docstring text kept on its line and inside its docstring."""
    return text.replace("\r", " ").replace("\n", " ").replace('"""', "'''")


def _docstring(description: str, examples: Optional[str]) -> str:
    lines = ['\t"""', f"\tDescription: {_line(description)}"]
    if examples is not None:
        lines.append(f"\tExamples: {_line(examples)}")
    return "\n".join(lines + ['\t"""'])


class KnowCoderTaskPrompt:
    """KnowCoder's released format: one task per prompt, events in two stages (see the module docstring)."""

    tasks = "per_task"
    registry_name = "spacy_codeie.KnowCoderPrompt.v2"

    def __init__(self, system_prompt: Optional[str] = KNOWCODER_SYSTEM_PROMPT):
        self.system_prompt = system_prompt or ""

    # ---- classes -------------------------------------------------------------------------------
    def _hint(self, schema: Schema, labels: Sequence[str]) -> str:
        if not labels or ANY_ENTITY in labels:
            return ANY_ENTITY
        return " | ".join(self._class_of(schema, label) for label in labels)

    @staticmethod
    def _class_of(schema: Schema, label: Optional[str]) -> str:
        found = schema.entity_by_label(label) if label else None
        return found.class_name if found else ANY_ENTITY

    def render_entity(self, t: EntityType) -> str:
        examples = ", ".join(t.examples) if t.examples else None
        return f"class {t.class_name}({t.parent or 'Entity'}):\n{_docstring(t.description, examples)}\n\tpass\n"

    def render_relation(self, schema: Schema, t: RelationType) -> str:
        examples = ", ".join(f"({h}, {tail})" for h, tail in t.examples) if t.examples else None
        return (f"class {t.class_name}(Relation):\n{_docstring(t.description, examples)}\n"
                f"\tdef __init__(self, head_entity: {self._hint(schema, t.head)}, "
                f"tail_entity: {self._hint(schema, t.tail)}):\n"
                "\t\tsuper().__init__(head_entity = head_entity, tail_entity = tail_entity)\n")

    def render_detection_event(self, t: EventType) -> str:
        examples = "".join(f"{e}, " for e in t.examples) if t.examples else None
        names = ", ".join(f'"{role_name(r)}"' for r in t.roles)
        return (f"class {t.class_name}(Event):\n{_docstring(t.description, examples)}\n"
                "\tdef __init__(self, trigger: str, *args):\n"
                f"\t\targ_names = [{names}]\n"
                "\t\tsuper().__init__(trigger = trigger, arg_names = arg_names, *args)\n")

    def render_argument_event(self, t: EventType) -> str:
        trigger = "\t\ttrigger: str," + (" # Examples: " + _line("".join(f"{e}, " for e in t.examples))
                                         if t.examples else "")
        params = ",\n".join(f"\t\t{role_name(r)}: List[ Entity ]" for r in t.roles)
        body = "".join(f"\t\tself.{role_name(r)} = {role_name(r)}\n" for r in t.roles)
        return (f"class {t.class_name}(Event):\n{_docstring(t.description, None)}\n"
                f"\tdef __init__(\n\t\tself,\n{trigger}\n{params}\n\t):\n"
                f"\t\tsuper().__init__(trigger = trigger)\n{body}")

    # ---- prompts -------------------------------------------------------------------------------
    @staticmethod
    def task_of(schema: Schema) -> str:
        """The one task a schema group asks for: "ner", "re" or "ed" (events, first stage)."""
        if schema.events:
            if schema.relations:
                raise SchemaError("KnowCoderPrompt.v2 asks for one task per prompt, and this schema group has "
                                  "both relations and events. Use task_split = \"per_task\".")
            return "ed"
        return "re" if schema.relations else "ner"

    def render_code(self, schema: Schema, task: str, triggers: Sequence[Tuple[str, str]] = ()) -> str:
        """The `Input:` part for a task: classes, instruction, sentence placeholder excluded."""
        if task == "ner":
            parts = [ENTITY_BASE] + [self.render_entity(t) for t in schema.entities]
            kinds, objects = "Entity Classes", "Entity Objects"
        elif task == "re":
            typed = {label for r in schema.relations for label in r.head + r.tail} - {ANY_ENTITY}
            parts = [ENTITY_BASE, RELATION_BASE] + [self.render_entity(t) for t in schema.entities
                                                    if t.label in typed]
            parts += [self.render_relation(schema, t) for t in schema.relations]
            kinds, objects = "Relation Classes and related Entity Classes", "Relation Objects"
        elif task == "ed":
            parts = [DETECTION_EVENT_BASE] + [self.render_detection_event(t) for t in schema.events]
            kinds, objects = "Event Classes", "Event Objects"
        else:  # "eae"
            parts = [ENTITY_BASE, ARGUMENT_EVENT_BASE] + [self.render_argument_event(t) for t in schema.events]
            kinds, objects = "Event Classes", "Event Objects"
        instruction = TASK_INSTRUCTION.format(kinds=kinds, objects=objects)
        if triggers:
            confirmed = "; ".join(f'"{trigger}" is the trigger of event type "{name}"' for trigger, name in triggers)
            instruction += TRIGGERS_CONFIRMED.format(confirmed)
        return "\n".join(parts) + f'\n"""\n{instruction}\n"""\n'

    def _prompt(self, schema: Schema, task: str, text: str, triggers: Sequence[Tuple[str, str]] = ()) -> Prompt:
        from ..models.constrained import classes_for_schema

        turn = f"{INPUT_MARKER}{self.render_code(schema, task, triggers)}sentence = \"{text}\"\n{OUTPUT_MARKER}"
        segments = (self.system_prompt, "\n", turn) if self.system_prompt else (turn,)
        items: Sequence[AnyType] = (schema.entities if task == "ner" else schema.relations if task == "re"
                                    else schema.events)
        classes = classes_for_schema(schema, role_name=role_name, opening=ANSWER_OPENING.encode(),
                                     keyword_sep=b" = ", trigger_only=task == "ed",
                                     items=frozenset(t.class_name.encode("utf-8") for t in items),
                                     ascii_case=True)
        literal = python_string_literal(text)[1:-1]  # mentions are written as Python literals
        return Prompt("".join(segments), classes, literal, answer_end="answer_opens", segments=segments)

    def render_prompt(self, schema: Schema, text: str,
                      solved: Optional[Sequence[Tuple[str, Sequence[Instance]]]] = None) -> str:
        """The first-stage prompt of the schema group's task, ending at `Output:\\n`. KnowCoder was tuned
        zero-shot, so `solved` turns are refused rather than shown in a layout it never saw."""
        if solved:
            raise SchemaError("KnowCoderPrompt.v2 renders KnowCoder's zero-shot prompts only; it takes no solved "
                              "turns (translated-instance prediction uses KnowCoderPrompt.v1 or CompactPrompt.v1).")
        return self.prompt_for(schema, text)

    def prompt_for(self, schema: Schema, text: str) -> Prompt:
        return self._prompt(schema, self.task_of(schema), text)

    def argument_prompt(self, schema: Schema, text: str, detected: Sequence[EventInstance]) -> Optional[Prompt]:
        """The second-stage prompt for the detected events whose types have roles, or None if none has."""
        labels = {e.label for e in detected}
        types = [t for t in schema.events if t.label in labels and t.roles]
        if not types:
            return None
        names = {t.label: t.class_name for t in types}
        triggers = list(dict.fromkeys((e.trigger, names[e.label]) for e in detected if e.label in names))
        return self._prompt(schema.subset(types), "eae", text, triggers)

    def follow_ups(self, schema: Schema, text: str,
                   found: Sequence[Instance]) -> List[Tuple[Prompt, "KnowCoderParser"]]:
        """Argument extraction for the events this schema group's detection answer found."""
        detected = [i for i in found if isinstance(i, EventInstance)]
        prompt = self.argument_prompt(schema, text, detected) if schema.events and detected else None
        if prompt is None:
            return []
        return [(prompt, KnowCoderParser(schema))]

    # ---- answers -------------------------------------------------------------------------------
    def render_instance(self, schema: Schema, instance: Instance, task: str) -> str:
        def mention(m: Mention) -> str:
            return f"{self._class_of(schema, m.label)}({python_string_literal(m.text)})"

        if isinstance(instance, EntityInstance):
            return mention(Mention(instance.text, instance.label))
        found = next((t for t in schema.types if t.label == instance.label and not isinstance(t, EntityType)), None)
        if found is None:
            raise KeyError(f"{instance.label!r} is not a relation or event type of the schema")
        if isinstance(instance, RelationInstance):
            return f"{found.class_name}({mention(instance.head)}, {mention(instance.tail)})"
        if task == "ed":
            return f"{found.class_name}({python_string_literal(instance.trigger)})"
        assert isinstance(found, EventType)
        grouped: Dict[str, List[str]] = {}
        for name, argument in instance.arguments:
            role = next((r for r in found.roles if r.name == name), None)
            if role is None:
                raise KeyError(f"role {name!r} is not a role of event {instance.label!r}")
            grouped.setdefault(role_name(role), []).append(f"Entity({python_string_literal(argument.text)})")
        args = [f"trigger = {python_string_literal(instance.trigger)}"]
        args += [f"{name} = [{', '.join(values)}]" for name, values in grouped.items()]
        return f"{found.class_name}({', '.join(args)})"

    def _completion(self, schema: Schema, instances: Iterable[Instance], task: str) -> str:
        items = [self.render_instance(schema, i, task) for i in instances]
        return ANSWER_OPENING + ("\n" + ",\n".join("\t" + item for item in items) + "\n]" if items else "]")

    def render_completion(self, schema: Schema, instances: Iterable[Instance]) -> str:
        """The first-stage answer (events as detected triggers), as KnowCoder writes it."""
        return self._completion(schema, instances, self.task_of(schema))

    def render_argument_completion(self, schema: Schema, instances: Iterable[Instance]) -> str:
        """The argument-extraction answer: events with their triggers and arguments."""
        return self._completion(schema, instances, "eae")

    def parser(self, schema: Schema) -> "KnowCoderParser":
        return KnowCoderParser(schema)


# A keyword written where a role name goes (`from = [...]`), outside string literals.
_STRING_OR_KEYWORD = re.compile(
    r"(\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*')|\b(" + "|".join(keyword.kwlist) + r")\b(?=[ \t]*=(?!=))")


class KnowCoderParser(CodeParser):
    """KnowCoder's answers: `CodeParser` reads them once role names that are Python keywords (`from = [...]`)
    are given the parameter names the schema has for them (`from_`)."""

    def __init__(self, schema: Schema):
        super().__init__(schema)
        self._keywords = {role.parameter[:-1] for t in schema.events for role in t.roles
                          if role.parameter.endswith("_") and keyword.iskeyword(role.parameter[:-1])}

    def _parse_item(self, item: str, result: ParseResult) -> None:
        if self._keywords and len(item) <= MAX_ITEM_CHARS:  # longer items are counted unparseable unread
            item = _STRING_OR_KEYWORD.sub(
                lambda m: m.group(2) + "_" if m.group(2) in self._keywords else m.group(0), item)
        super()._parse_item(item, result)


@registry.misc("spacy_codeie.KnowCoderPrompt.v2")
def make_knowcoder_task_prompt(system_prompt: Optional[str] = KNOWCODER_SYSTEM_PROMPT) -> KnowCoderTaskPrompt:
    """KnowCoder's released format: for KnowCoder's own checkpoints (one task per prompt, two-stage events)."""
    return KnowCoderTaskPrompt(system_prompt=system_prompt)

