"""Constrained decoding: the model can only write a valid `results = [...]` list for the classes in its prompt.

Every step, each row's next token is limited to tokens that keep the completion a prefix of

    list    := ws* ( item ( ws* "," ws* item )* ws* ","? )? ws* "]"
    item    := Entity "(" mention ")"
             | Relation "(" ent "," " "? ent ")"
             | Event "(trigger=" mention ( "," " "? role "=[" ( ent ( "," " "? ent )* )? "]" )* ")"
    ent     := EntityClass "(" mention ")"      (a class the relation's or role's type hint admits, or Entity)
    mention := '"' a non-empty substring of the sentence, as written in the prompt's literal '"'

with class names read from the prompt's class definitions, roles from the event's `__init__` (each role at
most once per event), and argument classes from the type hints of the relation's or the role's parameter.
The grammar is a byte automaton (a suffix automaton of the sentence for mentions); the allowed tokens of a
state are found by walking the sorted vocabulary byte by byte alongside the automaton, and cached per state.
It plugs into transformers as a LogitsProcessor.

Limits: a list cut by `max_new_tokens` stays unclosed (the parser reads it as truncated); escapes inside a
mention follow the sentence literal's own escapes.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, FrozenSet, List, Optional, Sequence, Set, Tuple

MAX_WS = 4  # whitespace bytes in a row between items: enough for "\n\t", never an endless run
_WS = frozenset(b" \t\n")
_QUOTE, _BACKSLASH, _SPACE = ord('"'), ord("\\"), ord(" ")

_CLASS = re.compile(r"^class (\w+)\((Entity|Relation|Event)\):\n", re.M)
_ROLE = re.compile(r"^\t\t(\w+): List\[(.*?)\] = \[\],", re.M)
_RELATION_HINTS = re.compile(r"def __init__\(self, head_entity: (.*?), tail_entity: (.*?)\):")
_SENTENCE = re.compile(r'^sentence = "(.*)"$', re.M)


# ---- what the prompt allows --------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptClasses:
    """What a prompt's class definitions allow (names as UTF-8): entity classes; relations with the classes
    their head and tail take; events with their role parameters and the classes each role takes."""

    entities: FrozenSet[bytes]
    relations: Tuple[Tuple[bytes, FrozenSet[bytes], FrozenSet[bytes]], ...]
    events: Tuple[Tuple[bytes, Tuple[Tuple[bytes, FrozenSet[bytes]], ...]], ...]
    # How a style writes its answers, where it differs from KnowCoderPrompt.v1's `results = [` continuation:
    opening: bytes = b""  # what the answer writes before its first item (KnowCoder's released format: b"results = [")
    keyword_sep: bytes = b"="  # between a keyword and its value (b" = " in KnowCoder's released format)
    trigger_only: bool = False  # events are written `Type("trigger")` (KnowCoder's event-detection stage)
    items: Optional[FrozenSet[bytes]] = None  # the classes an item may be, when not every class (one task)
    ascii_case: bool = False  # mentions may differ from the sentence in ASCII case (KnowCoder's "school" for "School")

    @property
    def top_level(self) -> FrozenSet[bytes]:
        """Classes an item may instantiate: the base `Entity` only types arguments, never an item."""
        if self.items is not None:
            return self.items
        return (self.entities - {ANY}) | self.relation_names | frozenset(name for name, _ in self.events)

    @property
    def relation_names(self) -> FrozenSet[bytes]:
        return frozenset(name for name, _, _ in self.relations)

    def relation_arguments(self, relation: bytes) -> Tuple[FrozenSet[bytes], FrozenSet[bytes]]:
        for name, head, tail in self.relations:
            if name == relation:
                return head, tail
        return self.entities, self.entities

    def roles(self, event: bytes) -> Tuple[bytes, ...]:
        return tuple(role for role, _ in dict(self.events).get(event, ()))

    def role_classes(self, event: bytes, role: bytes) -> FrozenSet[bytes]:
        return dict(dict(self.events).get(event, ())).get(role, self.entities)


ANY = b"Entity"


def _argument_classes(hint: Optional[str], entities: FrozenSet[bytes]) -> FrozenSet[bytes]:
    """The entity classes a type hint (`Org`, `Union[Org, Person]`, `Entity`) admits; `Entity(...)` always."""
    if not hint:
        return entities
    inner = hint[len("Union["):-1] if hint.startswith("Union[") and hint.endswith("]") else hint
    names = {n.strip().encode("utf-8") for n in inner.split(",") if n.strip()}
    if ANY in names or not names <= entities:
        return entities  # any entity, or a hint this reader does not follow: fall back to every class
    return frozenset(names | {ANY})


@lru_cache(maxsize=64)
def classes_in(code: str) -> PromptClasses:
    """The classes a KnowCoder prompt defines, with the argument types of relations and event roles."""
    matches = list(_CLASS.finditer(code))
    bodies = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(code)
        bodies.append((match.group(1).encode("utf-8"), match.group(2), code[match.end(): end]))
    entities = frozenset({ANY} | {name for name, base, _ in bodies if base == "Entity"})
    relations, events = [], []
    for name, base, body in bodies:
        if base == "Relation":
            hints = _RELATION_HINTS.search(body)
            head, tail = (hints.group(1), hints.group(2)) if hints else (None, None)
            relations.append((name, _argument_classes(head, entities), _argument_classes(tail, entities)))
        elif base == "Event":
            roles = tuple((role.encode("utf-8"), _argument_classes(hint, entities))
                          for role, hint in _ROLE.findall(body))
            events.append((name, roles))
    return PromptClasses(entities, tuple(relations), tuple(events))


def sentence_literal(prompt: str) -> Optional[str]:
    """The body of the last `sentence = "..."` literal: the text mentions must be copied from, escapes kept."""
    found = _SENTENCE.findall(prompt)
    return found[-1] if found else None


# ---- substrings of the sentence ---------------------------------------------------------------------
class SuffixAutomaton:
    """Accepts exactly the substrings of `data` (bytes); state 0 is the empty string."""

    def __init__(self, data: bytes):
        self.next: List[Dict[int, int]] = [{}]
        link, length = [-1], [0]
        last = 0
        for byte in data:
            cur = len(self.next)
            self.next.append({})
            length.append(length[last] + 1)
            link.append(0)
            p = last
            while p != -1 and byte not in self.next[p]:
                self.next[p][byte] = cur
                p = link[p]
            if p != -1:
                q = self.next[p][byte]
                if length[p] + 1 == length[q]:
                    link[cur] = q
                else:
                    clone = len(self.next)
                    self.next.append(dict(self.next[q]))
                    length.append(length[p] + 1)
                    link.append(link[q])
                    while p != -1 and self.next[p].get(byte) == q:
                        self.next[p][byte] = clone
                        p = link[p]
                    link[q] = clone
                    link[cur] = clone
            last = cur


def _is_continuation(byte: int) -> bool:
    return 0x80 <= byte < 0xC0


def _bytes_to_come(byte: int, pending: int) -> int:
    """UTF-8 bytes still owed to the current character after `byte`: a mention ends on a whole character."""
    if _is_continuation(byte):
        return max(0, pending - 1)
    if byte >= 0xF0:
        return 3
    if byte >= 0xE0:
        return 2
    if byte >= 0xC0:
        return 1
    return 0


# ---- the byte automaton -----------------------------------------------------------------------------
# States are hashable tuples: (mode, ...payload, goals), where `goals` is what must follow, in order.
# Goal markers:
STR, ENT, OPT_SP, AFTER, ROLES, ROLES_MORE = "STR", "ENT", "OPT_SP", "AFTER", "ROLES", "ROLES_MORE"
DONE = ("done",)


class CompletionGrammar:
    """The completion language of one prompt, as a deterministic byte automaton."""

    def __init__(self, classes: PromptClasses, sentence: str):
        self.classes = classes
        data = sentence.encode("utf-8")
        self.sam = SuffixAutomaton(data.lower() if classes.ascii_case else data)  # bytes.lower: ASCII only
        self.initial = ("lit", classes.opening, ("LIST",)) if classes.opening else ("ws", 0, ())

    # goals -> state
    def _activate(self, goals: tuple):
        if not goals:
            return DONE  # only reached by a malformed goal list; nothing more may be written
        goal, rest = goals[0], goals[1:]
        if isinstance(goal, bytes):
            return ("lit", goal, rest)
        if goal == STR:
            return ("lit", b'"', (("STRBODY",),) + rest)
        if isinstance(goal, tuple) and goal[0] == "STRBODY":
            return ("str", 0, False, 0, rest)
        if isinstance(goal, tuple) and goal[0] == ENT:  # an entity call of one of the classes goal[1]
            return ("name", b"", "ent", rest, goal[1])
        if goal == "LIST":
            return ("ws", 0, ())
        if goal == OPT_SP:
            return ("opt_sp", rest)
        if goal == AFTER:
            return ("after", 0, ())
        if isinstance(goal, tuple) and goal[0] in (ROLES, ROLES_MORE):  # a role's list, of the classes goal[1]
            return ("roles", goal[0] == ROLES, rest, goal[1])
        if isinstance(goal, tuple) and goal[0] == "ROLE":  # an unused role name of the event
            return ("name", b"", "role", rest, (goal[1], goal[2]))
        if isinstance(goal, tuple) and goal[0] == "EVARGS":
            return ("evargs", goal[1], goal[2], rest)
        raise ValueError(f"unknown goal {goal!r}")

    def _names(self, kind, state_payload=None) -> FrozenSet[bytes]:
        if kind == "top":
            return self.classes.top_level
        if kind == "ent":
            return state_payload
        event, used = state_payload
        return frozenset(r for r in self.classes.roles(event) if r not in used)

    def _after_name(self, name: bytes, kind, payload, rest: tuple):
        """The state after a complete name and the byte that ends it ('(' or '=')."""
        if kind == "ent":
            return self._activate((STR, b")") + rest)
        if kind == "role":
            event, used = payload
            classes = self.classes.role_classes(event, name)
            opens = self.classes.keyword_sep[1:] + b"["
            return self._activate((opens, (ROLES, classes), ("EVARGS", event, used | {name})) + rest)
        if name in self.classes.entities:
            return self._activate((STR, b")", AFTER))
        if name in self.classes.relation_names:
            head, tail = self.classes.relation_arguments(name)
            return self._activate(((ENT, head), b",", OPT_SP, (ENT, tail), b")", AFTER))
        if self.classes.trigger_only:
            return self._activate((STR, b")", AFTER))
        return self._activate((b"trigger" + self.classes.keyword_sep, STR, ("EVARGS", name, frozenset()), AFTER))

    def next_bytes(self, state) -> Sequence[int]:
        mode = state[0]
        if mode == "done":
            return ()
        if mode == "lit":
            return (state[1][0],)
        if mode == "str":
            _, sam_state, escaped, pending, _rest = state
            found = [b for b in self.sam.next[sam_state] if sam_state or not _is_continuation(b)]
            if self.classes.ascii_case:
                found += [b - 32 for b in found if 97 <= b <= 122]
            if sam_state and not escaped and not pending and _QUOTE not in found:
                found.append(_QUOTE)
            return found
        out: Set[int]
        if mode == "ws":
            out = set(_WS) if state[1] < MAX_WS else set()
            out.add(ord("]"))
            out.update(n[0] for n in self.classes.top_level)
            return sorted(out)
        if mode == "after":
            out = set(_WS) if state[1] < MAX_WS else set()
            out.update((ord(","), ord("]")))
            return sorted(out)
        if mode == "name":
            _, prefix, kind, rest = state[:4]
            payload = state[4] if len(state) > 4 else None
            names = self._names(kind, payload)
            out = {n[len(prefix)] for n in names if n.startswith(prefix) and len(n) > len(prefix)}
            if prefix in names:
                out.add(self.classes.keyword_sep[0] if kind == "role" else ord("("))
            return sorted(out)
        if mode == "opt_sp":
            return sorted({_SPACE, *self.next_bytes(self._activate(state[1]))})
        if mode == "evargs":
            return (ord(")"), ord(",")) if self._names("role", (state[1], state[2])) else (ord(")"),)
        if mode == "roles":
            first = state[1]
            out = {ord("]")}
            if first:
                out.update(n[0] for n in state[3])
            else:
                out.add(ord(","))
            return sorted(out)
        raise ValueError(f"unknown state {state!r}")

    def step(self, state, byte: int):
        """The state after `byte`, or None when the byte is not allowed."""
        mode = state[0]
        if mode == "done":
            return None
        if mode == "lit":
            literal, rest = state[1], state[2]
            if byte != literal[0]:
                return None
            return ("lit", literal[1:], rest) if len(literal) > 1 else self._activate(rest)
        if mode == "str":
            _, sam_state, escaped, pending, rest = state
            if byte == _QUOTE and not escaped and not pending:
                return self._activate(rest) if sam_state else None
            nxt = self.sam.next[sam_state].get(byte + 32 if self.classes.ascii_case and 65 <= byte <= 90 else byte)
            if nxt is None or (not sam_state and _is_continuation(byte)):
                return None  # not in the sentence, or starting inside a character
            return ("str", nxt, byte == _BACKSLASH and not escaped, _bytes_to_come(byte, pending), rest)
        if mode in ("ws", "after"):
            if byte in _WS:
                return (mode, state[1] + 1, ()) if state[1] < MAX_WS else None
            if byte == ord("]"):
                return DONE
            if mode == "after":
                return ("ws", 0, ()) if byte == ord(",") else None
            return self._extend_name(("name", b"", "top", ()), byte)
        if mode == "name":
            return self._extend_name(state, byte)
        if mode == "opt_sp":
            if byte == _SPACE:
                return self._activate(state[1])
            return self.step(self._activate(state[1]), byte)
        if mode == "evargs":
            _, event, used, rest = state
            if byte == ord(")"):
                return self._activate(rest)
            if byte == ord(",") and self._names("role", (event, used)):
                return ("opt_sp", (("ROLE", event, used),) + rest)
            return None
        if mode == "roles":
            first, rest, classes = state[1], state[2], state[3]
            if byte == ord("]"):
                return self._activate(rest)
            if not first and byte == ord(","):
                return ("opt_sp", ((ENT, classes), (ROLES_MORE, classes)) + rest)
            if first:
                return self._extend_name(("name", b"", "ent", ((ROLES_MORE, classes),) + rest, classes), byte)
            return None
        raise ValueError(f"unknown state {state!r}")

    def _extend_name(self, state, byte: int):
        _, prefix, kind, rest = state[:4]
        payload = state[4] if len(state) > 4 else None
        names = self._names(kind, payload)
        end = self.classes.keyword_sep[0] if kind == "role" else ord("(")
        if byte == end and prefix in names:
            return self._after_name(prefix, kind, payload, rest)
        longer = prefix + bytes([byte])
        if any(n.startswith(longer) for n in names):
            return ("name", longer, kind, rest) + ((payload,) if payload is not None else ())
        return None

    # ---- whole tokens ------------------------------------------------------------------------------
    def advance(self, state, data: bytes):
        for byte in data:
            if state is None:
                return None
            state = self.step(state, byte)
        return state


# ---- the vocabulary as bytes ------------------------------------------------------------------------
def _byte_level_alphabet() -> Dict[str, int]:
    """The printable stand-ins byte-level BPE vocabularies use for raw bytes (GPT-2's table), inverted."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def vocabulary_bytes(tokenizer) -> List[Optional[bytes]]:
    """Each token id's bytes (None for special and unreadable tokens), for byte-level BPE and SentencePiece."""
    size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    pieces: List[Optional[str]] = [None] * size
    for piece, token_id in tokenizer.get_vocab().items():
        pieces[token_id] = piece
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    alphabet = _byte_level_alphabet()
    real = [p for i, p in enumerate(pieces) if p is not None and i not in special]
    byte_level = bool(real) and all(ch in alphabet for p in real for ch in p)
    out: List[Optional[bytes]] = [None] * size
    for token_id, piece in enumerate(pieces):
        if piece is None or token_id in special:
            continue
        if byte_level:
            out[token_id] = bytes(alphabet[ch] for ch in piece)
            continue
        match = _BYTE_TOKEN.match(piece)
        if match:
            out[token_id] = bytes([int(match.group(1), 16)])
        else:
            out[token_id] = piece.replace("\u2581", " ").encode("utf-8")
    return out


class TokenTable:
    """The vocabulary sorted by bytes, so the tokens that start with a byte string form one range."""

    def __init__(self, tokenizer):
        by_id = vocabulary_bytes(tokenizer)
        self.bytes_of = by_id
        ordered = sorted((b, i) for i, b in enumerate(by_id) if b)
        self.keys = [b for b, _ in ordered]
        self.ids = [i for _, i in ordered]
        self.stop_ids = sorted({i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None})
        self.size = len(by_id)

    def bytes_for(self, token_id: int) -> Optional[bytes]:
        """A token's bytes; None for special tokens and ids past the vocabulary (a model's padded embedding rows)."""
        return self.bytes_of[token_id] if token_id < self.size else None

    def allowed(self, grammar: CompletionGrammar, state) -> List[int]:
        """Ids of tokens whose bytes the grammar accepts from `state`."""
        if state == DONE:
            return list(self.stop_ids)
        found: List[int] = []
        keys = self.keys

        def walk(st, lo: int, hi: int, prefix: bytes) -> None:
            depth = len(prefix)
            while lo < hi and len(keys[lo]) == depth:  # tokens that end exactly here
                found.append(self.ids[lo])
                lo += 1
            for byte in grammar.next_bytes(st):
                nxt = grammar.step(st, byte)
                if nxt is None:
                    continue
                longer = prefix + bytes([byte])
                start = bisect_left(keys, longer, lo, hi)
                if start >= hi or not keys[start].startswith(longer):
                    continue
                end = bisect_left(keys, prefix + bytes([byte + 1]), start, hi) if byte < 255 else hi
                walk(nxt, start, end, longer)

        walk(state, 0, len(keys), b"")
        return found


class KnowCoderConstraint:
    """A transformers LogitsProcessor that keeps each row inside its prompt's completion grammar.

    Rows without a grammar (prompts that do not end inside `results = [`) are left alone. A row whose
    grammar has no way on (should not happen; e.g. an empty sentence after a relation class) may only stop.
    """

    def __init__(self, table: TokenTable, grammars: Sequence[Optional[CompletionGrammar]], prompt_width: int):
        self.table = table
        self.grammars = list(grammars)
        self.states = [g.initial if g is not None else None for g in grammars]
        self.seen = prompt_width
        self._masks: List[Dict[object, object]] = [{} for _ in grammars]

    def _mask(self, row: int, state, vocab: int, device):
        import torch

        cache = self._masks[row]
        mask = cache.get(state)
        if mask is None:
            grammar = self.grammars[row]
            ids = self.table.allowed(grammar, state) if state is not None and grammar is not None else []
            if not ids:  # no way on: let the row stop
                ids = list(self.table.stop_ids)
            mask = torch.zeros(vocab, dtype=torch.bool)
            mask[torch.tensor([i for i in ids if i < vocab], dtype=torch.long)] = True
            mask = mask.to(device)
            cache[state] = mask
        return mask

    def __call__(self, input_ids, scores):
        new = input_ids[:, self.seen:].tolist()
        self.seen = input_ids.shape[1]
        for row, grammar in enumerate(self.grammars):
            if grammar is None:
                continue
            state = self.states[row]
            for token_id in new[row]:
                if state is None or state == DONE:
                    break
                data = self.table.bytes_for(token_id)
                state = grammar.advance(state, data) if data else None
            self.states[row] = state
            if state == DONE:
                continue  # the list is closed; the stopping criterion ends this row
            mask = self._mask(row, state, scores.shape[-1], scores.device)
            scores[row] = scores[row].masked_fill(~mask, float("-inf"))
        return scores


def classes_for_schema(schema, *, role_name=None, **dialect) -> PromptClasses:
    """What an answer in KnowCoder's instance syntax may instantiate for `schema`: its entity classes (and the
    base `Entity` for arguments), its relations with the classes of their head and tail, its events with their
    role parameters and the classes each takes. Built from the schema, so it holds for any prompt style.

    `role_name(role)` is the name a style writes for a role (its parameter by default); `dialect` sets the
    other `PromptClasses` fields (opening, keyword_sep, trigger_only, items)."""
    from ..schema.types import ANY_ENTITY

    entities = frozenset({ANY} | {e.class_name.encode("utf-8") for e in schema.entities})
    name_of = role_name or (lambda role: role.parameter)

    def admitted(labels) -> FrozenSet[bytes]:
        if not labels or ANY_ENTITY in labels:
            return entities
        names = set()
        for label in labels:
            found = schema.entity_by_label(label)
            if found is None:
                return entities
            names.add(found.class_name.encode("utf-8"))
        return frozenset(names | {ANY})

    relations = tuple((r.class_name.encode("utf-8"), admitted(r.head), admitted(r.tail)) for r in schema.relations)
    events = tuple((e.class_name.encode("utf-8"),
                    tuple((name_of(role).encode("utf-8"), admitted(role.types)) for role in e.roles))
                   for e in schema.events)
    return PromptClasses(entities, relations, events, **dialect)


def grammar_for(prompt: str) -> Optional[CompletionGrammar]:
    """The completion grammar of a prompt, or None where there is nothing to constrain by.

    A `Prompt` from a prompt style carries its answer classes and sentence. A plain string is read as a
    KnowCoderPrompt.v1 prompt; one that defines no class it can read is left unconstrained (never forced to
    an empty answer).
    """
    classes = getattr(prompt, "answer_classes", None)
    sentence = getattr(prompt, "sentence_literal", None)
    if classes is not None and sentence is not None:
        return CompletionGrammar(classes, sentence)
    sentence = sentence_literal(prompt)
    if sentence is None:
        return None
    code_end = prompt.rfind("\nsentence = ")
    classes = classes_in(prompt[:code_end])
    if not classes.top_level:
        return None
    return CompletionGrammar(classes, sentence)
