"""ADELIE's closed-IE format: one task per chat turn, answers as `[Answer]: Ada: person; Acme: organization; `.

ADELIE (THU-KEG/ADELIE-SFT, -DPO and their 1.5B/3B versions) was tuned on IEInstruct, built by THU-KEG/ADELIE's
`scripts/tasks/*/load_data_fs.py` from `scripts/tasks/instructions.json`: an instruction with `<options>`
replaced by `[a, b, c]` and `<text>` by `Text: '...'` (or the text appended on its own line), followed by the
answer-form sentence of the task, in Tulu's chat layout (`<|user|>\\n...\\n<|assistant|>\\n`). Its test
rows (`unified_data/test_format/zeroshot/*.jsonl`) are rendered exactly so; this style renders them with one
fixed instruction per task (IEInstruct samples one of ~30 per row) and reads the answer forms:

- NER: `[Answer]: {entity}: {type}; ` per entity;
- RE: `[Answer]: ({subject}; {relation}; {object})` one triple a line;
- ED (events, first stage): `[Answer]: {trigger}: {type}; ` per event; the arguments are a second stage,
  `render_argument_prompt` and `argument_parser`, with the trigger marked `<event> ... </event>`;
- no instance: `NA` or one of ADELIE's "there are no ..." sentences.

An `[Explanation]: ...` before `[Answer]:` (ADELIE sometimes reasons first) is skipped.
"""
from __future__ import annotations

import re
from typing import ClassVar, Dict, Iterable, List, Literal, Optional, Sequence, Tuple

from spacy.util import registry

from ..errors import SchemaError
from ..instances import EntityInstance, EventInstance, Instance, Mention, ParseResult, RelationInstance
from ..schema.types import ANY_ENTITY, EventType, Schema
from ._untrusted import clip, label_names
from .prompt import Prompt

# From THU-KEG/ADELIE scripts/tasks/instructions.json (NER[4], DocRC[0], ED[0], EAE[0]) and the tasks' desc.py
# OUTPUT_BASE[0] answer forms (conll-2003, tacred, ace2005-ed, ace2005-eae), commit 70f01ff0.
NER_INSTRUCTION = ('For the given context "<text>", identify and classify the named entities into their '
                   "corresponding categories: <options>.")
RE_INSTRUCTION = ("Please follow the above demonstration, extract relations from the [<text>]. Note the relation "
                  "need to be in the predefined set of relations. the predefined set of relations: <options>.\n")
ED_INSTRUCTION = ("Please identify the events in the text and classify them into appropriate categories; The "
                  "collection of categories is : <options>.\n")
EAE_INSTRUCTION = ("Please extract event arguments and their roles for the events marked with <event> and </event> "
                   "in the text, the possible roles must be chosen from the Roleset. If there is no roles for the "
                   "event, place output'NA'.\n")
NER_FORM = 'Please give the answer in the form "[Answer]: {entity}: {type}; ".'
RE_FORM = 'Please give the answer in the tuple form "[Answer]: ({subject}; {relation}; {object})\n".'
ED_FORM = 'Please give the answer in the form "[Answer]: {event}: {class}; ".'
EAE_FORM = 'Please give the answer in the form "[Answer]: {word}: {role}; ".'
DEFAULT_INSTRUCTIONS = {"ner": NER_INSTRUCTION, "re": RE_INSTRUCTION, "ed": ED_INSTRUCTION, "eae": EAE_INSTRUCTION}
ANSWER_FORMS = {"ner": NER_FORM, "re": RE_FORM, "ed": ED_FORM, "eae": EAE_FORM}
ANSWER = "[Answer]: "
NO_ANSWER = "NA"
EVENT_MARKERS = ("<event>", "</event>")
SYSTEM, USER, ASSISTANT, EOS = "<|system|>\n", "<|user|>\n", "<|assistant|>\n", "</s>"

Task = Literal["ner", "re", "ed", "eae"]
# Beginnings of ADELIE's "nothing found" answers (the second column of instructions.json, lower-cased).
_NOTHING = ("na", "none", "no ", "no.", "nothing", "there is no", "there are no", "the text contains no",
            "the two entities", "the event have no", "i think there is no", "not related")
_TRIPLE = re.compile(r"\(([^()\n]*)\)")


def _options(names: Sequence[str]) -> str:
    return "[" + ", ".join(names) + "]"


def fill(instruction: str, form: str, text: str, names: Sequence[str]) -> str:
    """One user message as IEInstruct builds it: options and text put into the instruction, the answer form
    appended, and the text on its own line when the instruction has no `<text>` slot."""
    if "<options>" in instruction:
        instruction = instruction.replace("<options>", _options(names), 1)
    else:
        instruction += "\nOptions: " + _options(names) + "\n"
    return place_text(instruction + form, text)


def place_text(instruction: str, text: str) -> str:
    """The text quoted into the instruction's `<text>` slot (the line then ends), or on its own line after the
    instruction when it has no slot: how IEInstruct's test rows join instruction and input."""
    quoted = f"Text: '{text}'"
    if "<text>" in instruction:
        return instruction.replace("<text>", quoted) + "\n"
    return instruction + "\n" + quoted


def tulu_chat(turns: Sequence[Tuple[str, Optional[str]]], system: Optional[str] = None) -> str:
    """Tulu's layout as ADELIE's `create_prompt_with_tulu_chat_format` writes it, up to the assistant's turn
    (BOS left to the tokenizer); each turn is (user message, answer or None)."""
    out = [SYSTEM + system + "\n"] if system is not None else []
    for user, answer in turns:
        out.append(USER + user + "\n")
        if answer is not None:
            out.append(ASSISTANT + answer.strip() + EOS + "\n")
    return "".join(out) + ASSISTANT


def mark_trigger(text: str, trigger: str) -> Optional[str]:
    """The text with the first occurrence of `trigger` wrapped as ADELIE marks events, or None if absent."""
    start = text.find(trigger) if trigger else -1
    if start < 0:
        return None
    end = start + len(trigger)
    return f"{text[:start]}{EVENT_MARKERS[0]} {trigger} {EVENT_MARKERS[1]}{text[end:]}"


class ADELIEPrompt:
    """ADELIE's per-task closed-IE prompts in Tulu's chat layout, and readers of its `[Answer]:` forms."""

    registry_name: ClassVar[str] = "spacy_codeie.ADELIEPrompt.v1"
    tasks: ClassVar[Literal["joint", "per_task"]] = "per_task"

    def __init__(self, label_names: Optional[Dict[str, str]] = None,
                 chat_format: Literal["tulu", "none"] = "tulu", instructions: Optional[Dict[str, str]] = None):
        if chat_format not in ("tulu", "none"):
            raise SchemaError(f"ADELIEPrompt chat_format must be 'tulu' or 'none', not {chat_format!r}.")
        unknown = sorted(set(instructions or {}) - set(DEFAULT_INSTRUCTIONS))
        if unknown:
            raise SchemaError(f"ADELIEPrompt instructions are keyed by task ({', '.join(DEFAULT_INSTRUCTIONS)}); "
                              f"{unknown} is not one. Use one of those keys.")
        self.label_names = dict(label_names or {})
        self.chat_format = chat_format
        # Another of IEInstruct's instructions for a task (with its `<options>` and `<text>` slots) may suit a
        # checkpoint or a schema better than the default; the answer form stays the task's.
        self.instructions = {**DEFAULT_INSTRUCTIONS, **(instructions or {})}

    # ---- names and tasks --------------------------------------------------------------------------
    def names(self, schema: Schema, task: Task, event: Optional[EventType] = None) -> Dict[str, str]:
        """label (or role) -> the option name shown; the reader maps names back with it."""
        if task == "ner":
            return label_names([t.label for t in schema.entities], self.label_names, "entity type")
        if task == "re":
            return label_names([t.label for t in schema.relations], self.label_names, "relation")
        if task == "ed":
            return label_names([t.label for t in schema.events], self.label_names, "event type")
        assert event is not None
        return label_names([r.name for r in event.roles], self.label_names, f"role of {event.label!r}")

    @staticmethod
    def task_of(schema: Schema) -> Task:
        """The one task a schema (group) asks: relations, else events (their trigger stage), else entities."""
        if schema.relations and schema.events:
            raise SchemaError(
                "ADELIE answers one task per prompt, but this schema has both relations and events. Let the "
                "component split the schema by task (the style declares tasks='per_task'), or pass one task's types."
            )
        return "re" if schema.relations else "ed" if schema.events else "ner"

    def _chat(self, turns: Sequence[Tuple[str, Optional[str]]]) -> str:
        """Tulu's layout as ADELIE's `create_prompt_with_tulu_chat_format` writes it (BOS left to the tokenizer)."""
        if self.chat_format == "none":
            if len(turns) > 1:
                raise SchemaError("ADELIEPrompt with chat_format='none' renders one user message; it cannot show "
                                  "solved examples. Use chat_format='tulu' or give no examples.")
            return turns[0][0]
        return tulu_chat(turns)

    def render_user(self, schema: Schema, text: str) -> str:
        task = self.task_of(schema)
        names = list(self.names(schema, task).values())
        return fill(self.instructions[task], ANSWER_FORMS[task], text, names)

    def render_prompt(self, schema: Schema, text: str,
                      solved: Optional[Sequence[Tuple[str, Sequence[Instance]]]] = None) -> str:
        """The chat up to the assistant's turn; solved (text, instances) pairs come first as earlier turns,
        each a full instruction (as in IEInstruct's few-shot histories)."""
        turns: List[Tuple[str, Optional[str]]] = [
            (self.render_user(schema, t), self.render_completion(schema, inst)) for t, inst in solved or ()]
        turns.append((self.render_user(schema, text), None))
        return self._chat(turns)

    def prompt_for(self, schema: Schema, text: str) -> Prompt:
        """Unconstrained; a text answer that only the model's end-of-sequence ends."""
        return Prompt(self.render_prompt(schema, text), None, None, answer_end="free")

    # ---- instances -> answers ---------------------------------------------------------------------
    def render_completion(self, schema: Schema, instances: Iterable[Instance]) -> str:
        task = self.task_of(schema)
        names = self.names(schema, task)
        items = []
        for inst in instances:
            if task == "ner" and isinstance(inst, EntityInstance):
                items.append(f"{inst.text}: {_name(names, inst.label)}; ")
            elif task == "re" and isinstance(inst, RelationInstance):
                items.append(f"({inst.head.text}; {_name(names, inst.label)}; {inst.tail.text})\n")
            elif task == "ed" and isinstance(inst, EventInstance):
                items.append(f"{inst.trigger}: {_name(names, inst.label)}; ")
            # instances of other tasks belong to other prompts of the same text
        return ANSWER + ("".join(items) if items else NO_ANSWER)

    def parser(self, schema: Schema) -> "ADELIEParser":
        task = self.task_of(schema)
        return ADELIEParser(schema, task, self.names(schema, task))

    # ---- second stage: the arguments of one detected event ----------------------------------------
    def render_argument_prompt(self, schema: Schema, text: str, event: EventInstance) -> str:
        """ADELIE's argument-extraction prompt for `event`, its trigger marked in the text."""
        etype = _event_type(schema, event.label)
        marked = mark_trigger(text, event.trigger)
        if marked is None:
            raise SchemaError(f"The trigger {event.trigger!r} is not in the text; detect events on this text first.")
        names = list(self.names(schema, "eae", etype).values())
        return self._chat([(fill(self.instructions["eae"], EAE_FORM, marked, names), None)])

    def render_argument_completion(self, schema: Schema, event: EventInstance) -> str:
        etype = _event_type(schema, event.label)
        names = self.names(schema, "eae", etype)
        items = [f"{m.text}: {_name(names, role)}; " for role, m in event.arguments]
        return ANSWER + ("".join(items) if items else NO_ANSWER)

    def follow_ups(self, schema: Schema, text: str,
                   found: Sequence[Instance]) -> List[Tuple[Prompt, "ADELIEParser"]]:
        """One argument prompt per detected event whose type has roles and whose trigger is in the text."""
        out: List[Tuple[Prompt, "ADELIEParser"]] = []
        for event in found:
            if not (isinstance(event, EventInstance) and schema.events and mark_trigger(text, event.trigger)):
                continue
            etype = next((t for t in schema.events if t.label == event.label), None)
            if etype is None or not etype.roles:
                continue
            prompt = Prompt(self.render_argument_prompt(schema, text, event), None, None, answer_end="free")
            out.append((prompt, self.argument_parser(schema, event)))
        return out

    def argument_parser(self, schema: Schema, event: EventInstance) -> "ADELIEParser":
        """Reads the second-stage answer into one EventInstance: `event` with the arguments found."""
        etype = _event_type(schema, event.label)
        return ADELIEParser(schema, "eae", self.names(schema, "eae", etype), event=event)


def _name(names: Dict[str, str], label: str) -> str:
    try:
        return names[label]
    except KeyError:
        raise KeyError(f"label {label!r} is not in the schema") from None


def _event_type(schema: Schema, label: str) -> EventType:
    found = next((e for e in schema.events if e.label == label), None)
    if found is None:
        raise SchemaError(f"The event type {label!r} is not in the schema; pass the schema the event was found with.")
    return found


def answer_body(completion: str) -> str:
    """The text after the last `[Answer]:` (skipping an `[Explanation]:`), or the whole completion."""
    at = completion.rfind("[Answer]:")
    body = completion[at + len("[Answer]:"):] if at >= 0 else completion
    return body.strip()


def says_nothing(body: str) -> bool:
    lowered = body.lower().strip().strip('"').strip()
    return not lowered or lowered.startswith(_NOTHING)


class ADELIEParser:
    """Reads one task's `[Answer]:` text into instances, by option name (case-insensitive) or label."""

    def __init__(self, schema: Schema, task: Task, names: Dict[str, str], event: Optional[EventInstance] = None):
        self.schema = schema
        self.task = task
        self.event = event
        self.by_name = {}
        for label, name in names.items():
            self.by_name[name.casefold()] = label
            self.by_name.setdefault(label.casefold(), label)

    def _label(self, name: str) -> Optional[str]:
        return self.by_name.get(" ".join(name.split()).strip('"').casefold())

    def parse(self, completion: str) -> ParseResult:
        result = ParseResult()
        completion, result.truncated = clip(completion or "")
        body = answer_body(completion)
        if not body:
            result.empty = True
        if self.task == "eae":
            result.instances.append(self._arguments(body, result))
            return result
        if self.task == "re":
            self._triples(body, result)
        else:
            self._pairs(body, result)
        if not result.instances and says_nothing(body):
            # "NA", "There are no entities in the text.": an answer, not a failure
            result.unparseable = result.unknown_class = 0
        return result

    @staticmethod
    def _items(body: str) -> List[str]:
        return [item.strip() for item in re.split(r";\s", body + " ") if item.strip().strip(";").strip()]

    def _pairs(self, body: str, result: ParseResult) -> None:
        for item in self._items(body):
            text, sep, name = item.strip(";").rpartition(": ")
            text = text.strip()
            if not sep or not text:
                result.unparseable += 1
                continue
            label = self._label(name)
            if label is None:
                result.unknown_class += 1
            elif self.task == "ner":
                result.instances.append(EntityInstance(label, text))
            else:
                result.instances.append(EventInstance(label, text, ()))

    def _triples(self, body: str, result: ParseResult) -> None:
        found = _TRIPLE.findall(body)
        leftover = _TRIPLE.sub("", body).strip(" \n;,")
        if leftover and not says_nothing(leftover):
            result.unparseable += 1
        relations = {r.label: r for r in self.schema.relations}
        for inner in found:
            parts = [p.strip() for p in inner.split(";")]
            if len(parts) != 3 or not parts[0] or not parts[2]:
                result.unparseable += 1
                continue
            label = self._label(parts[1])
            if label is None:
                result.unknown_class += 1
                continue
            rtype = relations[label]
            result.instances.append(RelationInstance(label, Mention(parts[0], _single(rtype.head)),
                                                     Mention(parts[2], _single(rtype.tail))))

    def _arguments(self, body: str, result: ParseResult) -> EventInstance:
        assert self.event is not None
        etype = _event_type(self.schema, self.event.label)
        roles = {r.name: r for r in etype.roles}
        arguments = list(self.event.arguments)
        before = len(arguments)
        if body:
            for item in self._items(body):
                text, sep, name = item.strip(";").rpartition(": ")
                text = text.strip()
                if not sep or not text:
                    result.unparseable += 1
                    continue
                role = self._label(name)
                if role is None or role not in roles:
                    result.unknown_role += 1
                    continue
                arguments.append((role, Mention(text, _single(roles[role].types))))
        if len(arguments) == before and says_nothing(body):
            result.unparseable = result.unknown_role = 0
        return EventInstance(self.event.label, self.event.trigger, tuple(arguments))


def _single(allowed: Tuple[str, ...]) -> Optional[str]:
    return allowed[0] if len(allowed) == 1 and allowed[0] != ANY_ENTITY else None


@registry.misc("spacy_codeie.ADELIEPrompt.v1")
def make_adelie_prompt(label_names: Optional[Dict[str, str]] = None,
                       chat_format: Literal["tulu", "none"] = "tulu",
                       instructions: Optional[Dict[str, str]] = None) -> ADELIEPrompt:
    """ADELIE's closed-IE prompts for the THU-KEG/ADELIE checkpoints; `label_names` renames labels in options,
    `instructions` replaces the instruction of a task ("ner", "re", "ed", "eae")."""
    return ADELIEPrompt(label_names=label_names, chat_format=chat_format, instructions=instructions)
