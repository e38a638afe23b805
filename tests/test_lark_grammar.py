"""The Lark grammar for llguidance states the automaton's language: on hand-made prompts, llguidance admits the
gold answers the automaton admits, rejects the wrong ones it rejects, and (without forcing) computes the same
token masks step by step."""
from __future__ import annotations

import pytest

from spacy_codeie.instances import EntityInstance, EventInstance, Mention, RelationInstance
from spacy_codeie.models.constrained import DONE, PromptClasses, TokenTable, grammar_for
from spacy_codeie.models.lark_grammar import MAX_ROLES, lark_grammar, lark_grammar_for
from spacy_codeie.prompting import KnowCoderPrompt
from spacy_codeie.prompting.compact import CompactPrompt
from spacy_codeie.schema import schema_from_dict

try:
    import llguidance
    import llguidance.hf
    import numpy as np
    from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask
except ImportError:  # pragma: no cover - a clear failure, never a silent skip
    raise ImportError("tests/test_lark_grammar.py needs llguidance: pip install -e '.[test]' "
                      "(it is in the test extras)") from None

SCHEMA = schema_from_dict(
    entities={"PERSON": "a human being", "ORG": "a company"},
    relations={"WORKS_FOR": {"head": "PERSON", "tail": "ORG"}},
    events={"ACQUISITION": {"description": "one company buys another", "roles": {"buyer": ["ORG"],
                                                                                 "target": ["ORG"]}}},
)
TEXT = 'Ada Lovelace worked for "Babbage Labs", which Acme Corp bought in 1843 in München {and} C:\\temp.'
GOLD = [
    EntityInstance("PERSON", "Ada Lovelace"),
    EntityInstance("ORG", '"Babbage Labs"'),
    EntityInstance("ORG", "München"),
    RelationInstance("WORKS_FOR", Mention("Ada Lovelace", "PERSON"), Mention("Babbage Labs", "ORG")),
    EventInstance("ACQUISITION", "bought", (("buyer", Mention("Acme Corp", "ORG")),
                                            ("target", Mention("Babbage Labs", "ORG")))),
]
ADMITTED = [
    "]",
    'Person("Ada"),]',  # a trailing comma
    '  \n\tAcquisition(trigger="bought")\n]',  # whitespace runs up to 4 bytes; roles may be left out
    'WorksFor(Entity("Ada"), Org("Acme"))]',  # the base class fits any argument
    'Acquisition(trigger="bought", target=[], buyer=[Org("Acme"),Org("Acme Corp")])]',  # any role order
    'Org("\\"Babbage")]',  # an escaped quote inside a mention
    'Org("C:\\\\temp.")]',  # an escaped backslash
    'Org("ünchen {and")]',  # any character substring
]
REJECTED = [
    'Person("Ada Lovelance")]',  # not in the sentence
    'Person("")]',  # empty mention
    'City("Ada")]',  # not a class of the prompt
    'Entity("Ada")]',  # the base class only types arguments
    'WorksFor(Person("Ada"))]',  # a relation needs two arguments
    'WorksFor(Org("Acme"), Org("Babbage Labs"))]',  # the head must be a Person
    'Acquisition(trigger="bought", buyer=[Person("Ada")])]',  # a buyer is an Org
    'Acquisition(trigger="bought", seller=[Org("Acme")])]',  # not a role of this event
    'Acquisition(trigger="bought", buyer=[Org("Acme")], buyer=[])]',  # a role twice
    'Person("Ada") Person("Ada")]',  # items need a comma
    "Person('Ada')]",  # only double-quoted strings
    'Person("Ada)]',  # a missing quote
    'Org("C:\\")]',  # a mention ending on a lone backslash
    'Org("Babbage Labs\\")]',  # an escaped quote does not close a mention
    '     Person("Ada")]',  # five whitespace bytes in a row
    'Person("Ada")',  # not closed
]


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    return tokenizer, TokenTable(tokenizer), llguidance.hf.from_tokenizer(tokenizer)


def _matcher(ll_tokenizer, grammar: str):
    matcher = llguidance.LLMatcher(ll_tokenizer, llguidance.LLMatcher.grammar_from_lark(grammar), log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    return matcher


def _both_admit(tokenizers, prompt, completion: str, forcing: bool = True):
    """(automaton admits, llguidance admits), token by token through each one's mask."""
    tokenizer, table, ll_tokenizer = tokenizers
    tokens = tokenizer(completion, add_special_tokens=False)["input_ids"]
    grammar = grammar_for(prompt)
    state = grammar.initial
    for token in tokens:
        if state is None or state == DONE or token not in table.allowed(grammar, state):
            state = None
            break
        state = grammar.advance(state, table.bytes_of[token])
    matcher = _matcher(ll_tokenizer, lark_grammar(prompt.answer_classes, prompt.sentence_literal,
                                                  forcing=forcing))
    return state == DONE, matcher.consume_tokens(tokens) and matcher.is_accepting()


@pytest.mark.parametrize("style", [KnowCoderPrompt(), CompactPrompt()], ids=["knowcoder", "compact"])
def test_llguidance_admits_the_gold_answers_the_automaton_admits(tokenizers, style):
    prompt = style.prompt_for(SCHEMA, TEXT)
    for completion in [style.render_completion(SCHEMA, GOLD), *ADMITTED]:
        assert _both_admit(tokenizers, prompt, completion) == (True, True), completion


@pytest.mark.parametrize("completion", REJECTED)
def test_llguidance_rejects_what_the_automaton_rejects(tokenizers, completion):
    prompt = CompactPrompt().prompt_for(SCHEMA, TEXT)
    assert _both_admit(tokenizers, prompt, completion) == (False, False)


def test_without_forcing_the_masks_are_the_automatons_and_with_it_never_wider(tokenizers):
    tokenizer, table, ll_tokenizer = tokenizers
    prompt = CompactPrompt().prompt_for(SCHEMA, TEXT)
    completion = CompactPrompt().render_completion(SCHEMA, GOLD)
    tokens = tokenizer(completion, add_special_tokens=False)["input_ids"]
    grammar = grammar_for(prompt)
    matchers = {forcing: _matcher(ll_tokenizer, lark_grammar(prompt.answer_classes, prompt.sentence_literal,
                                                             forcing=forcing)) for forcing in (True, False)}
    bitmask = allocate_token_bitmask(1, ll_tokenizer.vocab_size)
    state, narrower = grammar.initial, 0
    for token in tokens:
        expected = np.zeros(table.size, dtype=bool)
        expected[table.allowed(grammar, state)] = True
        for forcing, matcher in matchers.items():
            fill_next_token_bitmask(matcher, bitmask)
            got = np.unpackbits(bitmask[0].view(np.uint8), bitorder="little")[:table.size].astype(bool)
            if forcing:
                assert not (got & ~expected).any()
                narrower += int((expected & ~got).any())
            else:
                assert (got == expected).all(), tokenizer.decode(tokens[:tokens.index(token)])
            assert matcher.consume_token(token)
        state = grammar.advance(state, table.bytes_of[token])
    assert state == DONE and all(m.is_accepting() for m in matchers.values())
    assert narrower > 0  # forcing narrows somewhere on this answer (where one class name is the only way on)


def test_a_plain_knowcoder_prompt_gets_the_same_grammar_as_its_prompt_object():
    prompt = KnowCoderPrompt().prompt_for(SCHEMA, TEXT)
    assert lark_grammar_for(str(prompt)) == lark_grammar_for(prompt)
    assert lark_grammar_for("no classes here") is None


def test_edge_cases_compile(tokenizers):
    _, _, ll_tokenizer = tokenizers
    empty = CompactPrompt().prompt_for(SCHEMA, "")
    matcher = _matcher(ll_tokenizer, lark_grammar(empty.answer_classes, empty.sentence_literal))
    assert matcher.consume_tokens(tokenizers[0](" ]", add_special_tokens=False)["input_ids"])
    assert matcher.is_accepting()
    roles = tuple((f"r{k}".encode(), frozenset({b"Entity"})) for k in range(MAX_ROLES + 1))
    with pytest.raises(ValueError, match="at most 64"):
        lark_grammar(PromptClasses(frozenset({b"Entity"}), (), ((b"E", roles),)), "x")
