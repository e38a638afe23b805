"""KnowCoderPrompt.v2 against KnowCoder's own SFT rows (tests/fixtures/styles/knowcoder_sft_rows.jsonl).

Each row's schema is read back from its class definitions by the small reader below; the style then renders
the row's task from that schema, and the prompt must equal the row's bytes inside KnowCoder's template, and
its gold output must parse to the row's gold and render back to the same bytes.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import spacy

from spacy_codeie.annotations import DIAGNOSTICS_KEY
from spacy_codeie.instances import EntityInstance, EventInstance, Mention, RelationInstance
from spacy_codeie.models.constrained import CompletionGrammar
from spacy_codeie.prompting import KNOWCODER_SYSTEM_PROMPT, KnowCoderTaskPrompt
from spacy_codeie.schema.loaders import schema_from_mapping

ROWS = [json.loads(line) for line in
        (Path(__file__).parent / "fixtures" / "styles" / "knowcoder_sft_rows.jsonl").read_text("utf8").splitlines()]
_CLASS = re.compile(r'^class (\w+)\((\w+)\):\n\t"""\n(.*?)\n\t"""\n(.*?)(?=\n\nclass |\n\n""")', re.M | re.S)


def _examples(line, trailing=False):
    items = line.split(", ")
    return items[:-1] if trailing else items


def schema_of(prompt: str):
    """The schema a KnowCoder SFT prompt renders, read from its class definitions (test-side reader)."""
    entities, relations, events = {}, {}, {}
    for name, base, doc, body in _CLASS.findall(prompt):
        description = re.search(r"^\tDescription: (.*)$", doc, re.M).group(1)
        examples = re.search(r"^\tExamples: (.*)$", doc, re.M)
        if "pass" == body.strip():
            entities[name] = {"class_name": name, "description": description,
                              "examples": _examples(examples.group(1)) if examples else [],
                              **({"parent": base} if base != "Entity" else {})}
        elif base == "Relation":
            pairs = [p.split(", ", 1) for p in examples.group(1)[1:-1].split("), (")] if examples else []
            relations[name] = {"class_name": name, "description": description, "head": "Entity",
                               "tail": "Entity", "examples": pairs}
        elif "arg_names" in body:
            roles = json.loads(re.search(r"arg_names = (\[.*\])", body).group(1))
            events[name] = {"class_name": name, "description": description,
                            "examples": _examples(examples.group(1), trailing=True) if examples else [],
                            "roles": {r: ["Entity"] for r in roles}}
        else:
            trigger = re.search(r"trigger: str, # Examples: (.*)$", body, re.M)
            roles = re.findall(r"^\t\t(\w+): List\[ Entity \]", body, re.M)
            events[name] = {"class_name": name, "description": description,
                            "examples": _examples(trigger.group(1), trailing=True) if trigger else [],
                            "roles": {r: ["Entity"] for r in roles}}
    return schema_from_mapping({"entities": entities, "relations": relations, "events": events})


def in_template(query: str) -> str:
    """KnowCoder's `KnowCoder` template around a query: system, separator, the Input/Output turn."""
    return f"{KNOWCODER_SYSTEM_PROMPT}\nInput:\n{query}\nOutput:\n"


def is_argument_row(row) -> bool:
    return "It is important to note that the triggers" in row["one-stage"]["zero-shot"]["prompt"]


def gold_of(row):
    if "entities" in row:
        return [EntityInstance(e["type"].capitalize(), e["name"]) for e in row["entities"]]
    if "relations" in row:
        return [RelationInstance(r["type"], Mention(r["head"]["name"]), Mention(r["tail"]["name"]))
                for r in row["relations"]]
    if is_argument_row(row):
        return [EventInstance(e["type"], e["trigger"], tuple((a["role"], Mention(a["name"])) for a in e["arguments"]))
                for e in row["events"]]
    return [EventInstance(e["type"], e["trigger"]) for e in row["events"]]


STYLE = KnowCoderTaskPrompt()


@pytest.mark.parametrize("index", range(len(ROWS)))
def test_prompts_equal_knowcoders_sft_rows_and_gold_outputs_round_trip(index):
    row = ROWS[index]
    query, output = row["one-stage"]["zero-shot"]["prompt"], row["one-stage"]["output"]
    schema = schema_of(query)
    if is_argument_row(row):
        detected = [EventInstance(e["type"], e["trigger"]) for e in row["events"]]
        prompt = STYLE.argument_prompt(schema, row["sentence"], detected)
        render = STYLE.render_argument_completion
    else:
        prompt = STYLE.render_prompt(schema, row["sentence"])
        render = STYLE.render_completion
    assert prompt == in_template(query)
    parsed = STYLE.parser(schema).parse(output)
    assert parsed.rejected == 0 and not parsed.truncated
    assert parsed.instances == gold_of(row)
    assert render(schema, parsed.instances) == output


def test_the_rows_cover_every_task_and_knowcoders_own_quirks():
    queries = [r["one-stage"]["zero-shot"]["prompt"] for r in ROWS]
    assert any("class Event(Entity):" in q for q in queries)  # an entity type called Event
    assert any("(PhysicalEntity):" in q for q in queries)  # a parent class
    assert any("\tfrom: List[ Entity ]" in q for q in queries)  # a keyword role, written as KnowCoder does
    assert any("Description: \n" in q for q in queries)  # empty descriptions keep their space
    assert any("\\n" not in q and "\n\nPort Phillip" in q for q in queries)  # the sentence raw
    assert sum(map(is_argument_row, ROWS)) == 2 and any("arg_names" in q for q in queries)


def test_the_prompt_is_tokenized_in_knowcoders_pieces():
    row = next(r for r in ROWS if "entities" in r)
    prompt = STYLE.render_prompt(schema_of(row["one-stage"]["zero-shot"]["prompt"]), row["sentence"])
    assert prompt.segments[:2] == (KNOWCODER_SYSTEM_PROMPT, "\n")
    assert prompt.segments[2].startswith("Input:\n") and prompt.segments[2].endswith("\nOutput:\n")
    assert prompt.answer_end == "answer_opens"
    bare = KnowCoderTaskPrompt(system_prompt="").render_prompt(schema_of(row["one-stage"]["zero-shot"]["prompt"]),
                                                               row["sentence"])
    assert bare.segments == (prompt.segments[2],)  # no system: no separator either, as KnowCoder's template


def test_a_keyword_role_is_read_back_and_strings_are_left_alone():
    row = ROWS[8]  # Marriage, with roles `to` and `from`
    schema = schema_of(row["one-stage"]["zero-shot"]["prompt"])
    answer = ('results = [\n\tMarriage(trigger = "wife", from = [Entity("from = 1800")], '
              'spouse = [Entity("Christine Boyer")])\n]')
    (event,) = STYLE.parser(schema).parse(answer).instances
    assert event.arguments == (("from", Mention("from = 1800")), ("spouse", Mention("Christine Boyer")))
    assert 'from = [Entity("from = 1800")]' in STYLE.render_argument_completion(schema, [event])


def _admits(grammar, text: str) -> bool:
    state = grammar.advance(grammar.initial, text.encode("utf8"))
    return state is not None


@pytest.mark.parametrize("index", range(len(ROWS)))
def test_the_constraint_admits_every_gold_output_of_the_rows(index):
    row = ROWS[index]
    schema = schema_of(row["one-stage"]["zero-shot"]["prompt"])
    if is_argument_row(row):
        detected = [EventInstance(e["type"], e["trigger"]) for e in row["events"]]
        prompt = STYLE.argument_prompt(schema, row["sentence"], detected)
    else:
        prompt = STYLE.render_prompt(schema, row["sentence"])
    grammar = CompletionGrammar(prompt.answer_classes, prompt.sentence_literal)
    output = row["one-stage"]["output"]
    assert grammar.advance(grammar.initial, output.encode("utf8")) == ("done",)
    assert not _admits(grammar, 'results = [\n\tNotAClass("x")')
    assert not _admits(grammar, 'results = [\n\t' + output.split("\n\t")[-1].split("(")[0] + '("not in the text zq")') \
        or output == "results = []"


def test_the_constraint_keeps_each_task_to_its_own_shapes():
    ner = schema_from_mapping({"entities": {"Person": {}}, "relations": {"Knows": {"head": "Person",
                                                                                   "tail": "Person"}}})
    text = "Ada met Bob."
    ed_schema = schema_from_mapping({"events": {"Meet": {"roles": {"from": ["Entity"], "to": ["Entity"]}}}})
    ed = STYLE.prompt_for(ed_schema, text)
    grammar = CompletionGrammar(ed.answer_classes, ed.sentence_literal)
    assert _admits(grammar, 'results = [\n\tMeet("met")\n]')
    assert not _admits(grammar, 'results = [\n\tMeet(trigger = "met")')  # detection answers are trigger only
    eae = STYLE.argument_prompt(ed_schema, text, [EventInstance("Meet", "met")])
    grammar = CompletionGrammar(eae.answer_classes, eae.sentence_literal)
    assert _admits(grammar, 'results = [\n\tMeet(trigger = "met", from = [Entity("Ada")], to = [Entity("Bob")])\n]')
    assert not _admits(grammar, 'results = [\n\tMeet(trigger="met"')  # KnowCoder spaces its keywords
    assert not _admits(grammar, 'results = [\n\tMeet(trigger = "met", from_ = [')
    re_prompt = STYLE.prompt_for(ner.subset(ner.relations), text)
    grammar = CompletionGrammar(re_prompt.answer_classes, re_prompt.sentence_literal)
    assert _admits(grammar, 'results = [\n\tKnows(Person("Ada"), Person("Bob"))\n]')
    assert not _admits(grammar, 'results = [\n\tPerson("Ada")')  # the RE task answers relations only


def _pipeline(scripted, schema, answer):
    config, model = scripted(by_prompt=answer)
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1", **schema.to_dict()},
                                   "model": config, "prompt": {"@misc": "spacy_codeie.KnowCoderPrompt.v2"},
                                   "window_size": 2000})
    return nlp, model


def test_two_stage_events_land_on_the_doc_with_the_prompts_knowcoder_saw(scripted):
    row = ROWS[2]  # argument extraction: Education, trigger "student"
    query = row["one-stage"]["zero-shot"]["prompt"]
    schema = schema_of(query)
    detection = STYLE.render_prompt(schema, row["sentence"])
    answers = {detection: 'results = [\n\tEducation("student")\n]', in_template(query): row["one-stage"]["output"]}
    nlp, model = _pipeline(scripted, schema, lambda prompt: answers.get(prompt, "results = []"))
    doc = nlp(row["sentence"])
    assert [p for call in model.calls for doc_prompts in call for p in doc_prompts] == [detection, in_template(query)]
    (event,) = doc._.events
    assert event.label == "Education" and event.trigger.text == "student"
    assert {role: [s.text for s in spans] for role, spans in event.arguments.items()} == {
        "institution": ["American University of Beirut"], "student": ["George Habash"]}
    assert doc.user_data[DIAGNOSTICS_KEY]["prompts"] == 2


def test_a_detected_event_stays_when_argument_extraction_adds_nothing(scripted):
    row = ROWS[2]
    schema = schema_of(row["one-stage"]["zero-shot"]["prompt"])
    nlp, model = _pipeline(scripted, schema, lambda prompt: 'results = [\n\tEducation("student")\n]'
                           if "arg_names" in prompt else "results = []")
    (event,) = nlp(row["sentence"])._.events
    assert event.label == "Education" and event.trigger.text == "student" and not event.arguments


def test_entities_of_the_ner_row_land_on_the_doc(scripted):
    row = next(r for r in ROWS if "entities" in r)
    schema = schema_of(row["one-stage"]["zero-shot"]["prompt"])
    nlp, _ = _pipeline(scripted, schema, lambda prompt: row["one-stage"]["output"])
    doc = nlp(row["sentence"])
    found = {(s.label_, s.text) for s in doc.spans["codeie"]}
    assert found == {(e["type"].capitalize(), e["name"]) for e in row["entities"]}
    assert ("Event", "Expressions of Interest") in found
