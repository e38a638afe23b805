"""GoLLIE's format: annotation guidelines as `@dataclass` classes, the answer as the list after `result =`.

GoLLIE (HiTZ/GoLLIE-7B, -13B, -34B; Code-LLaMA fine-tunes) was trained on one Jinja template
(`templates/prompt.txt` in hitz-zentroa/GoLLIE) whose output was then formatted with `black`:

    # The following lines describe the task definition
    @dataclass
    class Person(Entity):
        \"\"\"A human being.\"\"\"

        span: str  # Such as: "Ada", "Bo"


    # This is the text to analyze
    text = "Ada met Bo."

    # The annotation instances that take place in the text above are listed here
    result = [
        Person(span="Ada"),
    ]

The prompt ends at `result =` (GoLLIE's own notebooks cut it there) and the model writes the list. Entities
take `span`, relations `arg1`/`arg2`, events `mention` plus one `List[str]` field per role; this module renders
black's layout itself (no `black` dependency), for descriptions, examples and texts the way GoLLIE's do.
The answer is read with `ast` only; GoLLIE's own reader executes it, this one never does.
"""
from __future__ import annotations

import ast
import re
from typing import ClassVar, Dict, Iterable, List, Literal, Optional, Sequence, Tuple

from spacy.util import registry

from ..instances import EntityInstance, EventInstance, Instance, Mention, ParseResult, RelationInstance
from ..parsing import split_items
from ..schema.types import ANY_ENTITY, EntityType, EventType, RelationType, Schema
from ._untrusted import MAX_LITERAL_CHARS, clip, parse_expression
from .prompt import Prompt

GUIDELINES_COMMENT = "# The following lines describe the task definition\n"
TEXT_COMMENT = "# This is the text to analyze\n"
RESULT_COMMENT = "# The annotation instances that take place in the text above are listed here\n"
RESULT_PREFIX = "result ="
MENTION_COMMENT = "The text span that most clearly expresses (triggers) the event"
LINE_LENGTH = 88  # black's default, which formatted every GoLLIE prompt
INDENT = "    "
MAX_EXAMPLES = 5  # GoLLIE shows at most five examples per guideline
# GoLLIE's TACRED guidelines wrap slot values in these; they are plain strings to us.
_STRING_WRAPPERS = frozenset({"Name", "Value", "String"})
_RESULT = re.compile(r"\bresult\s*=\s*")


def black_string(text: str) -> str:
    """`repr(text)` with black's quote normalisation: double quotes unless that needs more escapes."""
    literal = repr(text)
    if literal.startswith('"'):
        return literal
    body = literal[1:-1]
    swapped = re.sub(r"(?<!\\)((?:\\\\)*)\\'", r"\1'", body)
    swapped = re.sub(r'(?<!\\)((?:\\\\)*)"', r'\1\\"', swapped)
    if swapped.count('\\"') > body.count("\\'"):
        return literal
    return f'"{swapped}"'


def _docstring(description: str, fallback: str) -> str:
    """A class docstring laid out as black leaves one: lines re-indented, closing quotes moved down when long."""
    text = description.strip() or fallback
    text = text.replace("\\", "\\\\").replace('"""', "'''")
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if lines[-1].endswith('"'):
        lines[-1] += " "
    rendered = [INDENT + '"""' + lines[0]] + [(INDENT + line) if line else "" for line in lines[1:]]
    if len(rendered[-1]) + 3 > LINE_LENGTH:
        return "\n".join(rendered) + "\n" + INDENT + '"""'
    return "\n".join(rendered) + '"""'


def _comment(text: str) -> str:
    text = " ".join(text.split())
    return f"  # {text}" if text else ""


def _examples_comment(examples: Sequence[str]) -> str:
    """GoLLIE's example line: `# Such as: "a", "b"` (its first five examples)."""
    shown = [" ".join(str(e).split()) for e in examples[:MAX_EXAMPLES]]
    shown = [e.replace('"', "'") for e in shown if e]
    return '  # Such as: "' + '", "'.join(shown) + '"' if shown else ""


class GoLLIEPrompt:
    """Renders a schema as GoLLIE guidelines and a text as its `text = ...` line; reads `result = [...]`."""

    registry_name: ClassVar[str] = "spacy_codeie.GoLLIEPrompt.v1"
    tasks: ClassVar[Literal["joint", "per_task"]] = "per_task"

    # ---- schema -> guidelines ---------------------------------------------------------------------
    def render_entity(self, t: EntityType) -> str:
        return (f"@dataclass\nclass {t.class_name}(Entity):\n{_docstring(t.description, t.label)}\n\n"
                f"{INDENT}span: str{_examples_comment(t.examples)}\n")

    def render_relation(self, t: RelationType) -> str:
        return (f"@dataclass\nclass {t.class_name}(Relation):\n{_docstring(t.description, t.label)}\n\n"
                f"{INDENT}arg1: str\n{INDENT}arg2: str\n")

    def render_event(self, t: EventType) -> str:
        lines = [f"@dataclass\nclass {t.class_name}(Event):\n{_docstring(t.description, t.label)}\n",
                 f"{INDENT}mention: str{_comment(MENTION_COMMENT)}"]
        lines.extend(f"{INDENT}{role.parameter}: List[str]{_comment(role.description)}" for role in t.roles)
        return "\n".join(lines) + "\n"

    def render_guidelines(self, schema: Schema) -> str:
        """Every class, separated by black's two blank lines, after GoLLIE's heading comment."""
        classes = [self.render_entity(t) for t in schema.entities]
        classes.extend(self.render_relation(t) for t in schema.relations)
        classes.extend(self.render_event(t) for t in schema.events)
        return GUIDELINES_COMMENT + "\n\n".join(classes)

    def _text_block(self, text: str) -> str:
        return f"\n\n{TEXT_COMMENT}text = {black_string(text)}\n\n{RESULT_COMMENT}{RESULT_PREFIX}"

    def render_prompt(self, schema: Schema, text: str,
                      solved: Optional[Sequence[Tuple[str, Sequence[Instance]]]] = None) -> str:
        """Guidelines, then each solved (text, answer) pair, then the text; ends at `result =`."""
        parts = [self.render_guidelines(schema)]
        for sentence, instances in solved or ():
            parts.append(self._text_block(sentence) + self.render_completion(schema, instances) + "\n")
        parts.append(self._text_block(text))
        return "".join(parts)

    def prompt_for(self, schema: Schema, text: str) -> Prompt:
        """Unconstrained: the shared grammar knows KnowCoder's call syntax, not GoLLIE's keyword fields."""
        # the answer opens its own `[`
        return Prompt(self.render_prompt(schema, text), None, None, answer_end="answer_opens")

    # ---- instances -> answer ----------------------------------------------------------------------
    @staticmethod
    def _call(name: str, args: List[str]) -> str:
        """One list item as black lays it out: on one line, else its arguments on one line, else one a line."""
        flat = f"{INDENT}{name}({', '.join(args)}),"
        if len(flat) <= LINE_LENGTH:
            return flat
        inner = INDENT * 2 + ", ".join(args)
        if len(args) == 1 or len(inner) <= LINE_LENGTH:
            return f"{INDENT}{name}(\n{inner}\n{INDENT}),"
        return f"{INDENT}{name}(\n" + "".join(f"{INDENT * 2}{a},\n" for a in args) + f"{INDENT}),"

    def render_instance(self, schema: Schema, instance: Instance) -> str:
        if isinstance(instance, EntityInstance):
            t = schema.entity_by_label(instance.label)
            if t is None:
                raise KeyError(f"entity label {instance.label!r} is not in the schema")
            return self._call(t.class_name, [f"span={black_string(instance.text)}"])
        if isinstance(instance, RelationInstance):
            r = next((r for r in schema.relations if r.label == instance.label), None)
            if r is None:
                raise KeyError(f"relation label {instance.label!r} is not in the schema")
            return self._call(r.class_name, [f"arg1={black_string(instance.head.text)}",
                                             f"arg2={black_string(instance.tail.text)}"])
        e = next((e for e in schema.events if e.label == instance.label), None)
        if e is None:
            raise KeyError(f"event label {instance.label!r} is not in the schema")
        values: Dict[str, List[str]] = {role.parameter: [] for role in e.roles}
        for role_name, mention in instance.arguments:
            role = next((r for r in e.roles if r.name == role_name), None)
            if role is None:
                raise KeyError(f"role {role_name!r} is not a role of event {instance.label!r}")
            values[role.parameter].append(black_string(mention.text))
        # GoLLIE writes every role, empty ones as [] (its dataclass repr shows all non-default fields).
        args = [f"mention={black_string(instance.trigger)}"]
        args.extend(f"{param}=[{', '.join(found)}]" for param, found in values.items())
        return self._call(e.class_name, args)

    def render_completion(self, schema: Schema, instances: Iterable[Instance]) -> str:
        """What follows `result =`: ` [`, one item a line with black's trailing commas, `]`."""
        items = [self.render_instance(schema, inst) for inst in instances]
        if not items:
            return " []"
        return " [\n" + "\n".join(items) + "\n]"

    def parser(self, schema: Schema) -> "GoLLIEParser":
        return GoLLIEParser(schema)


class GoLLIEParser:
    """Reads GoLLIE answers (`[Person(span="Ada"), Rel(arg1=..., arg2=...), Ev(mention=..., role=[...])]`)."""

    def __init__(self, schema: Schema):
        self.schema = schema

    def parse(self, completion: str) -> ParseResult:
        result = ParseResult()
        completion, clipped = clip(completion or "")
        if not completion.strip():
            result.empty = result.truncated = True
            return result
        found = _RESULT.search(completion)
        body = completion[found.end():] if found else completion
        body = body.lstrip()
        if not body.startswith("["):
            result.unparseable += 1
            result.truncated = clipped
            return result
        items, closed = split_items(body[1:])
        result.truncated = clipped or not closed
        for item in items:
            self._item(item, result)
        return result

    def _item(self, item: str, result: ParseResult) -> None:
        node = parse_expression(item) if len(item) <= MAX_LITERAL_CHARS else None
        if node is None:
            result.unparseable += 1
            return
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            result.unknown_class += 1
            return
        found = self.schema.type_for_class(node.func.id)
        fields = {k.arg: k.value for k in node.keywords if k.arg}
        if len(fields) != len(node.keywords):  # **kwargs
            result.bad_arguments += 1
            return
        if isinstance(found, EntityType):
            allowed_positional = 0 if "span" in fields else 1
            span = fields.pop("span", node.args[0] if len(node.args) == 1 else None)
            text = _string(span) if span is not None else None
            if text is None or fields or len(node.args) > allowed_positional:
                result.bad_arguments += 1
                return
            result.instances.append(EntityInstance(found.label, text))
        elif isinstance(found, RelationType):
            args = list(node.args)
            head, tail = fields.pop("arg1", None), fields.pop("arg2", None)
            if head is None and tail is None and len(args) == 2:
                head, tail = args
                args = []
            head_text = _string(head) if head is not None else None
            tail_text = _string(tail) if tail is not None else None
            if head_text is None or tail_text is None or args or fields:
                result.bad_arguments += 1
                return
            result.instances.append(RelationInstance(found.label, Mention(head_text, _single(found.head)),
                                                     Mention(tail_text, _single(found.tail))))
        elif isinstance(found, EventType):
            self._event(node, found, fields, result)
        else:
            result.unknown_class += 1

    @staticmethod
    def _event(node: ast.Call, etype: EventType, fields: Dict[str, ast.expr], result: ParseResult) -> None:
        allowed_positional = 0 if "mention" in fields else 1
        trigger_node = fields.pop("mention", node.args[0] if len(node.args) == 1 else None)
        trigger = _string(trigger_node) if trigger_node is not None else None
        if trigger is None or len(node.args) > allowed_positional:
            result.bad_arguments += 1
            return
        arguments: List[Tuple[str, Mention]] = []
        for name, value in fields.items():
            role = etype.role_by_parameter(name)
            if role is None:
                result.unknown_role += 1
                continue
            values = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            for element in values:
                if isinstance(element, ast.Constant) and element.value is None:
                    continue  # GoLLIE's Optional fields default to None
                text = _string(element)
                if text is None:
                    result.bad_arguments += 1
                else:
                    arguments.append((role.name, Mention(text, _single(role.types))))
        result.instances.append(EventInstance(etype.label, trigger, tuple(arguments)))


def _single(allowed: Tuple[str, ...]) -> Optional[str]:
    """The entity label an argument must have when its type admits exactly one, else None (unknown)."""
    return allowed[0] if len(allowed) == 1 and allowed[0] != ANY_ENTITY else None


def _string(node: Optional[ast.AST]) -> Optional[str]:
    """A string constant, or GoLLIE's `Name("...")`/`Value("...")`/`String("...")` wrapper of one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _STRING_WRAPPERS
            and len(node.args) == 1 and not node.keywords):
        return _string(node.args[0])
    return None


@registry.misc("spacy_codeie.GoLLIEPrompt.v1")
def make_gollie_prompt() -> GoLLIEPrompt:
    """GoLLIE's guideline classes and `result =` answers, for the released HiTZ/GoLLIE checkpoints."""
    return GoLLIEPrompt()
