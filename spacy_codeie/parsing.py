"""Generated code -> typed instances. The text is untrusted: it is read with `ast` and never run.

The parser accepts the continuation after `results = [`, a whole `results = [...]` statement, or a fenced
code block, and recovers every complete instance from a cut-off or partly broken list: the list body is split
into its top-level items by a small string-aware scanner, and each item is parsed on its own.
"""
from __future__ import annotations

import ast
import re
from typing import List, Optional, Tuple

from .instances import EntityInstance, EventInstance, Mention, ParseResult, RelationInstance
from .schema.types import ANY_ENTITY, EntityType, EventType, RelationType, Schema

_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)
_RESULTS = re.compile(r"\bresults\s*=\s*\[")
# Items longer than this are not instances a model could mean; parsing them only costs time.
MAX_ITEM_CHARS = 20_000


class ListScanner:
    """Tracks bracket depth and string state over a stream of characters.

    Used both to split a completion into items and, fed token by token, to stop generation as soon as the
    list closes. Depth starts at 1: the caller is already inside `results = [`.
    """

    def __init__(self) -> None:
        self.depth = 1
        self.quote: Optional[str] = None
        self.escaped = False
        self.closed = False

    def feed(self, ch: str) -> None:
        if self.closed:
            return
        if self.quote:
            if self.escaped:
                self.escaped = False
            elif ch == "\\":
                self.escaped = True
            elif ch == self.quote or ch == "\n":  # a newline ends a broken single-line string
                self.quote = None
        elif ch in "\"'":
            self.quote = ch
        elif ch in "([{":
            self.depth += 1
        elif ch in ")]}":
            self.depth -= 1
            if self.depth == 0:
                self.closed = True

    def feed_text(self, text: str) -> None:
        for ch in text:
            self.feed(ch)
            if self.closed:
                return


def list_body(completion: str) -> str:
    """The text after the opening bracket of the results list (or the whole text if there is none)."""
    fenced = _FENCE.search(completion)
    if fenced:
        completion = fenced.group(1)
    match = _RESULTS.search(completion)
    if match:
        return completion[match.end():]
    stripped = completion.lstrip()
    if stripped.startswith("[") and not stripped.startswith("[]"):
        return stripped[1:]
    if stripped.startswith("[]"):
        return "]"
    return completion


def split_items(body: str) -> Tuple[List[str], bool]:
    """Top-level items of a list body, and whether the list was closed."""
    items: List[str] = []
    scanner = ListScanner()
    current: List[str] = []
    for ch in body:
        at_top = scanner.depth == 1 and scanner.quote is None
        if at_top and ch in ",\n":
            items.append("".join(current))
            current = []
            continue
        scanner.feed(ch)
        if scanner.closed:
            break
        current.append(ch)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()], scanner.closed


def _string(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class CodeParser:
    """Turns completions into instances of one schema, counting what it has to drop."""

    def __init__(self, schema: Schema):
        self.schema = schema

    def parse(self, completion: str) -> ParseResult:
        result = ParseResult()
        if not completion or not completion.strip():
            result.empty = True
            result.truncated = True
            return result
        items, closed = split_items(list_body(completion))
        result.truncated = not closed
        if not items and closed:
            return result
        for item in items:
            self._parse_item(item, result)
        return result

    # ---- one item --------------------------------------------------------------------------
    def _parse_item(self, item: str, result: ParseResult) -> None:
        if len(item) > MAX_ITEM_CHARS:
            result.unparseable += 1
            return
        try:
            node = ast.parse(item, mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            result.unparseable += 1
            return
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            result.unknown_class += 1
            return
        found = self.schema.type_for_class(node.func.id)
        if isinstance(found, EntityType):
            mention = self._mention(node)
            if mention is None:
                result.bad_arguments += 1
            else:
                result.instances.append(EntityInstance(found.label, mention))
        elif isinstance(found, RelationType):
            self._relation(node, found, result)
        elif isinstance(found, EventType):
            self._event(node, found, result)
        else:
            result.unknown_class += 1

    @staticmethod
    def _mention(call: ast.Call) -> Optional[str]:
        """The string of `Cls("text")` or `Cls(name="text")`."""
        if len(call.args) == 1 and not call.keywords:
            return _string(call.args[0])
        if not call.args and len(call.keywords) == 1 and call.keywords[0].arg in ("name", "text", "mention"):
            return _string(call.keywords[0].value)
        return None

    def _argument(self, node: ast.AST, allowed: Tuple[str, ...]) -> Optional[Mention]:
        """An argument written `Org("x")`, `Entity("x")` or a bare string, checked against the allowed types."""
        text = _string(node)
        if text is not None:
            return Mention(text, allowed[0] if len(allowed) == 1 and allowed[0] != ANY_ENTITY else None)
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            return None
        name = node.func.id
        if name == ANY_ENTITY:
            label = allowed[0] if len(allowed) == 1 and allowed[0] != ANY_ENTITY else None
        else:
            label = self.schema.entity_label_for_class(name)
            if label is None or (ANY_ENTITY not in allowed and label not in allowed):
                return None
        text = self._mention(node)
        return Mention(text, label) if text is not None else None

    def _relation(self, call: ast.Call, rtype: RelationType, result: ParseResult) -> None:
        args = list(call.args)
        keywords = {k.arg: k.value for k in call.keywords}
        for key in ("head_entity", "head"):
            if key in keywords:
                args.insert(0, keywords.pop(key))
        for key in ("tail_entity", "tail"):
            if key in keywords:
                args.append(keywords.pop(key))
        if len(args) != 2 or keywords:
            result.bad_arguments += 1
            return
        head = self._argument(args[0], rtype.head)
        tail = self._argument(args[1], rtype.tail)
        if head is None or tail is None:
            result.bad_arguments += 1
            return
        result.instances.append(RelationInstance(rtype.label, head, tail))

    def _event(self, call: ast.Call, etype: EventType, result: ParseResult) -> None:
        keywords = list(call.keywords)
        trigger_node = next((k.value for k in keywords if k.arg == "trigger"), None)
        if trigger_node is None and call.args:
            trigger_node = call.args[0]
        trigger = _string(trigger_node) if trigger_node is not None else None
        if trigger is None or len(call.args) > (0 if any(k.arg == "trigger" for k in keywords) else 1):
            result.bad_arguments += 1
            return
        arguments = []
        for keyword in keywords:
            if keyword.arg == "trigger":
                continue
            role = etype.role_by_parameter(keyword.arg) if keyword.arg else None
            if role is None:
                result.unknown_role += 1
                continue
            values = keyword.value.elts if isinstance(keyword.value, (ast.List, ast.Tuple)) else [keyword.value]
            for value in values:
                mention = self._argument(value, role.types)
                if mention is None:
                    result.bad_arguments += 1
                else:
                    arguments.append((role.name, mention))
        result.instances.append(EventInstance(etype.label, trigger, tuple(arguments)))
