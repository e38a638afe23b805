"""Reading answers of other IE systems' checkpoints: untrusted text, read as data and never run.

The answers of YAYI-UIE (JSON or Python-literal dicts) and GoLLIE (Python calls) look like code; they are read
with `json` and `ast` only, which build values and syntax trees but never execute anything. Sizes are bounded
first, so a runaway or hostile answer costs a bounded amount of time and memory.
"""
from __future__ import annotations

import ast
import json
import re
from typing import Any, Dict, Iterable, Optional, Tuple

from ..errors import SchemaError

# No extraction answer for one window is this long; beyond it the rest is dropped and the result is `truncated`.
MAX_COMPLETION_CHARS = 100_000
# One literal (a dict, a list of relation dicts) or one instance call longer than this is not read at all.
MAX_LITERAL_CHARS = 20_000

_READ_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, OverflowError)


def clip(completion: str) -> Tuple[str, bool]:
    """The completion cut to MAX_COMPLETION_CHARS, and whether it was cut."""
    if len(completion) > MAX_COMPLETION_CHARS:
        return completion[:MAX_COMPLETION_CHARS], True
    return completion, False


def read_literal(text: str) -> Optional[Any]:
    """The value of a JSON or Python literal (either quote style), or None when it is not one.

    `json.loads` first (the format the systems ask for), then `ast.literal_eval`, which accepts only literals
    (strings, numbers, lists, dicts, ...) and rejects calls, names and attributes: nothing is evaluated.
    """
    if len(text) > MAX_LITERAL_CHARS:
        return None
    try:
        return json.loads(text)
    except _READ_ERRORS:
        pass
    try:
        return ast.literal_eval(text.strip())
    except _READ_ERRORS:
        return None


def parse_expression(text: str) -> Optional[ast.expr]:
    """The syntax tree of one Python expression (never compiled or run), or None when it is not one."""
    if len(text) > MAX_LITERAL_CHARS:
        return None
    try:
        return ast.parse(text, mode="eval").body
    except _READ_ERRORS:
        return None


def readable_label(label: str) -> str:
    """The name a label goes by in an instruction: 'WORKS_FOR' -> 'works for'; other labels stay as they are.

    Instruction-tuned checkpoints were trained on natural type names ("person", "place of birth"); only
    all-capitals ASCII labels (the spaCy convention) are rewritten, so mixed-case or CJK names the user chose
    are kept.
    """
    if label.isascii() and label.upper() == label and any(c.isalpha() for c in label):
        return " ".join(p for p in re.split(r"[_\-\s]+", label.lower()) if p)
    return label


def label_names(labels: Iterable[str], overrides: Optional[Dict[str, str]], kind: str) -> Dict[str, str]:
    """label -> the name the prompt shows (user overrides first); two labels may not share a name, since the
    answer names the type and could not be read back to one label."""
    overrides = overrides or {}
    names: Dict[str, str] = {}
    seen: Dict[str, str] = {}
    for label in labels:
        name = " ".join(str(overrides.get(label, readable_label(label))).split())
        if not name:
            raise SchemaError(f"The {kind} {label!r} has an empty display name. Give it a name in `label_names`.")
        key = name.casefold()
        if key in seen:
            raise SchemaError(
                f"The {kind}s {seen[key]!r} and {label!r} are both shown as {name!r}, so an answer could not tell "
                f"them apart. Give one of them another name in the style's `label_names` setting."
            )
        seen[key] = label
        names[label] = name
    return names
