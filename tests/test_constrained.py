"""Constrained decoding: the grammar accepts exactly valid lists of the prompt's classes and the sentence's
substrings, and a random model constrained by it only writes such lists."""
from __future__ import annotations

import pytest

from spacy_codeie.alignment import align_instances
from spacy_codeie.instances import EntityInstance, EventInstance, Mention, RelationInstance
from spacy_codeie.models.constrained import (
    DONE,
    SuffixAutomaton,
    TokenTable,
    classes_in,
    grammar_for,
    vocabulary_bytes,
)
from spacy_codeie.models.huggingface import HuggingFaceModel
from spacy_codeie.parsing import CodeParser
from spacy_codeie.prompting import KnowCoderPrompt
from spacy_codeie.schema import schema_from_dict

SCHEMA = schema_from_dict(
    entities={"PERSON": "a human being", "ORG": "a company"},
    relations={"WORKS_FOR": {"head": "PERSON", "tail": "ORG"}},
    events={"ACQUISITION": {"description": "one company buys another", "roles": {"buyer": ["ORG"],
                                                                                 "target": ["ORG"]}}},
)
TEXT = 'Ada Lovelace worked for "Babbage Labs", which Acme Corp bought in 1843 in München.'
PROMPT = KnowCoderPrompt()


def _accepts(grammar, completion: str) -> bool:
    state = grammar.advance(grammar.initial, completion.encode("utf-8"))
    return state == DONE


def test_suffix_automaton_accepts_exactly_the_substrings():
    data = b"abcbc"
    sam = SuffixAutomaton(data)

    def accepts(s: bytes) -> bool:
        state = 0
        for byte in s:
            state = sam.next[state].get(byte)
            if state is None:
                return False
        return True

    substrings = {data[i:j] for i in range(len(data)) for j in range(i, len(data) + 1)}
    candidates = {bytes(x) for x in [b"a", b"cb", b"bcbc", b"abcbc", b"ca", b"bb", b"abcbcb", b"cc", b"ac"]}
    for s in substrings | candidates:
        assert accepts(s) == (s in substrings), s


def test_classes_roles_and_argument_types_are_read_from_the_prompt():
    schema = schema_from_dict(
        entities={"PERSON": "a human being", "ORG": "a company", "CITY": "a city"},
        relations={"WORKS_FOR": {"head": "PERSON", "tail": ["ORG", "CITY"]}},
        events={"ACQUISITION": {"description": "a purchase", "roles": {"buyer": ["ORG"], "target": ["ORG"],
                                                                        "place": ["CITY", "ORG"]}}},
    )
    classes = classes_in(PROMPT.render_prompt(schema, TEXT))
    assert classes.entities == {b"Entity", b"Person", b"Org", b"City"}
    assert classes.relation_names == {b"WorksFor"}
    assert classes.relation_arguments(b"WorksFor") == ({b"Person", b"Entity"}, {b"Org", b"City", b"Entity"})
    assert classes.roles(b"Acquisition") == (b"buyer", b"target", b"place")
    assert classes.role_classes(b"Acquisition", b"buyer") == {b"Org", b"Entity"}
    assert classes.role_classes(b"Acquisition", b"place") == {b"City", b"Org", b"Entity"}


def test_grammar_accepts_every_gold_completion_the_renderer_writes():
    grammar = grammar_for(PROMPT.render_prompt(SCHEMA, TEXT))
    instances = [
        EntityInstance("PERSON", "Ada Lovelace"),
        EntityInstance("ORG", '"Babbage Labs"'),  # quotes inside a mention are escaped as in the sentence
        EntityInstance("ORG", "München"),
        RelationInstance("WORKS_FOR", Mention("Ada Lovelace", "PERSON"), Mention("Babbage Labs", "ORG")),
        EventInstance("ACQUISITION", "bought", (("buyer", Mention("Acme Corp", "ORG")),
                                                ("target", Mention("Babbage Labs", "ORG")))),
    ]
    assert _accepts(grammar, PROMPT.render_completion(SCHEMA, instances))
    assert _accepts(grammar, PROMPT.render_completion(SCHEMA, []))  # "]"
    assert _accepts(grammar, 'Person("Ada"),]')  # a trailing comma is valid Python
    assert _accepts(grammar, 'Acquisition(trigger="bought")\n]')  # roles may be left out
    assert _accepts(grammar, 'WorksFor(Entity("Ada"), Org("Acme"))]')  # the base class fits any argument


@pytest.mark.parametrize("completion", [
    '\n\tPerson("Ada Lovelance")\n]',  # not in the sentence
    '\n\tPerson("")\n]',  # empty mention
    '\n\tCity("Ada")\n]',  # not a class of the prompt
    '\n\tEntity("Ada")\n]',  # the base class is only allowed as an argument's class
    '\n\tWorksFor(Person("Ada"))\n]',  # a relation needs two arguments
    '\n\tWorksFor(Org("Acme"), Org("Babbage Labs"))\n]',  # the head must be a Person
    '\n\tAcquisition(trigger="bought", buyer=[Person("Ada")])\n]',  # a buyer is an Org
    '\n\tAcquisition(trigger="bought", seller=[Org("Acme")])\n]',  # not a role of this event
    '\n\tAcquisition(trigger="bought", buyer=[Org("Acme")], buyer=[])\n]',  # a role twice
    '\n\tPerson("Ada") Person("Ada")\n]',  # items need a comma
    '\n\tPerson(\'Ada\')\n]',  # only double-quoted strings
])
def test_grammar_rejects_what_the_parser_would_drop(completion):
    grammar = grammar_for(PROMPT.render_prompt(SCHEMA, TEXT))
    state = grammar.advance(grammar.initial, completion.encode("utf-8"))
    assert state is None


def test_every_token_of_a_gold_completion_is_allowed(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    table = TokenTable(tokenizer)
    grammar = grammar_for(PROMPT.render_prompt(SCHEMA, TEXT))
    completion = PROMPT.render_completion(SCHEMA, [EntityInstance("PERSON", "Ada Lovelace"),
                                                    EntityInstance("ORG", "München")])
    state = grammar.initial
    for token_id in tokenizer(completion, add_special_tokens=False)["input_ids"]:
        assert token_id in table.allowed(grammar, state)
        state = grammar.advance(state, table.bytes_of[token_id])
    assert state == DONE
    assert table.allowed(grammar, DONE) == sorted({tokenizer.eos_token_id, tokenizer.pad_token_id})
    # Right after "(" only tokens starting a quote are allowed, and never the end of the sequence.
    after_paren = grammar.advance(grammar.initial, b'Person(')
    allowed = table.allowed(grammar, after_paren)
    assert allowed and all(table.bytes_of[i].startswith(b'"') for i in allowed)
    assert tokenizer.eos_token_id not in table.allowed(grammar, grammar.initial)


class _SentencePieceLike:
    """The parts of a tokenizer vocabulary_bytes reads, with SentencePiece pieces and byte fallback."""

    all_special_ids = [0]
    added_tokens_decoder = {}

    def get_vocab(self):
        return {"<s>": 0, "\u2581the": 1, "<0x0A>": 2, "ab": 3, "\u2581": 4}

    def __len__(self):
        return 5


def test_sentencepiece_pieces_and_byte_fallback_become_bytes():
    assert vocabulary_bytes(_SentencePieceLike()) == [None, b" the", b"\n", b"ab", b" "]


def test_a_random_model_constrained_writes_only_valid_lists(tiny_model_dir):
    model = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=120, batch_size=4, constrained=True)
    texts = [TEXT, "Grace Hopper joined Remington Rand.", "北京 東京 München", "Nothing here."]
    prompts = [PROMPT.render_prompt(SCHEMA, t) for t in texts]
    free = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=120, batch_size=4, constrained=False)
    unconstrained = [CodeParser(SCHEMA).parse(c) for c in free.generate(prompts)]
    # The random model left to itself writes nothing the parser can use; this is what the constraint fixes.
    assert all(not p.instances for p in unconstrained)
    parser = CodeParser(SCHEMA)
    found = 0
    for text, completion in zip(texts, model.generate(prompts)):
        parsed = parser.parse(completion)
        assert parsed.rejected == 0, completion
        aligned = align_instances(text, parsed.instances)
        assert aligned.hallucinated == 0, completion
        found += len(parsed.instances)
        # What was written is the grammar's: a closed list, or (cut by max_new_tokens) the start of one.
        grammar = grammar_for(PROMPT.render_prompt(SCHEMA, text))
        state = grammar.advance(grammar.initial, completion.encode("utf-8"))
        assert state is not None and (state == DONE) == (not parsed.truncated), completion
    assert found > 0


@pytest.mark.parametrize("dataset, lang", [("conll04", "en"), ("casie", "en"), ("fewfc_zh", "zh"),
                                           ("weibo_ner_zh", "zh"), ("phee", "en")])
def test_the_grammar_accepts_the_gold_answer_of_every_shared_test_prompt(dataset, lang):
    """Real schemas (Union type hints, many roles) and real sentences (quotes, CJK): a perfect model is never
    blocked by the constraint."""
    import spacy

    from conftest import shared_file
    from spacy_codeie.gold import CompletionTable, gold_completions
    from spacy_codeie.pipeline import CodeIE
    from spacy_codeie.readers import GoldConverter, read_jsonl
    from spacy_codeie.schema.loaders import schema_from_json

    path = shared_file(dataset, "test")
    nlp = spacy.blank(lang)
    component = CodeIE(nlp.vocab, schema=schema_from_json(path.parent / "labels.json"), model=CompletionTable({}))
    table = gold_completions(component, [GoldConverter(nlp).doc(r) for r in read_jsonl(path, 60)])
    assert table
    rejected = [(prompt[-200:], completion) for prompt, completion in table.items()
                if not _accepts(grammar_for(prompt), completion)]
    assert not rejected, rejected[:2]


def _schemas():
    from conftest import PAPER_SCHEMA, SHARED_DATA
    from spacy_codeie.schema import schema_from_json
    from spacy_codeie.schema.loaders import schema_from_mapping

    yield schema_from_mapping({k: v for k, v in PAPER_SCHEMA.items() if k != "@misc"})
    for name in ("conll04", "casie", "phee", "fewfc_zh", "conll2003_en"):
        path = SHARED_DATA / name / "labels.json"
        if path.is_file():
            yield schema_from_json(path)


def test_classes_from_the_schema_equal_the_classes_read_from_a_knowcoder_prompt():
    from spacy_codeie.models.constrained import classes_for_schema, classes_in
    from spacy_codeie.prompting import KnowCoderPrompt

    for schema in _schemas():
        code = KnowCoderPrompt().render_schema(schema)
        assert classes_for_schema(schema) == classes_in(code)


def test_every_style_carries_its_constraint_and_unknown_text_is_left_unconstrained():
    from spacy_codeie.models.constrained import grammar_for
    from spacy_codeie.prompting import CompactPrompt, KnowCoderPrompt
    from spacy_codeie.schema import schema_from_dict

    schema = schema_from_dict(entities={"PER": "person"})
    for style in (KnowCoderPrompt(), CompactPrompt()):
        prompt = style.prompt_for(schema, 'Ada "A" Lovelace')
        assert prompt == style.render_prompt(schema, 'Ada "A" Lovelace')
        grammar = grammar_for(prompt)
        state = grammar.advance(grammar.initial, b'Per("Ada \\"A\\"")]')
        assert state is not None
        assert grammar.advance(grammar.initial, b'Per("Bob")]') is None
    # a compact prompt read as plain text has no KnowCoder class definitions: not constrained, not forced to []
    assert grammar_for(str(CompactPrompt().render_prompt(schema, "Ada"))) is None
