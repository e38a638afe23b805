"""YAYI-UIE's instructions: one task per prompt, in Chinese or English, answers as JSON-like literals.

YAYI-UIE (wenge-research/yayi-uie, a Baichuan2-13B fine-tune) is prompted with the text first and a task
instruction after it, wrapped in Baichuan2's reserved chat tokens (`<reserved_13>` user, `<reserved_14>`
assistant). The instructions are those of its README (wenge-research/YAYI-UIE, README.md and README_EN.md):

- NER: `json{person/organization/location：[entities]}` -> `{"person": ["Ada"], ...}`
- RE: `json[{'relation':'', 'head':'', 'tail':''}, ]` -> `[{"relation": "...", "head": "...", "tail": "..."}]`
- EE: `json{role:name}` over a role list -> `{"buyer": "Acme", ...}`; YAYI's event answers name no trigger,
  so the events read back have an empty trigger and land on the Doc with `trigger=None` (see docs/styles.md).

Labels are shown as readable names (`WORKS_FOR` -> `works for`, or the `label_names` given). Answers are read
with `json`, then `ast.literal_eval` for Python-quoted dicts; neither evaluates anything.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, ClassVar, Dict, Iterable, List, Literal, Optional, Sequence, Tuple

from spacy.util import registry

from ..errors import SchemaError
from ..instances import EntityInstance, EventInstance, Instance, Mention, ParseResult, RelationInstance
from ..schema.types import ANY_ENTITY, Schema
from ._untrusted import clip, label_names, read_literal, readable_label
from .prompt import Prompt

Language = Literal["zh", "en", "auto"]
USER, ASSISTANT = "<reserved_13>", "<reserved_14>"
# The text line of the README's inference examples ("Text: ..." / "文本:..."), then the instruction.
TEXT_PREFIX = {"en": "Text: ", "zh": "文本:"}
INSTRUCTIONS = {
    "en": {
        "ner": ("From the given text, extract all the entities and types. Please format the answer in json "
                "{{{names}：[entities]}}."),
        "re": ("From the given text, extract the possible head entities (subjects) and tail entities (objects) and "
               "give the corresponding relation triples.The relations are [{names}]. Output the result in "
               "json[{{'relation':'', 'head':'', 'tail':''}}, ]."),
        "ee": ("Given the text and the role list [{names}], identify event arguments and roles, provide your "
               "answer in the format of json{{role:name}}."),
    },
    "zh": {
        "ner": "抽取文本中可能存在的实体，并以json{{{names}：[实体]}}格式输出。",
        "re": ("已知关系列表是[{names}]。根据关系列表抽取关系三元组，"
               "按照json[{{'relation':'', 'head':'', 'tail':''}}, ]的格式输出。"),
        "ee": ("已知论元角色列表是[{names}]，"
               "请根据论元角色列表从给定的输入中抽取可能的论元，以json{{角色:论元}}格式输出。"),
    },
}
# How each template joins the names, as the README writes them.
SEPARATORS = {"en": {"ner": "/", "re": ",", "ee": ", "}, "zh": {"ner": "/", "re": ",", "ee": "，"}}
# Keys of a relation dict: YAYI's English keys, and the Chinese ones of its second zh RE template.
_HEAD_KEYS = ("head", "头实体", "subject")
_TAIL_KEYS = ("tail", "尾实体", "object")
_RELATION_KEYS = ("relation", "关系", "predicate")
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)(?:```|\Z)", re.S)

Task = Literal["ner", "re", "ee"]


def is_mostly_cjk(text: str) -> bool:
    """True when most letters of `text` are Han, kana or hangul (so YAYI's Chinese instructions fit it)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    cjk = sum(1 for ch in letters if unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")))
    return cjk * 2 > len(letters)


class YAYIPrompt:
    """YAYI-UIE's per-task instructions and the readers of its JSON-like answers."""

    registry_name: ClassVar[str] = "spacy_codeie.YAYIPrompt.v1"
    tasks: ClassVar[Literal["joint", "per_task"]] = "per_task"
    # Its event answers name no trigger, so gold events without one can be written as answers (gold.py).
    event_triggers: ClassVar[bool] = False

    def __init__(self, language: Language = "auto", label_names: Optional[Dict[str, str]] = None,
                 chat_tokens: bool = True):
        if language not in ("zh", "en", "auto"):
            raise SchemaError(f"YAYIPrompt language must be 'zh', 'en' or 'auto', not {language!r}.")
        self.language = language
        self.label_names = dict(label_names or {})
        self.chat_tokens = chat_tokens

    def language_for(self, text: str) -> Literal["zh", "en"]:
        if self.language != "auto":
            return self.language
        return "zh" if is_mostly_cjk(text) else "en"

    @staticmethod
    def task_of(schema: Schema) -> Task:
        """The one task a schema (group) asks: relations, else events, else entities."""
        if schema.relations and schema.events:
            raise SchemaError(
                "YAYI-UIE answers one task per prompt, but this schema has both relations and events. Let the "
                "component split the schema by task (the style declares tasks='per_task'), or pass one task's types."
            )
        return "re" if schema.relations else "ee" if schema.events else "ner"

    def names(self, schema: Schema, task: Task) -> Dict[Any, str]:
        """What the instruction lists -> its name: entity or relation labels, or (event label, role) pairs.

        Roles are shown bare when the schema has one event type; with several, as `<event> <role>` (YAYI's
        README recommends such fine-grained roles, e.g. 会见地点 rather than 地点), since its answers name
        only roles.
        """
        if task == "ner":
            return label_names([t.label for t in schema.entities], self.label_names, "entity type")
        if task == "re":
            return label_names([t.label for t in schema.relations], self.label_names, "relation")
        keys = [(e.label, r.name) for e in schema.events for r in e.roles]
        if not keys:
            raise SchemaError("YAYI-UIE extracts events as role lists, but no event type of this schema has a role. "
                              "Give the event types roles, or use another prompt style for trigger-only events.")
        shown = {}
        for event, role in keys:
            override = self.label_names.get(f"{event}/{role}")
            if override:
                shown[f"{event}/{role}"] = override
            elif len(schema.events) == 1:
                shown[f"{event}/{role}"] = _readable(role, self.label_names)
            else:
                event_name, role_name = _readable(event, self.label_names), _readable(role, self.label_names)
                joiner = "" if is_mostly_cjk(event_name + role_name) else " "
                shown[f"{event}/{role}"] = event_name + joiner + role_name
        by_key = label_names(list(shown), shown, "event role")
        return {key: by_key[f"{key[0]}/{key[1]}"] for key in keys}

    def render_query(self, schema: Schema, text: str) -> str:
        """The user message: the text line, then the task's instruction."""
        language = self.language_for(text)
        task = self.task_of(schema)
        names = SEPARATORS[language][task].join(self.names(schema, task).values())
        return TEXT_PREFIX[language] + text + "\n" + INSTRUCTIONS[language][task].format(names=names)

    def render_prompt(self, schema: Schema, text: str,
                      solved: Optional[Sequence[Tuple[str, Sequence[Instance]]]] = None) -> str:
        """`<reserved_13>{query}<reserved_14>`; solved (text, instances) pairs come first as earlier turns."""
        parts = []
        for sentence, instances in solved or ():
            parts.append(self._turn(self.render_query(schema, sentence)) + self.render_completion(schema, instances))
        parts.append(self._turn(self.render_query(schema, text)))
        return "".join(parts)

    def _turn(self, query: str) -> str:
        return f"{USER}{query}{ASSISTANT}" if self.chat_tokens else query

    def prompt_for(self, schema: Schema, text: str) -> Prompt:
        # JSON: the answer opens its own `{` or `[`
        return Prompt(self.render_prompt(schema, text), None, None, answer_end="answer_opens")

    def render_completion(self, schema: Schema, instances: Iterable[Instance]) -> str:
        """The answer as JSON (double quotes, CJK kept readable); instances of other tasks are left out."""
        import json

        task = self.task_of(schema)
        names = self.names(schema, task)
        instances = list(instances)
        if task == "ner":
            found: Dict[str, List[str]] = {}
            for inst in instances:
                if isinstance(inst, EntityInstance):
                    found.setdefault(_name(names, inst.label), []).append(inst.text)
            return json.dumps(found, ensure_ascii=False)
        if task == "re":
            rows = [{"relation": _name(names, inst.label), "head": inst.head.text, "tail": inst.tail.text}
                    for inst in instances if isinstance(inst, RelationInstance)]
            return json.dumps(rows, ensure_ascii=False)
        events = []
        for inst in instances:
            if not isinstance(inst, EventInstance):
                continue
            grouped: Dict[str, List[str]] = {}
            for role, mention in inst.arguments:
                grouped.setdefault(_name(names, (inst.label, role)), []).append(mention.text)
            # one argument as a string ({role:name}, as the instruction asks), several as a list
            events.append({key: texts[0] if len(texts) == 1 else texts for key, texts in grouped.items()})
        return json.dumps(events[0] if len(events) == 1 else events, ensure_ascii=False)

    def parser(self, schema: Schema) -> "YAYIParser":
        task = self.task_of(schema)
        return YAYIParser(schema, task, self.names(schema, task))


def _readable(label: str, overrides: Dict[str, str]) -> str:
    return overrides.get(label, readable_label(label))


def _name(names: Dict[Any, str], key: Any) -> str:
    try:
        return names[key]
    except KeyError:
        raise KeyError(f"{key!r} is not in the schema") from None


def ascii_punctuation(text: str) -> str:
    """Full-width `：` and `，` outside quoted strings made ASCII: YAYI's own Chinese instructions write
    `{人物/机构/地点：[实体]}`, so an answer may copy the full-width colon; quoted mentions are left as they are."""
    out, quote, escaped = [], None, False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "：，":
            ch = ":" if ch == "：" else ","
        out.append(ch)
    return "".join(out)


def answer_literal(completion: str) -> Tuple[Optional[Any], bool]:
    """The JSON/Python literal in an answer (inside a code fence, after `json`, or alone), and whether its
    brackets were left open (a cut-off answer). Nothing is evaluated."""
    text = completion.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    if "：" in text or "，" in text:
        text = ascii_punctuation(text)
    value = read_literal(text)
    if value is not None:
        return value, False
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None, False
    start = min(starts)
    close = "}" if text[start] == "{" else "]"
    end = text.rfind(close)
    if end > start:
        value = read_literal(text[start:end + 1])
        if value is not None:
            return value, False
    return None, _open_brackets(text[start:])


def _open_brackets(text: str) -> bool:
    """Whether a bracket opened in `text` is never closed (string-aware, bounded by the clipped size)."""
    depth, quote, escaped = 0, None, False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth > 0 or quote is not None


class YAYIParser:
    """Reads one task's answer, mapping names (or labels, case-insensitively) back to the schema's labels."""

    def __init__(self, schema: Schema, task: Task, names: Dict[Any, str]):
        self.schema = schema
        self.task = task
        self.by_name: Dict[str, Any] = {}
        for key, name in names.items():
            self.by_name[name.casefold()] = key
        for key in names:
            label = key if isinstance(key, str) else key[1]
            self.by_name.setdefault(label.casefold(), key)

    def _key(self, name: Any) -> Optional[Any]:
        if not isinstance(name, str):
            return None
        return self.by_name.get(" ".join(name.split()).casefold())

    def parse(self, completion: str) -> ParseResult:
        result = ParseResult()
        completion, clipped = clip(completion or "")
        if not completion.strip():
            result.empty = result.truncated = True
            return result
        value, cut = answer_literal(completion)
        result.truncated = clipped or cut
        if value is None:
            if not _says_nothing(completion):
                result.unparseable += 1
            return result
        if self.task == "ner":
            self._entities(value, result)
        elif self.task == "re":
            self._relations(value, result)
        else:
            self._events(value, result)
        return result

    @staticmethod
    def _strings(value: Any) -> Optional[List[str]]:
        """A mention or a list of mentions as strings; None for any other shape."""
        if isinstance(value, str):
            return [value] if value.strip() else []
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return [v for v in value if v.strip()]
        return None

    def _entities(self, value: Any, result: ParseResult) -> None:
        if not isinstance(value, dict):
            result.bad_arguments += 1
            return
        for name, mentions in value.items():
            label = self._key(name)
            texts = self._strings(mentions)
            if label is None:
                result.unknown_class += 1
            elif texts is None:
                result.bad_arguments += 1
            else:
                result.instances.extend(EntityInstance(label, t) for t in texts)

    def _relations(self, value: Any, result: ParseResult) -> None:
        rows = [value] if isinstance(value, dict) else value
        if not isinstance(rows, (list, tuple)):
            result.bad_arguments += 1
            return
        relations = {r.label: r for r in self.schema.relations}
        for row in rows:
            if not isinstance(row, dict):
                result.bad_arguments += 1
                continue
            name, head, tail = (_first(row, keys) for keys in (_RELATION_KEYS, _HEAD_KEYS, _TAIL_KEYS))
            if not all(isinstance(v, str) for v in (name, head, tail)):
                result.bad_arguments += 1
                continue
            if not name and not head and not tail:
                continue  # the template's own empty row
            label = self._key(name)
            if label is None:
                result.unknown_class += 1
                continue
            if not head.strip() or not tail.strip():
                result.bad_arguments += 1
                continue
            rtype = relations[label]
            result.instances.append(RelationInstance(label, Mention(head, _single(rtype.head)),
                                                     Mention(tail, _single(rtype.tail))))

    def _events(self, value: Any, result: ParseResult) -> None:
        answers = [value] if isinstance(value, dict) else value
        if not isinstance(answers, (list, tuple)):
            result.bad_arguments += 1
            return
        types = {e.label: e for e in self.schema.events}
        for answer in answers:
            if not isinstance(answer, dict):
                result.bad_arguments += 1
                continue
            found: Dict[str, List[Tuple[str, Mention]]] = {}
            for name, mentions in answer.items():
                key = self._key(name)
                texts = self._strings(mentions)
                if key is None:
                    result.unknown_role += 1
                elif texts is None:
                    result.bad_arguments += 1
                else:
                    event, role_name = key
                    role = next(r for r in types[event].roles if r.name == role_name)
                    found.setdefault(event, []).extend((role_name, Mention(t, _single(role.types))) for t in texts)
            for event, arguments in found.items():
                if arguments:
                    result.instances.append(EventInstance(event, "", tuple(arguments)))


def _first(row: Dict[Any, Any], keys: Tuple[str, ...]) -> Any:
    for key in keys:
        if key in row:
            return row[key]
    return None


def _says_nothing(completion: str) -> bool:
    lowered = completion.strip().lower()
    return lowered in ("", "无", "没有", "none", "null", "na", "n/a") or lowered.startswith(("无", "没有", "no "))


def _single(allowed: Tuple[str, ...]) -> Optional[str]:
    return allowed[0] if len(allowed) == 1 and allowed[0] != ANY_ENTITY else None


@registry.misc("spacy_codeie.YAYIPrompt.v1")
def make_yayi_prompt(language: Language = "auto", label_names: Optional[Dict[str, str]] = None,
                     chat_tokens: bool = True) -> YAYIPrompt:
    """YAYI-UIE's instructions (zh or en; 'auto' picks zh for mostly-CJK text) for wenge-research/yayi-uie."""
    return YAYIPrompt(language=language, label_names=label_names, chat_tokens=chat_tokens)
