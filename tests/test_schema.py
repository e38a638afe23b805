import json

import pytest
import spacy

from spacy_codeie.errors import SchemaError
from spacy_codeie.schema import ANY_ENTITY, schema_from_dict, schema_from_file, schema_from_json, schema_from_mapping
from spacy_codeie.schema.types import class_name_from_label, parameter_name_from_role

ONTOLOGY = '''
from typing import List, Union
from spacy_codeie import Entity, Relation, Event

class Person(Entity):
    """
    Description: a human being.
    Examples: Ada Lovelace, Alan Turing
    """
    label = "PERSON"

class Org(Entity):
    """A company, agency or institution."""
    label = "ORG"

class Scientist(Person):
    """Description: a person who does science."""

class WorksFor(Relation):
    """
    Description: employment.
    Examples: (Ada Lovelace, Babbage Labs), (Alan Turing, NPL)
    """
    label = "WORKS_FOR"
    def __init__(self, head_entity: Person, tail_entity: Org): ...

class Knows(Relation):
    head: Union[Person, Scientist]
    tail: Person

class Acquisition(Event):
    """Description: one organisation buys another.
    Examples: bought, acquired"""
    label = "ACQUISITION"
    def __init__(self, trigger: str, buyer: List[Org], target: List["Org"], place: List[Entity] = []): ...

__import__("os").system("echo this file must never run")
'''


def test_dict_schema_derives_class_names_and_roles():
    schema = schema_from_dict(
        entities={"PERSON": "a human being", "ORG": {"description": "a company", "examples": ["Acme"]}},
        relations={"WORKS_FOR": {"head": "PERSON", "tail": ["ORG"], "description": "employment"}},
        events={"ACQUISITION": {"roles": {"buyer": ["ORG"], "Attack-Pattern": None}}},
    )
    assert [e.class_name for e in schema.entities] == ["Person", "Org"]
    assert schema.relations[0].class_name == "WorksFor"
    assert schema.relations[0].head == ("PERSON",) and schema.relations[0].tail == ("ORG",)
    roles = schema.events[0].roles
    assert [(r.name, r.parameter, r.types) for r in roles] == [
        ("buyer", "buyer", ("ORG",)), ("Attack-Pattern", "attack_pattern", (ANY_ENTITY,))]
    assert schema.entities[1].examples == ("Acme",)


def test_schema_file_is_read_not_run(tmp_path, capfd):
    path = tmp_path / "ontology.py"
    path.write_text(ONTOLOGY, encoding="utf8")
    schema = schema_from_file(path)
    assert capfd.readouterr().out == ""
    assert [e.label for e in schema.entities] == ["PERSON", "ORG", "Scientist"]
    person = schema.entities[0]
    assert person.description == "a human being." and person.examples == ("Ada Lovelace", "Alan Turing")
    assert schema.entities[1].description == "A company, agency or institution."
    works_for, knows = schema.relations
    assert (works_for.label, works_for.head, works_for.tail) == ("WORKS_FOR", ("PERSON",), ("ORG",))
    assert works_for.examples == (("Ada Lovelace", "Babbage Labs"), ("Alan Turing", "NPL"))
    assert knows.head == ("PERSON", "Scientist") and knows.tail == ("PERSON",)
    event = schema.events[0]
    assert event.examples == ("bought", "acquired")
    assert [(r.name, r.types) for r in event.roles] == [("buyer", ("ORG",)), ("target", ("ORG",)), ("place", ("Entity",))]


def test_dict_round_trip_through_json(tmp_path):
    schema = schema_from_dict(entities={"PER": "person", "LOC": "place"},
                              relations={"LIVES_IN": {"head": "PER", "tail": "LOC", "examples": [["Ada", "London"]]}},
                              events={"MOVE": {"roles": {"mover": ["PER"]}, "examples": ["moved"]}})
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema.to_dict()), encoding="utf8")
    assert schema_from_json(path) == schema


@pytest.mark.parametrize(
    "data, message",
    [
        ({"entities": {"PER": "x"}, "relations": {"R": {"head": "PER", "tail": "ORG"}}}, "tail type 'ORG'"),
        ({"entities": {"PER": "x"}, "events": {"E": {"roles": {"agent": ["ORG"]}}}}, "has type 'ORG'"),
        ({"entities": {"PER": "x", "per": "y"}}, "both become the class 'Per'"),
        ({"entities": {"123": "x"}}, "cannot become a Python class name"),
        ({"entities": {"X": {"class_name": "Entity"}}}, "reserved"),
        ({}, "defines no entity"),
        ({"entities": {"PER": {"desc": "x"}}}, "unknown field"),
        ({"events": {"E": {"roles": {"trigger": None}}}}, "cannot become a Python parameter"),
        ({"entities": {"PER": "x"}, "nodes": {}}, "unknown field"),
    ],
)
def test_invalid_schemas_say_what_to_fix(data, message):
    with pytest.raises(SchemaError, match=message):
        schema_from_mapping(data)


def test_explicit_class_name_rescues_a_label():
    schema = schema_from_dict(entities={"123": {"class_name": "Number123"}})
    assert schema.entities[0].class_name == "Number123"


def test_file_schema_errors(tmp_path):
    bad_type = tmp_path / "bad.py"
    bad_type.write_text("from spacy_codeie import Entity, Relation\nclass P(Entity): pass\n"
                        "class R(Relation):\n    head: P\n    tail: Company\n", encoding="utf8")
    with pytest.raises(SchemaError, match="'Company' is not an entity class"):
        schema_from_file(bad_type)
    orphan = tmp_path / "orphan.py"
    orphan.write_text("class P: pass\n", encoding="utf8")
    with pytest.raises(SchemaError, match="derives from none of"):
        schema_from_file(orphan)
    broken = tmp_path / "broken.py"
    broken.write_text("class P(Entity):\n  pass(\n", encoding="utf8")
    with pytest.raises(SchemaError, match="not valid Python"):
        schema_from_file(broken)
    with pytest.raises(SchemaError, match="does not exist"):
        schema_from_file(tmp_path / "missing.py")


@pytest.mark.parametrize("label, name", [("PERSON", "Person"), ("WORKS_FOR", "WorksFor"), ("GPE.NAM", "GpeNam"),
                                         ("Adverse_event", "AdverseEvent"), ("人名", "人名"), ("iPhone", "IPhone")])
def test_class_names_from_labels(label, name):
    assert class_name_from_label(label) == name


def test_role_names():
    assert parameter_name_from_role("Subject.Age") == "subject_age"
    assert parameter_name_from_role("obj-org") == "obj_org"


def test_shared_label_files_load(tmp_path):
    from conftest import SHARED_DATA

    files = sorted(SHARED_DATA.glob("*/labels.json"))
    if not files:
        pytest.skip("shared data not present")
    for path in files:
        schema = schema_from_json(path)
        assert not schema.is_empty, path


def test_bad_schema_fails_at_add_pipe():
    nlp = spacy.blank("en")
    with pytest.raises(SchemaError, match="relation 'R' has head type 'X'"):
        nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1",
                                                  "entities": {"A": "a"}, "relations": {"R": {"head": "X", "tail": "A"}}},
                                       "model": {"@llm_models": "spacy_codeie.CompletionTable.v1"}})


@pytest.mark.parametrize("label, class_name", [("event", "EventType"), ("entity", "EntityType"),
                                               ("Relation", "RelationType"), ("misc", "Misc")])
def test_labels_that_would_shadow_a_prompt_class_get_another_class_name(label, class_name):
    schema = schema_from_mapping({"entities": {label: "x"}, "events": {"E": {"roles": {"agent": [label]}}}})
    assert schema.entities[0].class_name == class_name
    assert schema.entities[0].label == label


SMALL = {"entities": {"PER": "a person"}}


def test_a_schema_file_with_a_byte_order_mark_loads(tmp_path):
    as_json = tmp_path / "schema.json"
    as_json.write_bytes(b"\xef\xbb\xbf" + json.dumps(SMALL).encode("utf8"))
    as_python = tmp_path / "ontology.py"
    as_python.write_bytes(b"\xef\xbb\xbf" + ONTOLOGY.encode("utf8"))
    assert [e.label for e in schema_from_json(as_json).entities] == ["PER"]
    assert [e.label for e in schema_from_file(as_python).entities] == ["PERSON", "ORG", "Scientist"]


@pytest.mark.parametrize("name, content, message", [
    ("bad.json", b'{"entities": {"P\xff": "x"}}', "not UTF-8 text.*Save it with UTF-8"),
    ("bad.py", b"class P\xc3(Entity): pass\n", "not UTF-8 text"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    ("deep.py", b"x = " + b"-" * 200_000 + b"1\n", "nests too deeply|not valid Python"),
    ("deep_annotation.py", b"from spacy_codeie import Entity, Relation\nclass P(Entity): pass\n"
                           b"class R(Relation):\n    head: P" + b" | P" * 50_000 + b"\n    tail: P\n",
     "nests too deeply"),
    ("list.json", b'[{"label": "PER"}]', "holds a JSON array"),
    ("string.json", b'"PER"', "holds a JSON string"),
    ("nul.py", b"class P(Entity): pass\x00\n", "not Python source|not valid Python"),
    ("labels.json", b'{"entity": [{"label": "PER"}, {"description": "no label"}]}', "Item 1 of 'entity'.*'label'"),
    ("labels2.json", b'{"entity": "PER"}', "'entity' in labels.json must be a list"),
    ("labels3.json", b'{"event": [{"label": "E", "roles": [{"type": "x"}]}]}', "Item 0 of 'roles'.*'role'"),
    ("labels4.json", b'{"entity": [{"label": "PER", "description": 3}]}',
     "description of entity 'PER' must be a string"),
])
def test_broken_schema_files_say_what_to_fix(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    loader = schema_from_json if name.endswith(".json") else schema_from_file
    with pytest.raises(SchemaError, match=message):
        loader(path)


def test_a_huge_schema_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from spacy_codeie.schema import loaders

    monkeypatch.setattr(loaders, "MAX_SCHEMA_BYTES", 100)
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"entities": {f"E{i}": "x" for i in range(50)}}), encoding="utf8")
    with pytest.raises(SchemaError, match="at most 100"):
        schema_from_json(path)


@pytest.mark.parametrize("data, message", [
    (["PER"], "must be a dict"),
    ("PER", "must be a dict"),
    ({"entities": {1: "x"}}, "An entity label must be a non-empty string"),
    ({"entities": {"PER": {"description": ["x"]}}}, "description of entity 'PER' must be a string"),
    ({"entities": {"PER": {"class_name": 3}}}, "class_name of entity 'PER' must be a string"),
    ({"entities": {"PER": "x"}, "relations": {"R": {"head": "PER", "tail": "PER", "examples": "x"}}}, "list of"),
    ({"entities": {"PER": "x"}, "events": {"E": {"roles": {"a": {"parameter": ["a"]}}}}}, "parameter of role"),
    ({"entities": {"PER": {"examples": [[[[[[[["x"]]]]]]]]}}}, r"list of strings, not \[+\.\.\.\]+"),
])
def test_bad_dict_schemas_say_what_to_fix(data, message):
    with pytest.raises(SchemaError, match=message):
        schema_from_mapping(data)


def test_a_deeply_nested_dict_schema_fails_with_a_short_message():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(SchemaError, match=r"examples of entity 'PER' must be a list of strings") as err:
        schema_from_mapping({"entities": {"PER": {"examples": deep}}})
    assert len(str(err.value)) < 200
