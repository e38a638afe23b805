"""Conversation records: several sentences under one rendering of the classes, a loss on every answer."""
import json
import random

import pytest

from conftest import shared_file
from spacy_codeie.instances import EntityInstance, Mention, RelationInstance
from spacy_codeie.prompting import CompactPrompt
from spacy_codeie.schema import schema_from_dict
from spacy_codeie.training.augment import AugmentSettings, SchemaView
from spacy_codeie.training.conversations import (
    abbreviation,
    answered_as,
    conversation_records,
    merge_entity_types,
    rename_labels,
    split_entity_types,
)
from spacy_codeie.training.finetune import conversation_ids, load_for_training, tokenize_records
from spacy_codeie.training.records import (
    ConversationSettings,
    DatasetSpec,
    build_sft_records,
    dev_sft_records,
    split_dev,
)

RECORDS = [
    {"id": str(i), "lang": "en", "text": text, "relations": [], "events": [],
     "entities": [{"start": text.index(m), "end": text.index(m) + len(m), "label": "PER", "text": m} for m in ms]}
    for i, (text, ms) in enumerate([("Ada met Bob.", ["Ada", "Bob"]), ("Nothing here.", []),
                                    ("Carl left.", ["Carl"]), ("Dora and Eve sang.", ["Dora", "Eve"])])
]


def _backend(folder):
    backend, _ = load_for_training({"@llm_models": "spacy_codeie.HuggingFace.v1", "name": str(folder)})
    return backend


def test_conversations_cover_every_window_once_with_gold_answers():
    schema = schema_from_dict(entities={"PER": "person"})
    convs = list(conversation_records(RECORDS, schema, dataset="toy", lang="en", prompt=CompactPrompt(),
                                      augment=AugmentSettings.off(), seed=0, max_turns=3))
    assert sorted(i for c in convs for i in c["id"].split("+")) == ["0#0", "1#0", "2#0", "3#0"]
    answers = {t["prompt"].rsplit('sentence = "', 1)[1].split('"')[0]: t["completion"] for c in convs for t in c["turns"]}
    assert answers == {"Ada met Bob.": 'Per("Ada"), Per("Bob")]', "Nothing here.": "]", "Carl left.": 'Per("Carl")]',
                       "Dora and Eve sang.": 'Per("Dora"), Per("Eve")]'}
    assert all(len(c["turns"]) <= 3 for c in convs)


def test_every_answer_has_a_loss_and_the_first_turn_is_the_inference_prompt(tiny_chat_model_dir):
    backend = _backend(tiny_chat_model_dir)
    schema = schema_from_dict(entities={"PER": "person"})
    solved = [(r["text"], [EntityInstance("PER", e["text"]) for e in r["entities"]]) for r in RECORDS]
    turns = CompactPrompt().render_conversation(schema, solved)
    ids, labels, kept = conversation_ids(backend, turns, max_length=100000)
    assert kept == len(turns)
    first = backend.encode(turns[0]["prompt"])
    assert ids[: len(first)] == first and labels[: len(first)] == [-100] * len(first)
    # the labelled stretches are exactly the answers, each closed by the end-of-turn token
    stretches, current = [], []
    for token, label in zip(ids, labels):
        if label != -100:
            assert label == token
            current.append(token)
        elif current:
            stretches.append(current)
            current = []
    if current:
        stretches.append(current)
    eos = backend.tokenizer.eos_token_id
    assert [backend.tokenizer.decode(s[:-1]) for s in stretches] == [t["completion"] for t in turns]
    assert all(s[-1] == eos for s in stretches)
    # the whole sequence is the last turn's prompt followed by its answer
    assert backend.tokenizer.decode(ids[:-1]) == backend.format_prompt(turns[-1]["prompt"]) + turns[-1]["completion"]


def test_a_base_without_chat_template_chains_turns_and_ends_only_the_last_answer(tiny_model_dir):
    backend = _backend(tiny_model_dir)
    assert not backend.chat_template
    schema = schema_from_dict(entities={"PER": "person"})
    solved = [(r["text"], [EntityInstance("PER", e["text"]) for e in r["entities"]]) for r in RECORDS]
    turns = CompactPrompt().render_conversation(schema, solved)
    ids, labels, kept = conversation_ids(backend, turns, max_length=100000)
    assert kept == len(turns)  # one sequence, not one record per turn with the earlier turns repeated
    eos = backend.tokenizer.eos_token_id
    assert ids.count(eos) == 1 and ids[-1] == eos and labels[-1] == eos
    # the sequence reads as the last turn's prompt and answer, as inference would tokenize each stretch
    assert backend.tokenizer.decode(ids[:-1]) == backend.format_prompt(turns[-1]["prompt"]) + turns[-1]["completion"]
    answered = backend.tokenizer.decode([t for t, label in zip(ids, labels) if label != -100][:-1])
    assert answered == "".join(t["completion"] for t in turns)
    # dropping turns for length keeps the end-of-sequence token on the last answer kept
    two, _, _ = conversation_ids(backend, turns[:2], max_length=100000)
    cut, cut_labels, cut_kept = conversation_ids(backend, turns, max_length=len(two))
    assert cut_kept == 2 and cut == two and cut[-1] == eos and cut_labels[-1] == eos


def test_turns_over_max_length_are_dropped_whole(tiny_chat_model_dir):
    backend = _backend(tiny_chat_model_dir)
    schema = schema_from_dict(entities={"PER": "person"})
    turns = CompactPrompt().render_conversation(schema, [(r["text"], []) for r in RECORDS])
    full, _, _ = conversation_ids(backend, turns, max_length=100000)
    two, _, kept = conversation_ids(backend, turns[:2], max_length=100000)
    cut = conversation_ids(backend, turns, max_length=len(two))
    assert kept == 2 and cut[2] == 2 and cut[0] == two and len(full) > len(two)
    data = tokenize_records(backend, [{"turns": turns}], max_length=len(two))
    assert data.skipped_turns == len(turns) - 2 and len(data.rows) == 1


def test_renamed_labels_keep_labels_and_never_collide():
    schema = schema_from_dict(entities={"PER": "person", "ORG": "organization"})
    view = SchemaView(schema, frozenset({"PER", "ORG"}), ())
    renamed = rename_labels(view, {"per": ["Person", "Org"], "ORG": ["Organization"]}, 1.0, random.Random(0))
    names = {e.label: e.class_name for e in renamed.schema.entities}
    assert names["ORG"] == "Organization" and names["PER"] == "Person"  # "Org" was taken, never reused
    assert "rename" in renamed.applied


def test_abbreviated_class_names_are_short_unique_tags_and_keep_the_label():
    schema = schema_from_dict(entities={"PERSON": "a person", "Peop": "people", "ORGANIZATION": "an organization",
                                        "地名": "a place"})
    view = SchemaView(schema, frozenset(e.label for e in schema.entities), ())
    seen = set()
    for seed in range(20):
        out = rename_labels(view, {}, 0.0, random.Random(seed), abbreviate_rate=1.0)
        names = {e.label: e.class_name for e in out.schema.entities}
        assert len(set(names.values())) == len(names)  # never two classes of one name
        assert names["地名"] == "地名"  # no ASCII short form: left alone
        assert names["PERSON"] in {"Pers", "PERS", "Per", "PER"}
        assert names["ORGANIZATION"] in {"Org", "ORG", "Orga", "ORGA"}
        seen.add(names["PERSON"])
        assert "abbreviate" in out.applied
    assert len(seen) > 2  # both lengths and both cases are drawn
    undescribed = schema_from_dict(entities={"PERSON": ""})
    out = rename_labels(SchemaView(undescribed, frozenset({"PERSON"}), ()), {}, 0.0, random.Random(0), 1.0)
    assert out.schema.entities[0].class_name == "Person"  # nothing would say what a bare tag means
    assert abbreviation("Id", random.Random(0)) is None  # nothing shorter to give
    assert rename_labels(view, {}, 0.0, random.Random(0), abbreviate_rate=0.0) is view


def test_merged_types_are_one_described_class_and_their_mentions_answer_to_it():
    schema = schema_from_dict(entities={"PER": "a person", "ORG": "an organization", "LOC": "a place"},
                              relations={"LIVES_IN": {"head": "PER", "tail": "LOC"}})
    view = SchemaView(schema, frozenset({"PER", "ORG", "LOC", "LIVES_IN"}), ())
    assert merge_entity_types(view, 0.0, random.Random(0)) == (view, None)
    merges = set()
    for seed in range(10):
        coarse, merge = merge_entity_types(view, 1.0, random.Random(seed))
        # PER and LOC are named by LIVES_IN, so ORG has no partner: nothing to merge
        assert merge is None and coarse is view
    free = schema_from_dict(entities={"PER": "a person", "ORG": "an organization", "LOC": "a place"})
    view = SchemaView(free, frozenset({"PER", "ORG", "LOC"}), ("shuffle",))
    for seed in range(20):
        coarse, merge = merge_entity_types(view, 1.0, random.Random(seed))
        merged = next(e for e in coarse.schema.entities if e.label == merge.label)
        first, second = (next(e for e in free.entities if e.label == part) for part in merge.parts)
        assert merged.class_name == f"{first.class_name}Or{second.class_name}"
        assert merged.description == f"{first.description}; or {second.description}"
        assert len(coarse.schema.entities) == 2 and coarse.targets == {merge.label} | ({"PER", "ORG", "LOC"} -
                                                                                       set(merge.parts))
        assert coarse.applied == ("merge", "shuffle")
        merges.add(merge.parts)
    assert len({frozenset(parts) for parts in merges}) == 3  # every pair is drawn
    _, merge = merge_entity_types(view, 1.0, random.Random(1))
    a, b = merge.parts
    other = ({"PER", "ORG", "LOC"} - {a, b}).pop()
    gold = [EntityInstance(a, "X"), EntityInstance(other, "Y"), EntityInstance(b, "Z"), EntityInstance(b, "X"),
            RelationInstance("R", Mention("X", a), Mention("Y", other))]
    assert answered_as(gold, merge) == [EntityInstance(merge.label, "X"), EntityInstance(other, "Y"),
                                        EntityInstance(merge.label, "Z"), gold[-1]]


def test_conversations_with_merged_types_answer_every_mention_with_the_coarse_class():
    schema = schema_from_dict(entities={"PER": "a person", "ORG": "an organization"})
    records = [dict(r, entities=[dict(e, label="ORG" if e["text"] in ("Bob", "Eve") else "PER")
                                 for e in r["entities"]]) for r in RECORDS]
    convs = list(conversation_records(records, schema, dataset="toy", lang="en", prompt=CompactPrompt(),
                                      augment=AugmentSettings.off(), seed=0, max_turns=4, merge_rate=1.0))
    answers = {}
    for conv in convs:
        assert conv["augment"] == ["merge"]
        (merged,) = conv["schema"]["entities"].values()  # one class stands for both types
        name = merged["class_name"]
        assert name in ("PerOrOrg", "OrgOrPer") and f"class {name}(Entity)" in conv["turns"][0]["prompt"]
        for turn in conv["turns"]:
            answers[turn["text"]] = turn["completion"].replace(name, "C")
    assert answers == {"Ada met Bob.": 'C("Ada"), C("Bob")]', "Nothing here.": "]", "Carl left.": 'C("Carl")]',
                       "Dora and Eve sang.": 'C("Dora"), C("Eve")]'}


def test_split_shows_names_and_nominals_as_two_classes_and_answers_names_with_the_name_class():
    schema = schema_from_dict(entities={"PER": "a person"})
    convs = list(conversation_records(RECORDS, schema, dataset="toy", lang="en", prompt=CompactPrompt(),
                                      augment=AugmentSettings.off(), seed=0, max_turns=4, split_rate=1.0))
    for conv in convs:
        assert conv["augment"] == ["split"]
        classes = conv["schema"]["entities"]
        (nominal_label,) = set(classes) - {"PER"}
        name, nominal = classes["PER"]["class_name"], classes[nominal_label]["class_name"]
        assert name.startswith("Per") and nominal.startswith("Per") and name != nominal
        assert classes["PER"]["description"].startswith("a person, ")
        assert classes[nominal_label]["description"].startswith("a person, ")
        prompt = conv["turns"][0]["prompt"]
        assert f"class {name}(Entity)" in prompt and f"class {nominal}(Entity)" in prompt
        for turn in conv["turns"]:
            assert nominal not in turn["completion"]  # the corpus marks names only
        assert any(f'{name}("' in t["completion"] for t in conv["turns"]) or all(
            t["completion"] == "]" for t in conv["turns"])


def test_split_leaves_types_a_relation_names_and_never_fires_at_rate_zero():
    schema = schema_from_dict(entities={"PER": "person", "ORG": "organization", "LOC": "place"},
                              relations={"WORKS_FOR": {"head": "PER", "tail": "ORG"}})
    view = SchemaView(schema, frozenset({"PER", "ORG", "LOC", "WORKS_FOR"}), ())
    assert split_entity_types(view, 0.0, random.Random(0)) is view
    out = split_entity_types(view, 1.0, random.Random(0))
    labels = [e.label for e in out.schema.entities]
    assert labels[:2] == ["PER", "ORG"] and labels[2] == "LOC" and len(labels) == 4
    assert labels[3] in out.targets and labels[3].startswith("LOC.")
    assert out.applied == ("split",)


def test_dev_conversations_show_the_schema_as_at_inference_whatever_the_view_rates():
    path = shared_file("wikiann", "train")
    spec = DatasetSpec("wikiann", str(path), str(path.parent / "labels.json"), lang="xx", limit=30, dev=12)
    dev = {}
    varied = ConversationSettings(max_turns=3, rename_rate=1.0, synonyms_path="", abbreviate_rate=1.0,
                                  merge_rate=1.0, split_rate=1.0)
    build_sft_records([spec], prompt=CompactPrompt(), conversations=varied, dev=dev)
    held = dev_sft_records([spec], dev, prompt=CompactPrompt(), seed=0, window_size=1000, conversations=varied)
    assert held and all(record["augment"] == [] for record in held)


def test_dev_split_is_held_out_of_training(tmp_path):
    path = shared_file("wikiann", "train")
    dev = {}
    records = build_sft_records([DatasetSpec("wikiann", str(path), str(path.parent / "labels.json"), lang="xx",
                                             limit=40, dev=10)],
                                prompt=CompactPrompt(), conversations=ConversationSettings(max_turns=4), dev=dev)
    held = {r["id"] for r in dev["wikiann"]}
    assert len(held) == 10
    trained = {i.split("#")[0] for r in records for i in r["id"].split("+")}
    assert trained and not trained & held
    all_records = [json.loads(line) for line in path.open(encoding="utf8")]
    again, held_again = split_dev(all_records, 10, 0, "wikiann")
    assert {r["id"] for r in held_again} == held and len(again) == len(all_records) - 10


def test_conversation_settings_are_checked():
    with pytest.raises(Exception, match="max_turns"):
        ConversationSettings(max_turns=0)
    with pytest.raises(Exception, match="rename_rate"):
        ConversationSettings(rename_rate=2.0)
    with pytest.raises(Exception, match="abbreviate_rate"):
        ConversationSettings(abbreviate_rate=-0.1)
    with pytest.raises(Exception, match="split_rate"):
        ConversationSettings(split_rate=1.5)


def test_a_trained_adapter_declares_its_style_and_the_component_uses_it(tiny_chat_model_dir, tmp_path):
    import spacy
    import srsly

    from spacy_codeie.training.finetune import SFTSettings, finetune

    schema = schema_from_dict(entities={"PER": "person"})
    solved = [(r["text"], [EntityInstance("PER", e["text"]) for e in r["entities"]]) for r in RECORDS]
    records = tmp_path / "sft.jsonl"
    srsly.write_jsonl(records, [{"turns": CompactPrompt().render_conversation(schema, solved)}])
    block = {"@misc": "spacy_codeie.CompactPrompt.v1"}
    model = {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": str(tiny_chat_model_dir)}
    finetune(model, records, tmp_path / "run", sft=SFTSettings(max_steps=1, batch_size=1, save_steps=1,
                                                                progress=False), prompt_style=block)
    assert srsly.read_json(tmp_path / "run" / "adapter" / "prompt_style.json") == block
    assert srsly.read_json(tmp_path / "run" / "checkpoints" / "checkpoint-1" / "prompt_style.json") == block
    nlp = spacy.blank("en")
    component = nlp.add_pipe("codeie", config={
        "schema": {"@misc": "spacy_codeie.schema_from_dict.v1", "entities": {"PER": "person"}},
        "model": {**model, "adapter": str(tmp_path / "run" / "adapter"), "max_new_tokens": 4}})
    assert isinstance(component.prompt, CompactPrompt)
    nlp("Ada met Bob.")  # runs end to end under the compact style's constraint
    component.from_bytes(component.to_bytes())  # the adapter comes back from a temporary folder
    assert isinstance(component.model.prompt_style, CompactPrompt)
    nlp.to_disk(tmp_path / "pipeline")
    assert srsly.read_json(tmp_path / "pipeline" / "codeie" / "adapter" / "prompt_style.json") == block
