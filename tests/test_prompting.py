import ast

import pytest

from conftest import PAPER_SCHEMA
from spacy_codeie.instances import EntityInstance, EventInstance, Mention, RelationInstance
from spacy_codeie.parsing import CodeParser
from spacy_codeie.prompting import COMPLETION_PREFIX, KNOWCODER_SYSTEM_PROMPT, KnowCoderPrompt, python_string_literal
from spacy_codeie.schema import schema_from_mapping

SCHEMA = schema_from_mapping({k: v for k, v in PAPER_SCHEMA.items() if k != "@misc"})


def test_prompt_layout_matches_knowcoder():
    prompt = KnowCoderPrompt().render_prompt(SCHEMA, "Ada worked for Acme.")
    assert prompt.startswith(KNOWCODER_SYSTEM_PROMPT + "\nInput:\nclass Entity:")
    assert prompt.endswith('sentence = "Ada worked for Acme."\n\nOutput:\n' + COMPLETION_PREFIX)
    assert "class Person(Entity):" in prompt and "Description: a human being" in prompt
    assert "def __init__(self, head_entity: Person, tail_entity: Org):" in prompt
    assert "buyer: List[Org] = []," in prompt
    # everything between Input: and Output: is valid Python
    code = prompt.split("\nInput:\n", 1)[1].rsplit("\nOutput:\n", 1)[0]
    ast.parse(code)


def test_instruction_names_the_kinds_asked_for():
    ner_only = schema_from_mapping({"entities": {"PER": "person"}})
    text = KnowCoderPrompt().render_prompt(ner_only, "x")
    assert "some Entity Classes are defined above" in text
    assert "class Relation" not in text and "class Event" not in text


@pytest.mark.parametrize("text", ['He said "hi"\\n', "tab\tnew\nline\r", "\x00\x1f\x7f", "日本語 テキスト", "\u2028\ufeff",
                                  '"); __import__("os").system("x"); ("'])
def test_string_literals_read_back_exactly(text):
    literal = python_string_literal(text)
    assert ast.literal_eval(literal) == text
    assert "\n" not in literal
    tree = ast.parse("sentence = " + literal)
    assert len(tree.body) == 1 and isinstance(tree.body[0].value, ast.Constant)


def test_completion_round_trip_through_parser():
    style = KnowCoderPrompt()
    instances = [
        EntityInstance("PERSON", 'Ada "the Countess" Lovelace'),
        EntityInstance("ORG", "Babbage Labs"),
        RelationInstance("WORKS_FOR", Mention("Ada", "PERSON"), Mention("Babbage Labs", "ORG")),
        EventInstance("ACQUISITION", "bought", (("buyer", Mention("Acme", "ORG")), ("target", Mention("B Labs", None)),
                                                ("buyer", Mention("Zeta", "ORG")))),
    ]
    completion = style.render_completion(SCHEMA, instances)
    assert completion.endswith("\n]")
    parsed = CodeParser(SCHEMA).parse(completion)
    assert parsed.rejected == 0 and not parsed.truncated
    # roles come back grouped by parameter; untyped arguments take the role's single type
    assert parsed.instances[:3] == instances[:3]
    assert parsed.instances[3] == EventInstance("ACQUISITION", "bought", (
        ("buyer", Mention("Acme", "ORG")), ("buyer", Mention("Zeta", "ORG")), ("target", Mention("B Labs", "ORG"))))
    assert style.render_completion(SCHEMA, []) == "]"


def test_docstrings_cannot_be_closed_by_descriptions():
    schema = schema_from_mapping({"entities": {"X": 'ends with """ and a backslash \\'}})
    code = KnowCoderPrompt().render_schema(schema)
    tree = ast.parse(code)
    assert [n.name for n in tree.body] == ["Entity", "X"]


def test_custom_system_prompt_and_instruction():
    style = KnowCoderPrompt(system_prompt="", instruction="Find things.")
    prompt = style.render_prompt(SCHEMA, "x")
    assert prompt.startswith("Input:\n") and '"""\nFind things.\n"""' in prompt
