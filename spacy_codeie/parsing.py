"""Generated code -> typed instances. The text is untrusted: it is read with `ast` and never run.

A completion continues `results = [`. Raw-text models often restate the list (`results = [...]`, a fenced
code block) or run on into an invented next turn, so the answer is found in this order: the completion's own
continuation, up to where its list closes; else, where the completion restates the list before writing any
item, the restated list. The list body is split into its top-level items by a string-aware scanner, and each
item is parsed on its own, so every complete instance of a cut-off or partly broken list is recovered.
A string cannot run past the end of its line (code models write one-line strings): a quote left open breaks
only the item it is in, and scanning starts afresh on the next line.
"""
from __future__ import annotations

import ast
import re
import warnings
from typing import List, Optional, Tuple

from .instances import EntityInstance, EventInstance, Mention, ParseResult, RelationInstance
from .schema.types import ANY_ENTITY, EntityType, EventType, RelationType, Schema

# Where a completion starts the list over: a code fence (opening or closing) or `results = [`.
_OPENER = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*(?:\n|\Z)|\bresults[ \t]*=[ \t]*\[", re.I)
_BARE_LIST = re.compile(r"\s*\[")
# A complete item: a call, `Name(...)`. Text before a restated list that holds one is the answer itself.
_CALL_ITEM = re.compile(r"[^\W\d]\w*\s*\(.*\)\Z", re.S)
# The characters that change the scanner's state; everything between them is skipped in one step.
_OUTSIDE = re.compile(r"[\"'()\[\]{},\n]")
_INSIDE = {'"': re.compile(r'["\\\n]'), "'": re.compile(r"['\\\n]")}
# Items longer than this are not instances a model could mean; parsing them only costs time.
MAX_ITEM_CHARS = 20_000

SEPARATOR = "separator"  # a comma or line break between items
CLOSE = "close"  # the bracket that closes the list
BROKEN = "broken"  # a line break inside a string: the item it is in is broken


class ListScanner:
    """Tracks bracket depth and string state over a stream of text.

    One scanner decides both where the list closes (backends feed it token by token to stop generation) and
    where its items start and end (the parser), so the two never disagree. Depth starts at 1: the caller is
    already inside `results = [`.
    """

    def __init__(self, depth: int = 1) -> None:
        self.depth = depth  # 0: the list is yet to be opened by the text scanned (an answer that writes `[`)
        self.quote: Optional[str] = None
        self.escaped = False
        self.closed = False

    def step(self, text: str, i: int = 0, end: Optional[int] = None) -> Tuple[int, Optional[str]]:
        """Scan `text[i:end]` to the next event; return the position just past it and the event (None at `end`)."""
        end = len(text) if end is None else end
        while i < end and not self.closed:
            if self.escaped:
                self.escaped = False
                i += 1
                continue
            if self.quote:
                match = _INSIDE[self.quote].search(text, i, end)
                if match is None:
                    return end, None
                i = match.end()
                ch = match.group()
                if ch == "\\":
                    self.escaped = True
                elif ch == "\n":  # a one-line string left open: drop what it was in, start afresh
                    self.quote = None
                    self.depth = 1
                    return i, BROKEN
                else:
                    self.quote = None
                continue
            match = _OUTSIDE.search(text, i, end)
            if match is None:
                return end, None
            i = match.end()
            ch = match.group()
            if ch in "\"'":
                self.quote = ch
            elif ch in "([{":
                self.depth += 1
            elif ch in ")]}":
                self.depth -= 1
                if self.depth == 0:
                    self.closed = True
                    return i, CLOSE
            elif self.depth == 1:
                return i, SEPARATOR
        return i, None

    def feed_text(self, text: str) -> Optional[int]:
        """Consume `text`; return the index just past the bracket that closes the list, if it is in `text`."""
        i = 0
        while not self.closed:
            i, event = self.step(text, i)
            if event is None:
                return None
            if event == CLOSE:
                return i
        return None

    def feed(self, ch: str) -> None:
        self.feed_text(ch)


def split_items(body: str) -> Tuple[List[str], bool]:
    """Top-level items of a list body, and whether the list was closed."""
    scanner = ListScanner()
    items: List[str] = []
    start = i = 0
    while True:
        i, event = scanner.step(body, i)
        if event is None:
            items.append(body[start:])
            break
        items.append(body[start:i - 1])  # without the separator, line break or closing bracket
        start = i
        if event == CLOSE:
            break
    return [item.strip() for item in items if item.strip()], scanner.closed


def _holds_an_item(text: str) -> bool:
    return any(_CALL_ITEM.match(item) for item in split_items(text)[0])


def _first_opener(text: str, pos: int) -> Optional["re.Match[str]"]:
    """The first place after `pos` where the text starts the list over, unless the list continued from `pos`
    closes before it. Openers inside strings do not count."""
    scanner = ListScanner()
    i = pos
    for match in _OPENER.finditer(text, pos):
        while i < match.start():
            i, event = scanner.step(text, i, match.start())
            if event == CLOSE:
                return None
            if event is None:
                break
        if scanner.quote is None and not scanner.escaped:
            return match
    return None


def list_body(completion: str) -> str:
    """The text that continues the results list: the completion's own continuation if it holds an item or
    closes the list before any restatement, else the list it restates (`results = [`, a fence, a bare `[`)."""
    pos = 0
    while True:
        bare = _BARE_LIST.match(completion, pos)
        if bare:
            pos = bare.end()
            continue
        opener = _first_opener(completion, pos)
        if opener is None:
            return completion[pos:]
        if _holds_an_item(completion[pos:opener.start()]):
            return completion[pos:opener.start()]
        pos = opener.end()


def _string(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _expression(item: str) -> Optional[ast.expr]:
    """The item as an expression tree, or None when it is not one.

    CPython 3.11 can raise a spurious SystemError ("AST constructor recursion depth mismatch") from its own
    bookkeeping while parsing a perfectly good item; it was seen once in 50,000 items. The item is parsed once
    more before it is counted as unparseable, so a well-formed answer is not dropped.
    """
    for attempt in range(2):
        try:
            return ast.parse(item, mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        except SystemError:
            if attempt:
                return None
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
        with warnings.catch_warnings():  # "invalid decimal literal" and the like: model output, not user code
            warnings.simplefilter("ignore", SyntaxWarning)
            for item in items:
                self._parse_item(item, result)
        return result

    # ---- one item --------------------------------------------------------------------------
    def _parse_item(self, item: str, result: ParseResult) -> None:
        if len(item) > MAX_ITEM_CHARS:
            result.unparseable += 1
            return
        node = _expression(item)
        if node is None:
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
