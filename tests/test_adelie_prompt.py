"""ADELIEPrompt.v1 against ADELIE's published test rows and answer forms, and its answer readers.

Rows: tests/fixtures/styles/adelie_zeroshot_rows.jsonl (THU-KEG/ADELIE @ 70f01ff02fa394b8250e5d47ba9572bace27ae4a,
unified_data/test_format/zeroshot/). Answer forms: scripts/tasks/{conll-2003,tacred,ace2005-ed,ace2005-eae}/desc.py
OUTPUT_BASE[0] at the same commit.
"""
import json
import re
from pathlib import Path

import pytest
from spacy.util import registry

from spacy_codeie.errors import SchemaError
from spacy_codeie.instances import EntityInstance, EventInstance, Mention, RelationInstance
from spacy_codeie.prompting import ADELIEPrompt
from spacy_codeie.prompting.adelie import EAE_FORM, ED_FORM, NER_FORM, RE_FORM
from spacy_codeie.schema import schema_from_dict

ROWS = [json.loads(line) for line in
        (Path(__file__).parent / "fixtures" / "styles" / "adelie_zeroshot_rows.jsonl").read_text("utf8").splitlines()]
FEWNERD_0, FEWNERD_1, SEMEVAL_0 = ROWS

# The desc.py answer forms (first tuple element of OUTPUT_BASE[0]), as published.
PUBLISHED_FORMS = {
    "conll-2003": 'Please give the answer in the form "[Answer]: {entity}: {type}; ".',
    "tacred": 'Please give the answer in the tuple form "[Answer]: ({subject}; {relation}; {object})\n".',
    "ace2005-ed": 'Please give the answer in the form "[Answer]: {event}: {class}; ".',
    "ace2005-eae": 'Please give the answer in the form "[Answer]: {word}: {role}; ".',
}


def _options(content: str):
    return re.search(r"categories: \[([^\]]*)\]", content).group(1).split(", ")


def _text(content: str) -> str:
    return re.search(r"Text: '(.*)'", content, re.S).group(1)


@pytest.fixture
def fewnerd_schema():
    return schema_from_dict(entities={label: "" for label in _options(FEWNERD_0["messages"][0]["content"])})


def test_ner_prompt_is_the_published_row(fewnerd_schema):
    content = FEWNERD_0["messages"][0]["content"]
    style = ADELIEPrompt()
    assert style.render_user(fewnerd_schema, _text(content)) == content
    assert style.render_prompt(fewnerd_schema, _text(content)) == f"<|user|>\n{content}\n<|assistant|>\n"
    assert ADELIEPrompt(chat_format="none").render_prompt(fewnerd_schema, _text(content)) == content


@pytest.mark.parametrize("row", [FEWNERD_0, FEWNERD_1])
def test_ner_gold_answers_parse_and_render(fewnerd_schema, row):
    reference = row["messages"][1]["content"]
    style = ADELIEPrompt()
    parsed = style.parser(fewnerd_schema).parse(reference)
    expected = [EntityInstance(t, e) for e, t in (item.rsplit(": ", 1) for item in reference.split("; ") if item)]
    assert parsed.instances == expected and parsed.rejected == 0
    assert style.render_completion(fewnerd_schema, parsed.instances) == "[Answer]: " + reference


def test_relation_gold_answer_parses_and_form_is_published():
    content, reference = (m["content"] for m in SEMEVAL_0["messages"])
    labels = re.search(r"categories: \[([^\]]*)\]", content).group(1).split(", ")
    schema = schema_from_dict(entities={"Entity_": ""}, relations={
        label: {"head": "Entity", "tail": "Entity", "class_name": label.replace(" ", "")} for label in labels})
    assert RE_FORM in content
    parsed = ADELIEPrompt().parser(schema).parse(reference)
    assert parsed.instances == [RelationInstance("Whole and Component", Mention("dolphin"), Mention("tail"))]
    assert ADELIEPrompt().render_completion(schema, parsed.instances) == "[Answer]: " + reference


def test_answer_forms_are_the_published_ones():
    assert (NER_FORM, RE_FORM, ED_FORM, EAE_FORM) == tuple(PUBLISHED_FORMS.values())


@pytest.fixture
def schema():
    return schema_from_dict(
        entities={"PERSON": "", "ORG": ""},
        relations={"WORKS_FOR": {"head": "PERSON", "tail": "ORG"}},
        events={"Transaction.Transfer-Ownership": {"class_name": "TransferOwnership", "roles": {"Buyer": ["ORG"], "Seller": ["Entity"]}}},
    )


def test_one_task_per_prompt(schema):
    style = ADELIEPrompt()
    with pytest.raises(SchemaError, match="one task per prompt"):
        style.render_prompt(schema, "x")
    re_schema = schema.subset([schema.relations[0]])
    prompt = style.render_prompt(re_schema, "Ada works for Acme.")
    assert "[works for]" in prompt and "[Text: 'Ada works for Acme.']" in prompt and RE_FORM in prompt
    ev_schema = schema.subset([schema.events[0]])
    prompt = style.render_prompt(ev_schema, "Acme bought Bolt.")
    assert prompt == ("<|user|>\nPlease identify the events in the text and classify them into appropriate categories; "
                      "The collection of categories is : [Transaction.Transfer-Ownership].\n" + ED_FORM
                      + "\nText: 'Acme bought Bolt.'\n<|assistant|>\n")


def test_event_detection_then_arguments(schema):
    style = ADELIEPrompt()
    ev_schema = schema.subset([schema.events[0]])
    found = style.parser(ev_schema).parse("[Answer]: bought: Transaction.Transfer-Ownership; ")
    assert found.instances == [EventInstance("Transaction.Transfer-Ownership", "bought", ())]
    event = found.instances[0]
    prompt = style.render_argument_prompt(ev_schema, "Acme bought Bolt.", event)
    assert "Text: 'Acme <event> bought </event> Bolt.'" in prompt and "Options: [Buyer, Seller]" in prompt
    assert EAE_FORM in prompt
    result = style.argument_parser(ev_schema, event).parse("[Answer]: Acme: Buyer; Bolt: Price; ")
    assert result.instances == [EventInstance(event.label, "bought", (("Buyer", Mention("Acme", "ORG")),))]
    assert result.unknown_role == 1
    gold = result.instances[0]
    assert style.render_argument_completion(ev_schema, gold) == "[Answer]: Acme: Buyer; "
    with pytest.raises(SchemaError, match="not in the text"):
        style.render_argument_prompt(ev_schema, "Nothing here.", event)


def test_the_component_asks_for_the_arguments_of_each_detected_event(schema, scripted):
    import spacy

    def answer(prompt: str) -> str:
        if "<event> bought </event>" in prompt:
            return "[Answer]: Acme: Buyer; Bolt: Seller; "
        if "identify the events" in prompt:
            return "[Answer]: bought: Transaction.Transfer-Ownership; sold: Transaction.Transfer-Ownership; "
        return "[Answer]: NA"

    config, model = scripted(by_prompt=answer)
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1", **schema.to_dict()},
                                   "model": config, "prompt": {"@misc": "spacy_codeie.ADELIEPrompt.v1"}})
    doc = nlp("Acme bought Bolt and then sold it.")
    second = [p for p in model.calls[1][0]]
    assert len(model.calls) == 2 and len(second) == 2  # one argument prompt per detected event
    events = {e.trigger.text: e for e in doc._.events}
    assert {role: [s.text for s in spans] for role, spans in events["bought"].arguments.items()} == {
        "Buyer": ["Acme"], "Seller": ["Bolt"]}
    assert not events["sold"].arguments  # the follow-up found nothing: the detected event stays


@pytest.mark.parametrize("answer", ["[Answer]: NA", "There are no entities in the text.", "NA", "None",
                                    "[Explanation]: nothing fits. [Answer]: NA"])
def test_nothing_found_is_an_answer_not_a_failure(schema, answer):
    parsed = ADELIEPrompt().parser(schema.subset([schema.entities[0]])).parse(answer)
    assert parsed.instances == [] and parsed.rejected == 0


def test_explanation_is_skipped_and_unknown_types_counted(schema):
    parser = ADELIEPrompt().parser(schema.subset(list(schema.entities)))
    parsed = parser.parse('[Explanation]: "Ada" is a person. To sum up, [Answer]: Ada: person; Paris: city; '
                          "no colon here; Acme: ORG; ")
    assert parsed.instances == [EntityInstance("PERSON", "Ada"), EntityInstance("ORG", "Acme")]
    assert (parsed.unknown_class, parsed.unparseable) == (1, 1)


def test_label_names_and_collisions():
    schema = schema_from_dict(entities={"PER": "", "PERSON": ""})
    with pytest.raises(SchemaError, match="label_names"):
        ADELIEPrompt(label_names={"PER": "person"}).render_prompt(schema, "x")
    style = ADELIEPrompt(label_names={"PER": "human"})
    assert "[human, person]" in style.render_prompt(schema, "x")
    assert style.parser(schema).parse("Ada: Human; ").instances == [EntityInstance("PER", "Ada")]


def test_solved_examples_are_earlier_turns(schema):
    ner = schema.subset(list(schema.entities))
    prompt = ADELIEPrompt().render_prompt(ner, "Bo left.", solved=[("Ada left.", [EntityInstance("PERSON", "Ada")])])
    assert prompt.count("<|user|>\n") == 2
    assert "<|assistant|>\n[Answer]: Ada: person;</s>\n<|user|>\n" in prompt and prompt.endswith("<|assistant|>\n")


def test_instruction_of_a_task_can_be_another_of_adelies(fewnerd_schema):
    # instructions.json NER[1] at the same commit
    other = 'Named Entity Recognition\n\n<options>\n\n<text>\n\nIf there are no entities in the text, please answer "NA".'
    prompt = ADELIEPrompt(instructions={"ner": other}, chat_format="none").render_prompt(fewnerd_schema, "Ada.")
    assert prompt.startswith("Named Entity Recognition\n\n[person_artist/author, ") and "\n\nText: 'Ada.'\n\n" in prompt
    assert prompt.endswith('answer "NA".' + NER_FORM + "\n")
    with pytest.raises(SchemaError, match="keyed by task"):
        ADELIEPrompt(instructions={"relations": other})


def test_registered():
    from spacy_codeie.prompting.style import PromptStyle

    assert isinstance(ADELIEPrompt(), PromptStyle)
    style = registry.misc.get("spacy_codeie.ADELIEPrompt.v1")(label_names=None, chat_format="none")
    assert isinstance(style, ADELIEPrompt) and style.tasks == "per_task"
    with pytest.raises(SchemaError):
        ADELIEPrompt(chat_format="llama")


def _pipeline(schema, config):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1", **schema.to_dict()},
                                   "model": config, "prompt": {"@misc": "spacy_codeie.ADELIEPrompt.v1"}})
    return nlp


def test_the_published_ner_row_lands_on_the_doc(fewnerd_schema, scripted):
    content, reference = (m["content"] for m in FEWNERD_0["messages"])
    config, model = scripted(by_prompt=lambda prompt: "[Answer]: " + reference)
    text = _text(content)
    doc = _pipeline(fewnerd_schema, config)(text)
    # the published row, as sent, except that a window's text (a Span's) ends without the doc's trailing space
    published = content.replace(f"'{text}'", f"'{text.rstrip()}'")
    assert model.calls[0][0] == [f"<|user|>\n{published}\n<|assistant|>\n"]
    expected = [tuple(item.rsplit(": ", 1)) for item in reference.split("; ") if item]
    assert [(s.text, s.label_) for s in doc.spans["codeie"]] == expected
    assert all(text[s.start_char:s.end_char] == s.text for s in doc.spans["codeie"])


def test_the_published_relation_row_lands_on_the_doc(scripted):
    content, reference = (m["content"] for m in SEMEVAL_0["messages"])
    labels = re.search(r"categories: \[([^\]]*)\]", content).group(1).split(", ")
    schema = schema_from_dict(entities={"Entity_": ""}, relations={
        label: {"head": "Entity", "tail": "Entity", "class_name": label.replace(" ", "")} for label in labels})
    config, model = scripted(by_prompt=lambda prompt: "[Answer]: " + reference)
    doc = _pipeline(schema.subset(schema.relations), config)(_text(content))
    (relation,) = doc._.relations
    assert (relation.label, relation.head.text, relation.tail.text) == ("Whole and Component", "dolphin", "tail")
