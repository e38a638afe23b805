"""SFT records: augmentations, derived relations, and the round trip of every record through the component."""
import random
from dataclasses import replace

import pytest
import srsly

from conftest import shared_file
from spacy_codeie.errors import CodeIEError
from spacy_codeie.prompting.knowcoder import KnowCoderPrompt
from spacy_codeie.schema import schema_from_dict
from spacy_codeie.schema.loaders import schema_from_json
from spacy_codeie.training.augment import AugmentSettings, choose_types, schema_view
from spacy_codeie.training.derived import event_relation_types, relation_record, relation_schema
from spacy_codeie.training.dpo import CompletionScorer, DPOSettings, pick_prompts
from spacy_codeie.training.records import DatasetSpec, build_sft_records, dev_sft_records

SCHEMA = schema_from_dict(entities={"PER": "a person", "ORG": "an organization", "LOC": "a place",
                                    "MISC": "other names"})


def test_negative_sampling_keeps_positives_and_adds_only_absent_types():
    settings = AugmentSettings(full_schema_rate=0.0, negative_types=1, positive_dropout=0.0)
    for seed in range(30):
        chosen = {t.label for t in choose_types(SCHEMA, frozenset({"PER", "ORG"}), settings, random.Random(seed))}
        assert {"PER", "ORG"} <= chosen
        assert len(chosen - {"PER", "ORG"}) == 1


def test_positive_dropout_never_hides_every_positive_and_something_is_always_asked():
    settings = AugmentSettings(full_schema_rate=0.0, negative_types=0, positive_dropout=1.0)
    chosen = choose_types(SCHEMA, frozenset({"PER", "ORG"}), settings, random.Random(0))
    assert len(chosen) == 1 and chosen[0].label in {"PER", "ORG"}
    assert len(choose_types(SCHEMA, frozenset(), settings, random.Random(0))) == 1


def test_off_shows_the_schema_as_inference_does():
    view = schema_view(SCHEMA, frozenset({"PER"}), AugmentSettings.off(), random.Random(0))
    assert view.schema == SCHEMA and view.targets == frozenset(t.label for t in SCHEMA.types)
    assert view.applied == ()


def test_masking_renames_classes_and_guideline_dropout_clears_docstrings():
    masked = schema_view(SCHEMA, frozenset(), AugmentSettings(full_schema_rate=1.0, shuffle_types=False,
                                                             name_masking=1.0, guideline_dropout=0.0),
                         random.Random(0))
    assert all(e.class_name.startswith("Type") and e.description for e in masked.schema.entities)
    assert [e.label for e in masked.schema.entities] == [e.label for e in SCHEMA.entities]
    bare = schema_view(SCHEMA, frozenset(), AugmentSettings(full_schema_rate=1.0, name_masking=0.0,
                                                           guideline_dropout=1.0), random.Random(0))
    assert all(not e.description for e in bare.schema.entities)
    assert {e.class_name for e in bare.schema.entities} == {e.class_name for e in SCHEMA.entities}


def test_a_view_asks_for_every_class_it_shows_and_masks_each_name_once_across_kinds():
    schema = schema_from_dict(entities={"PER": "a person", "ORG": "an organization"},
                              relations={"WORKS_FOR": {"head": "PER", "tail": "ORG", "description": "employment"}})
    settings = AugmentSettings(full_schema_rate=0.0, negative_types=0, positive_dropout=0.0, name_masking=1.0)
    for seed in range(20):
        view = schema_view(schema, frozenset({"WORKS_FOR"}), settings, random.Random(seed))
        assert {e.label for e in view.schema.entities} == {"PER", "ORG"}  # shown for the relation's arguments
        assert view.targets == {"PER", "ORG", "WORKS_FOR"}  # so their mentions belong in the answer too
        names = [t.class_name for t in view.schema.types]
        assert len(set(names)) == len(names) and all(n.startswith("Type") for n in names)


@pytest.mark.parametrize("bad", [{"positive_dropout": 1.5}, {"negative_types": -2}, {"name_masking": -0.1}])
def test_bad_augment_settings(bad):
    with pytest.raises(CodeIEError):
        AugmentSettings(**bad)


def test_relations_derived_from_events():
    schema = schema_from_dict(events={"ATTACK": {"roles": {"attacker": ["Entity"], "target": ["Entity"],
                                                          "place": ["Entity"]}}})
    text = "Rebels attacked the town of Aden."
    record = {"text": text, "events": [{"label": "ATTACK", "trigger": {"start": 7, "end": 15, "text": "attacked"},
                                        "arguments": [{"start": 0, "end": 6, "text": "Rebels", "role": "attacker"},
                                                      {"start": 16, "end": 24, "text": "the town", "role": "target"}]}]}
    types = event_relation_types(schema, [record])
    assert types == {"ATTACK attacker target": ("ATTACK", "attacker", "target")}
    rewritten = relation_record(record, types)
    assert [e["text"] for e in rewritten["entities"]] == ["Rebels", "the town"]
    assert rewritten["relations"] == [{"head": 0, "tail": 1, "label": "ATTACK attacker target"}]
    assert rewritten["events"] == []
    assert relation_schema(schema, types).relations[0].class_name == "AttackAttackerTarget"

    record["events"][0]["arguments"].append({"start": 28, "end": 32, "text": "Aden", "role": "place"})
    typed = relation_record(record, types, typed=True)
    assert [(e["text"], e["label"]) for e in typed["entities"]] == [("Rebels", "attacker"), ("the town", "target"),
                                                                     ("Aden", "place")]  # every argument span
    assert typed["relations"] == [{"head": 0, "tail": 1, "label": "ATTACK attacker target"}]
    typed_schema = relation_schema(schema, types, typed=True)
    assert [e.class_name for e in typed_schema.entities] == ["Attacker", "Target", "Place"]
    assert (typed_schema.relations[0].head, typed_schema.relations[0].tail) == (("attacker",), ("target",))


def test_triggerless_gold_events_are_left_out_of_code_style_records_with_a_warning():
    import spacy

    from spacy_codeie.gold import gold_instances, present_labels
    from spacy_codeie.instances import EventInstance, Mention
    from spacy_codeie.prompting.knowcoder import KnowCoderPrompt
    from spacy_codeie.readers import GoldConverter
    from spacy_codeie.training.records import sft_records_for

    schema = schema_from_dict(events={"ATTACK": {"roles": {"attacker": ["Entity"], "target": ["Entity"]}},
                                      "MEET": {"roles": {"place": ["Entity"]}}})
    text = "Rebels attacked the town. They met in Aden."
    record = {"text": text, "events": [
        {"label": "ATTACK", "trigger": {"start": 7, "end": 15, "text": "attacked"},
         "arguments": [{"start": 0, "end": 6, "text": "Rebels", "role": "attacker"}]},
        {"label": "MEET", "trigger": None, "arguments": [{"start": 38, "end": 42, "text": "Aden", "role": "place"}]}]}
    with pytest.warns(UserWarning, match="left out trigger-less events"):
        (sft,) = sft_records_for([record], schema, dataset="d", lang="en", prompt=KnowCoderPrompt(),
                                 augment=AugmentSettings.off(), seed=0)
    assert 'Attack(trigger="attacked"' in sft["completion"] and "Meet(" not in sft["completion"]
    assert sft["instances"] == 1
    doc = GoldConverter(spacy.blank("en")).doc(record)
    assert present_labels(doc, doc[:]) == {"ATTACK", "MEET"}
    assert present_labels(doc, doc[:5]) == {"ATTACK"}  # Aden, the trigger-less event's argument, is outside
    assert gold_instances(doc, doc[:], schema, frozenset({"MEET"}), triggerless=True) == [
        EventInstance("MEET", "", (("place", Mention("Aden")),))]  # for styles whose answers name no trigger


@pytest.mark.parametrize("dataset,lang,derive,arguments", [
    ("conll04", "en", "off", "untyped"), ("phee", "en", "also", "untyped"), ("phee", "en", "only", "typed"),
    ("fewfc_zh", "zh", "only", "untyped"), ("fewfc_zh", "zh", "only", "typed"), ("wikiann", "xx", "off", "untyped"),
    ("phee", "en", "joint", "typed"), ("fewfc_zh", "zh", "joint", "typed")])
def test_every_augmented_record_round_trips_through_the_component(dataset, lang, derive, arguments):
    """A record's gold completion, parsed and aligned by the component, scores F1 = 1 against itself,
    and a wrong answer does not: the records say what the component reads back."""
    spec = DatasetSpec(dataset, str(shared_file(dataset, "train")), str(shared_file(dataset, "train").parent /
                       "labels.json"), lang, limit=25, relations_from_events=derive, relation_arguments=arguments)
    records = build_sft_records([spec], augment=AugmentSettings(full_schema_rate=0.3, name_masking=0.3), seed=3)
    assert records
    scorer = CompletionScorer()
    with_instances = [r for r in records if r["instances"]]
    assert with_instances
    for record in records:
        assert record["prompt"].endswith("results = [")
        assert scorer.score(record, record["completion"]) == 1.0
    assert all(scorer.score(r, "]") == 0.0 for r in with_instances)


def test_joint_records_ask_for_entities_relations_and_events_in_one_answer():
    path = shared_file("phee", "train")
    spec = DatasetSpec("phee", str(path), str(path.parent / "labels.json"), "en", limit=25,
                       relations_from_events="joint", relation_arguments="typed")
    records = build_sft_records([spec], augment=AugmentSettings.off(), seed=0)
    joint = [r for r in records if r["dataset"] == "phee-joint"]
    assert joint and len(records) == 2 * len(joint)  # the event records stay, as with "also"
    for record in joint:
        assert record["schema"]["entities"] and record["schema"]["relations"] and record["schema"]["events"]
    event_classes = [e["class_name"] for e in joint[0]["schema"]["events"].values()]
    relation_classes = [r["class_name"] for r in joint[0]["schema"]["relations"].values()]
    both = [r["completion"] for r in joint
            if any(f"{c}(" in r["completion"] for c in event_classes)
            and any(f"{c}(" in r["completion"] for c in relation_classes)]
    assert both  # gold answers that hold a relation and an event together


def test_records_are_deterministic_and_capped(tmp_path):
    path = shared_file("wikiann", "train")
    spec = DatasetSpec("wikiann", str(path), str(path.parent / "labels.json"), "xx", limit=12)
    first = build_sft_records([spec], seed=1)
    assert len(first) == 12 and first == build_sft_records([spec], seed=1)
    assert first != build_sft_records([spec], seed=2)


def test_a_new_seed_draws_new_training_views_over_the_same_dev_split():
    path = shared_file("wikiann", "train")
    spec = DatasetSpec("wikiann", str(path), str(path.parent / "labels.json"), "xx", limit=12, dev=5)
    dev_a, dev_b, dev_c = {}, {}, {}
    stage_a = build_sft_records([spec], seed=1, dev=dev_a, dev_seed=0)
    stage_b = build_sft_records([spec], seed=2, dev=dev_b, dev_seed=0)
    build_sft_records([spec], seed=2, dev=dev_c)  # without dev_seed the split follows seed
    assert dev_a == dev_b and dev_a != dev_c
    assert stage_a != stage_b
    held = {r["text"] for r in dev_a["wikiann"]}
    assert len(held) == 5 and not any(r["text"] in held for r in stage_a + stage_b)


def _labels_file(path, entities, relations=()):
    srsly.write_json(path, {"entity": [{"label": label, "description": d} for label, d in entities.items()],
                            "relation": [{"label": r, "head": ["PER"], "tail": ["PER"]} for r in relations],
                            "event": []})
    return str(path)


def test_decoys_are_shown_as_absent_types_in_training_prompts_only(tmp_path):
    path = shared_file("wikiann", "train")
    decoys = _labels_file(tmp_path / "decoys.json", {"DISEASE": "an illness", "GENE": "a gene or protein"})
    spec = DatasetSpec("wikiann", str(path), str(path.parent / "labels.json"), "xx", limit=12, dev=3, decoys=decoys)
    dev = {}
    shown = AugmentSettings(full_schema_rate=1.0, shuffle_types=False, guideline_dropout=0.0, name_masking=0.0)
    records = build_sft_records([spec], augment=shown, seed=1, dev=dev)
    plain = build_sft_records([replace(spec, decoys="")], augment=shown, seed=1)
    assert all("class Disease(Entity)" in r["prompt"] and "class Gene(Entity)" in r["prompt"] for r in records)
    assert [r["completion"] for r in records] == [r["completion"] for r in plain]  # never an instance of a decoy
    assert not any("Disease" in r["prompt"] for r in plain)
    held = dev_sft_records([spec], dev, prompt=KnowCoderPrompt(), seed=1, window_size=1000, conversations=None)
    assert held and not any("Disease" in r["prompt"] for r in held)  # dev prompts are the inference schema


def test_bad_decoys_say_what_to_change(tmp_path):
    path = shared_file("wikiann", "train")
    own = _labels_file(tmp_path / "own.json", {"PER": "a person", "GENE": "a gene"})
    spec = DatasetSpec("wikiann", str(path), str(path.parent / "labels.json"), "xx", limit=2, decoys=own)
    with pytest.raises(CodeIEError, match=r"decoy types \['PER'\] are in its own schema"):
        build_sft_records([spec])
    related = _labels_file(tmp_path / "rel.json", {"GENE": "a gene"}, relations=["KNOWS"])
    with pytest.raises(CodeIEError, match="decoys are entity types only"):
        build_sft_records([replace(spec, decoys=related)])


@pytest.mark.parametrize("key,value", [("relations_from_events", "yes"), ("relation_arguments", "typd")])
def test_a_dataset_with_an_unknown_choice_is_refused_with_the_choices(key, value):
    with pytest.raises(CodeIEError, match=f"{key} must be one of .*not '{value}'"):
        DatasetSpec.from_dict("phee", {"path": "p.jsonl", "schema": "labels.json", key: value})
    assert getattr(DatasetSpec.from_dict("phee", {"path": "p", "schema": "s"}), key) in ("off", "untyped")


def test_docbin_corpora_are_read_too(tmp_path):
    import spacy

    from spacy_codeie.readers import jsonl_to_docbin

    path = shared_file("conll04", "test")
    jsonl_to_docbin(path, spacy.blank("en"), limit=5).to_disk(tmp_path / "c.spacy")
    from_docbin = build_sft_records([DatasetSpec("c", str(tmp_path / "c.spacy"), str(path.parent / "labels.json"))],
                                    augment=AugmentSettings.off())
    srsly.write_jsonl(tmp_path / "sub.jsonl", [r for i, r in enumerate(srsly.read_jsonl(path)) if i < 5])
    from_jsonl = build_sft_records([DatasetSpec("c", str(tmp_path / "sub.jsonl"), str(path.parent / "labels.json"))],
                                   augment=AugmentSettings.off())
    assert [r["completion"] for r in from_docbin] == [r["completion"] for r in from_jsonl]


def test_bad_dataset_specs():
    with pytest.raises(CodeIEError, match="unknown settings"):
        DatasetSpec.from_dict("x", {"path": "a", "schema": "b", "limt": 3})
    with pytest.raises(CodeIEError, match="needs a 'schema'"):
        DatasetSpec.from_dict("x", {"path": "a"})
    with pytest.raises(CodeIEError, match="relations_from_events"):
        DatasetSpec.from_dict("x", {"path": "a", "schema": "b", "relations_from_events": "yes"})
    with pytest.raises(CodeIEError, match="relation_arguments"):
        DatasetSpec.from_dict("x", {"path": "a", "schema": "b", "relation_arguments": "entities"})
    with pytest.raises(CodeIEError, match="No datasets"):
        build_sft_records([])
    assert schema_from_json(shared_file("conll04", "test").parent / "labels.json").relations


def test_dpo_prompts_are_a_seeded_pick_over_the_whole_file_in_file_order():
    records = [{"prompt": str(i), "dataset": "a" if i < 50 else "b"} for i in range(100)]
    picked = pick_prompts(records, 10, seed=3)
    positions = [int(r["prompt"]) for r in picked]
    assert len(picked) == 10 and positions == sorted(positions) and len(set(positions)) == 10
    assert {r["dataset"] for r in picked} == {"a", "b"}  # not the head of a file sorted by dataset
    assert pick_prompts(records, 10, seed=3) == picked and pick_prompts(records, 10, seed=4) != picked
    assert pick_prompts(records, 0, seed=3) == records and pick_prompts(records, 500, seed=3) == records
    with pytest.raises(CodeIEError, match="max_prompts"):
        DPOSettings(max_prompts=-1)


def _train_data_config(path, data_lines):
    wikiann = shared_file("wikiann", "train")
    path.write_text("[data]\n" + data_lines + "\n\n[data.datasets]\n\n[data.datasets.wikiann]\n"
                    f'path = "{wikiann}"\nschema = "{wikiann.parent / "labels.json"}"\nlang = "xx"\n'
                    "dev = 4\nlimit = 10\n\n[augment]\n")
    return str(path)


def test_train_data_command_rebuilds_views_with_a_seed_override_and_keeps_dev(tmp_path, capsys):
    """`train-data CFG OUT --data.seed N`: a later stage's corpus, over the first stage's dev split."""
    from spacy_codeie.cli import main

    config = _train_data_config(tmp_path / "recipe.cfg", "seed = 0\ndev_seed = 0")
    assert main(["train-data", config, str(tmp_path / "s1" / "sft.jsonl")]) == 0
    assert main(["train-data", config, str(tmp_path / "s2" / "sft.jsonl"), "--data.seed", "2"]) == 0
    for name in ("wikiann.jsonl", "sft.jsonl"):
        assert (tmp_path / "s1" / "dev" / name).read_bytes() == (tmp_path / "s2" / "dev" / name).read_bytes()
    assert (tmp_path / "s1" / "sft.jsonl").read_bytes() != (tmp_path / "s2" / "sft.jsonl").read_bytes()


@pytest.mark.parametrize("data_lines, says", [
    ("seed = 0\ndev_sed = 0", "unknown settings ['dev_sed']"),
    ('seed = "zero"', "seed must be a whole number"),
    ("window_size = 0", "window_size must be at least 1"),
])
def test_train_data_refuses_a_data_section_it_would_misread(tmp_path, capsys, data_lines, says):
    from spacy_codeie.cli import main

    config = _train_data_config(tmp_path / "recipe.cfg", data_lines)
    assert main(["train-data", config, str(tmp_path / "sft.jsonl")]) == 2
    assert says in capsys.readouterr().err and not (tmp_path / "sft.jsonl").exists()
