"""CompactPrompt.v1, the embedded default model's prompt style: its bytes are frozen.

The default adapter was trained on exactly these strings; a change here silently degrades the default model.
If a test below fails, either undo the change or retrain the default adapter with the new rendering and
update the golden strings together with it.
"""
import pytest
from spacy.util import registry

from spacy_codeie.instances import EntityInstance, EventInstance, Mention, RelationInstance
from spacy_codeie.parsing import CodeParser
from spacy_codeie.prompting import CompactPrompt
from spacy_codeie.schema import schema_from_dict

SYSTEM = "Extract the instances of the Python classes below from each sentence, as code.\n"
INSTRUCTION = "# Instantiate every object of these classes that the sentence mentions.\n"


@pytest.fixture
def schema():
    return schema_from_dict(
        entities={"PERSON": "a human being", "ORG": {"description": "a company", "examples": ["Acme"]}, "LOC": ""},
        relations={"WORKS_FOR": {"head": "PERSON", "tail": ["ORG", "LOC"], "description": "employment"}},
        events={"ACQUISITION": {"description": "one organisation buys another",
                                "roles": {"buyer": ["ORG"], "Attack-Pattern": ["Entity"]}}},
    )


def test_prompt_bytes_are_frozen(schema):
    prompt = CompactPrompt().render_prompt(schema, 'Ada said "hi"\nto Acme.')
    assert prompt == (
        SYSTEM
        + "Input:\n"
        + 'class Person(Entity): """a human being"""\n'
        + 'class Org(Entity): """a company (e.g. Acme)"""\n'
        + "class Loc(Entity): pass\n"
        + 'class WorksFor(Relation): """employment"""  # (head: Person, tail: Org | Loc)\n'
        + 'class Acquisition(Event): """one organisation buys another"""  # (trigger, buyer: Org, attack_pattern)\n'
        + INSTRUCTION
        + 'sentence = "Ada said \\"hi\\"\\nto Acme."\n'
        + "Output:\n"
        + "results = ["
    )


def test_completion_bytes_are_frozen(schema):
    style = CompactPrompt()
    instances = [
        EntityInstance("PERSON", "Ada"),
        RelationInstance("WORKS_FOR", Mention("Ada", "PERSON"), Mention("Acme", "ORG")),
        EventInstance("ACQUISITION", "bought", (("buyer", Mention("Acme", "ORG")), ("Attack-Pattern", Mention("x")))),
    ]
    assert style.render_completion(schema, instances) == (
        'Person("Ada"), WorksFor(Person("Ada"), Org("Acme")), '
        'Acquisition(trigger="bought", buyer=[Org("Acme")], attack_pattern=[Entity("x")])]'
    )
    assert style.render_completion(schema, []) == "]"


def test_conversation_shows_the_classes_once_and_every_earlier_answer():
    schema = schema_from_dict(entities={"PER": "person"})
    turns = CompactPrompt().render_conversation(
        schema, [("Ada met Bob.", [EntityInstance("PER", "Ada"), EntityInstance("PER", "Bob")]), ("Nothing.", [])])
    assert [t["completion"] for t in turns] == ['Per("Ada"), Per("Bob")]', "]"]
    assert turns[0]["prompt"] == CompactPrompt().render_prompt(schema, "Ada met Bob.")
    assert turns[1]["prompt"] == (
        SYSTEM + "Input:\n" + 'class Per(Entity): """person"""\n' + INSTRUCTION + 'sentence = "Ada met Bob."\n'
        + "Output:\n" + 'results = [Per("Ada"), Per("Bob")]\n'
        + "Input:\n" + 'sentence = "Nothing."\n' + "Output:\n" + "results = ["
    )


def test_descriptions_cannot_close_the_docstring_or_the_line():
    schema = schema_from_dict(entities={"X": 'ends with a quote"', "Y": 'has """ and \\ inside', "Z": "two\nlines"})
    schema_text = CompactPrompt().render_schema(schema)
    assert schema_text == (
        'class X(Entity): """ends with a quote" """\n'
        "class Y(Entity): \"\"\"has ''' and \\\\ inside\"\"\"\n"
        'class Z(Entity): """two lines"""\n'
    )


def test_answers_parse_back_to_the_instances(schema):
    style = CompactPrompt()
    instances = [EntityInstance("PERSON", "Ada"), EntityInstance("ORG", "Acme"),
                 RelationInstance("WORKS_FOR", Mention("Ada", "PERSON"), Mention("Acme", "ORG"))]
    parsed = CodeParser(schema).parse(style.render_completion(schema, instances))
    assert parsed.instances == instances
    assert not parsed.truncated and not parsed.unparseable


def test_registered_with_its_defaults():
    style = registry.misc.get("spacy_codeie.CompactPrompt.v1")()
    assert isinstance(style, CompactPrompt)
    assert style.system_prompt + "\n" == SYSTEM


def test_the_shipped_styles_are_prompt_styles():
    from spacy_codeie.prompting.style import AnswerParser, PromptStyle

    schema = schema_from_dict(entities={"PER": "person"})
    names = ["KnowCoderPrompt", "CompactPrompt", "YAYIPrompt", "ADELIEPrompt", "GoLLIEPrompt"]
    for name in names:
        style = registry.misc.get(f"spacy_codeie.{name}.v1")()
        assert isinstance(style, PromptStyle)
        assert isinstance(style.parser(schema), AnswerParser)


def test_a_style_trained_on_one_task_per_prompt_gets_one_task_per_prompt(scripted):
    import spacy

    model, _ = scripted()
    nlp = spacy.blank("en")
    schema = {"@misc": "spacy_codeie.schema_from_dict.v1", "entities": {"PER": "person", "ORG": "org"},
              "relations": {"WORKS_FOR": {"head": "PER", "tail": "ORG"}}}
    joint = nlp.add_pipe("codeie", name="joint", config={"schema": schema, "model": model})
    split = nlp.add_pipe("codeie", name="split", config={"schema": schema, "model": model,
                                                         "prompt": {"@misc": "spacy_codeie.YAYIPrompt.v1"},
                                                         "spans_key": "yayi"})
    assert len(joint.groups) == 1
    assert [len(g.relations) for g in split.groups] == [0, 1]
