"""The completion language of `constrained.CompletionGrammar`, written as a Lark grammar for llguidance.

Why: the hand-written byte automaton in `constrained.py` is code we maintain (a suffix automaton, a state
machine, a vocabulary walk). llguidance (MIT, on PyPI) is a maintained engine that takes Lark grammars and
computes token masks in Rust; its `%regex {"substring_chars": ...}` admits exactly the contiguous substrings of a
text, which is the "mentions come from the sentence" rule. This module states the same language as a grammar so
that the two engines can be measured on the same prompts (`benchmarks/grammar_engines.py`); which one decodes
is decided by those numbers (docs/performance.md).

The language, for the classes of a prompt and the body of its sentence literal:

    start    : WS? (item WS? "," WS?)* (item WS?)? "]"          WS: 1 to 4 bytes of " ", "\\t", "\\n"
    item     : Entity "(" mention ")" | Relation "(" ent "," " "? ent ")"
             | Event "(trigger=" mention roles::0 ")"
    roles::_ : "" | "," " "? role "=[" (ent ("," " "? ent)*)? "]" roles::set_bit(k)   (role k still unused)
    ent      : EntityClass "(" mention ")"                         (the classes the role or relation admits)
    mention  : '"' MENTION '"'
    MENTION  : a non-empty character substring of the literal body & /([^"\\\\]|\\\\.)+/

Differences from the automaton (everything else is the same language):
- Roles at most once per event: a parametric rule (a bit per role), so at most 64 roles per event; more raise
  ValueError (the automaton has no limit).
- `mentions="words"` uses `substring_words` instead: a mention must start and end at llguidance's word
  boundaries, which is stricter than the automaton (it rejects `"Ada"` in "Adam", and text without spaces,
  such as Chinese, is one word). The default, `"chars"`, uses `substring_chars`: the same substrings as the
  automaton's byte suffix automaton restricted to whole UTF-8 characters.
- Escapes: the automaton tracks a backslash and forbids an unescaped `"` inside a mention or a mention that ends
  on a lone backslash; the intersection with `([^"\\\\]|\\\\.)+` says the same.
- An empty sentence admits only `WS? "]"` here; the automaton admits the same complete answers but lets a
  prefix such as `Per("` through before it dead-ends (and then only allows stopping).
- Forcing (a token-level, not a byte-level, difference): where the grammar allows only one byte string next
  (`er("` after `P` when `Per` is the only class starting with P), llguidance allows only the tokens of that
  string's canonical tokenization, where the automaton allows every token that is a prefix of it. Decoding
  then writes the tokens a model saw in training; `forcing=False` turns this off.
- After `]`, llguidance allows only the tokenizer's EOS; the automaton allows EOS and the pad token (the same
  token for SmolLM2).
"""
from __future__ import annotations

import json
from typing import Dict, FrozenSet, List, Literal, Optional

from .constrained import ANY, PromptClasses, classes_in, sentence_literal

MentionUnit = Literal["chars", "words"]
MAX_ROLES = 64  # llguidance's rule parameter is a 64-bit set
_MENTION_BODY = r'/([^"\\]|\\(?s:.))+/'


def _literal(name: bytes) -> str:
    """A Lark string literal for a class or role name (JSON escapes are Lark's)."""
    return json.dumps(name.decode("utf-8"), ensure_ascii=False)


def lark_grammar(classes: PromptClasses, sentence: str, mentions: MentionUnit = "chars",
                 forcing: bool = True) -> str:
    """The Lark grammar (llguidance dialect) of the answers the automaton admits for `classes` and `sentence`
    (the body of the prompt's sentence literal, escapes kept). `forcing=False` sets llguidance's `no_forcing`
    (for tests: then its masks are exactly the automaton's)."""
    header = "%llguidance {}" if forcing else '%llguidance {"no_forcing": true}'
    if not sentence or not classes.top_level:
        return "\n".join([header, 'start: WS? "]"', r"WS: /[ \t\n]{1,4}/"]) + "\n"
    lines = [header, 'start: WS? (item WS? "," WS?)* (item WS?)? "]"', r"WS: /[ \t\n]{1,4}/"]
    ent_rules: Dict[FrozenSet[bytes], str] = {}

    def ent(admitted: FrozenSet[bytes]) -> str:
        if admitted not in ent_rules:
            ent_rules[admitted] = f"ent_{len(ent_rules)}"
        return ent_rules[admitted]

    items: List[str] = []
    body: List[str] = []
    entities = sorted(classes.entities - {ANY})
    if entities:
        items.append("entity")
        body.append(f'entity: ({" | ".join(_literal(e) for e in entities)}) "(" mention ")"')
    for i, (name, head, tail) in enumerate(classes.relations):
        items.append(f"rel_{i}")
        body.append(f'rel_{i}: {_literal(name)} "(" {ent(head)} "," " "? {ent(tail)} ")"')
    for i, (name, roles) in enumerate(classes.events):
        items.append(f"ev_{i}")
        if not roles:
            body.append(f'ev_{i}: {_literal(name)} "(trigger=" mention ")"')
            continue
        if len(roles) > MAX_ROLES:
            raise ValueError(f"event {name.decode()!r} has {len(roles)} roles; llguidance's grammar allows "
                             f"at most {MAX_ROLES}")
        body.append(f'ev_{i}: {_literal(name)} "(trigger=" mention roles_{i}::0x0 ")"')
        options = ['""']
        for k, (role, admitted) in enumerate(roles):
            a = ent(admitted)
            options.append(f'"," " "? {_literal(role + b"=[")} ({a} ("," " "? {a})*)? "]" '
                           f"roles_{i}::set_bit({k}) %if bit_clear({k})")
        body.append(f"roles_{i}::_: " + "\n    | ".join(options))
    lines.append(f"item: {' | '.join(items)}")
    lines += body
    for admitted, rule in ent_rules.items():
        lines.append(f'{rule}: ({" | ".join(_literal(e) for e in sorted(admitted))}) "(" mention ")"')
    lines.append(r'mention: "\"" MENTION "\""')
    lines.append(f"MENTION: SENTENCE & {_MENTION_BODY}")
    key = "substring_words" if mentions == "words" else "substring_chars"
    lines.append(f"SENTENCE: %regex {{{json.dumps(key)}: {json.dumps(sentence)}}}")
    return "\n".join(lines) + "\n"


def lark_grammar_for(prompt: str, mentions: MentionUnit = "chars", forcing: bool = True) -> Optional[str]:
    """The grammar of a prompt, or None where `constrained.grammar_for` would not constrain it either."""
    classes = getattr(prompt, "answer_classes", None)
    sentence = getattr(prompt, "sentence_literal", None)
    if classes is None or sentence is None:
        sentence = sentence_literal(prompt)
        if sentence is None:
            return None
        classes = classes_in(prompt[: prompt.rfind("\nsentence = ")])
        if not classes.top_level:
            return None
    return lark_grammar(classes, sentence, mentions, forcing)
