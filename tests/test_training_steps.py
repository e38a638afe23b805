"""The recipe's steps on a tiny random model: LoRA SFT (and resume), DPO pairs, evaluation, packaging, xling."""
import json

import pytest
import spacy
import srsly

from conftest import shared_file
from spacy_codeie.errors import CodeIEError
from spacy_codeie.schema import schema_from_dict
from spacy_codeie.training.augment import AugmentSettings
from spacy_codeie.training.dpo import CompletionScorer, preference_pairs
from spacy_codeie.training.evaluate import EvalSet, evaluate_model, markdown_table, write_report
from spacy_codeie.training.finetune import (
    LoraSettings,
    SFTSettings,
    finetune,
    read_records,
    tokenize_records,
)
from spacy_codeie.training.package import package_pipeline
from spacy_codeie.training.records import DatasetSpec, build_sft_records
from spacy_codeie.training.xling import TranslationMemory, build_parallel, project_record, translated_instance_records


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory):
    path = shared_file("conll04", "train")
    records = build_sft_records([DatasetSpec("conll04", str(path), str(path.parent / "labels.json"), limit=6)])
    out = tmp_path_factory.mktemp("sft") / "sft.jsonl"
    srsly.write_jsonl(out, records)
    return out


def _model(folder):
    return {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": str(folder), "max_new_tokens": 8}


def test_completion_only_labels_and_end_of_turn(tiny_chat_model_dir, sft_file):
    from spacy_codeie.training.finetune import load_for_training

    backend, _ = load_for_training(_model(tiny_chat_model_dir))
    records = read_records(sft_file)
    data = tokenize_records(backend, records, max_length=100000)
    for record, row in zip(records, data.rows):
        prompt = backend.encode(record["prompt"])
        assert row["input_ids"][: len(prompt)] == prompt
        assert row["labels"][: len(prompt)] == [-100] * len(prompt)
        assert row["labels"][len(prompt):] == row["input_ids"][len(prompt):]
        assert row["input_ids"][-1] == backend.tokenizer.eos_token_id
        assert backend.tokenizer.decode(row["input_ids"][len(prompt):-1]) == record["completion"]
    shortest = min(len(r["input_ids"]) for r in data.rows)
    capped = tokenize_records(backend, records, max_length=shortest)
    assert capped.skipped_too_long == len(records) - sum(len(r["input_ids"]) <= shortest for r in data.rows)
    assert all(len(r["input_ids"]) <= shortest for r in capped.rows)  # skipped, never cut


def test_finetune_saves_adapter_log_and_plot_and_resumes(tiny_chat_model_dir, sft_file, tmp_path):
    settings = dict(batch_size=2, save_steps=1, logging_steps=1, progress=False, learning_rate=1e-2)
    first = finetune(_model(tiny_chat_model_dir), sft_file, tmp_path, lora=LoraSettings(r=2, alpha=4),
                     sft=SFTSettings(max_steps=2, save_total_limit=1, **settings))
    assert first["steps"] == 2 and first["resumed_from"] is None
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2"]  # the limit drops older ones
    assert (tmp_path / "adapter" / "adapter_config.json").is_file() and (tmp_path / "loss.png").stat().st_size > 0
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert [e["step"] for e in log["log"] if "loss" in e] == [1, 2]
    again = finetune(_model(tiny_chat_model_dir), sft_file, tmp_path, lora=LoraSettings(r=2, alpha=4),
                     sft=SFTSettings(max_steps=3, save_total_limit=0, **settings))
    assert again["resumed_from"].endswith("checkpoint-2") and again["steps"] == 3
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-3"]  # 0 keeps every one


def test_finetune_continues_from_a_saved_adapter_and_refuses_another_shape(tiny_chat_model_dir, sft_file, tmp_path):
    import torch
    from peft import get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from spacy_codeie.training.finetune import start_from_adapter

    settings = dict(batch_size=2, save_steps=1, logging_steps=1, progress=False, learning_rate=1e-2)
    finetune(_model(tiny_chat_model_dir), sft_file, tmp_path / "first", lora=LoraSettings(r=2, alpha=4),
             sft=SFTSettings(max_steps=2, **settings))
    saved = load_file(str(tmp_path / "first" / "adapter" / "adapter_model.safetensors"))
    fresh = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir), LoraSettings(r=2, alpha=4).peft_config())
    start_from_adapter(fresh, tmp_path / "first" / "adapter", LoraSettings(r=2, alpha=4))
    loaded = {k: v for k, v in fresh.state_dict().items() if "lora_B" in k}
    assert loaded and all(torch.equal(v, saved[k.replace(".default", "")]) for k, v in loaded.items())
    assert any(v.abs().sum() > 0 for v in loaded.values())  # lora_B starts at zero: these are the trained weights
    with pytest.raises(CodeIEError, match="r=2, alpha=4, but \\[lora\\] asks for r=4"):
        start_from_adapter(fresh, tmp_path / "first" / "adapter", LoraSettings(r=4, alpha=4))
    with pytest.raises(CodeIEError, match="not a peft adapter folder"):
        start_from_adapter(fresh, tmp_path, LoraSettings(r=2, alpha=4))
    second = finetune(_model(tiny_chat_model_dir), sft_file, tmp_path / "second", lora=LoraSettings(r=2, alpha=4),
                      sft=SFTSettings(max_steps=1, init_adapter=str(tmp_path / "first" / "adapter"), **settings))
    assert second["initialized_from"].endswith("adapter") and second["steps"] == 1


def test_finetune_refuses_bad_input(tiny_model_dir, tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "x"}\n')
    with pytest.raises(CodeIEError, match="not an SFT record"):
        finetune(_model(tiny_model_dir), tmp_path / "bad.jsonl", tmp_path / "out")
    with pytest.raises(CodeIEError, match="do not exist"):
        finetune(_model(tiny_model_dir), tmp_path / "missing.jsonl", tmp_path / "out")
    with pytest.raises(CodeIEError, match="max_steps"):
        SFTSettings(epochs=0)
    with pytest.raises(CodeIEError, match="save_total_limit"):
        SFTSettings(save_total_limit=-1)


def test_preference_pairs_prefer_the_better_completion(sft_file):
    records = [r for r in read_records(sft_file) if r["instances"]][:3]
    samples = [[r["completion"], "]", "]"] for r in records]
    pairs, stats = preference_pairs(records, samples, margin=0.5)
    assert len(pairs) == len(records) and stats["pairs"] == len(records)
    assert all(p["chosen"] == r["completion"] and p["rejected"] == "]" for p, r in zip(pairs, records))
    assert all(p["chosen_score"] == 1.0 and p["rejected_score"] == 0.0 for p in pairs)
    same, stats = preference_pairs(records, [["]", "]"] for _ in records], margin=0.0)
    assert same == [] and stats["below_margin"] == len(records)


def test_finetune_reports_the_dev_loss_at_each_checkpoint(tiny_chat_model_dir, sft_file, tmp_path):
    settings = dict(batch_size=2, save_steps=1, logging_steps=1, progress=False, learning_rate=1e-2)
    summary = finetune(_model(tiny_chat_model_dir), sft_file, tmp_path, lora=LoraSettings(r=2, alpha=4),
                       sft=SFTSettings(max_steps=2, dev_records=str(sft_file), **settings))
    assert [step for step, _ in summary["dev_losses"]] == [1, 2]
    assert all(0 < loss < 100 for _, loss in summary["dev_losses"])
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert log["summary"]["dev_losses"] == [list(point) for point in summary["dev_losses"]]


def test_evaluate_scores_with_the_component_scorer(tmp_path):
    """A model that answers with the gold completions scores 100 on the test set; one that answers
    nothing scores 0."""
    from spacy_codeie.gold import CompletionTable, gold_completions
    from spacy_codeie.pipeline import CodeIE
    from spacy_codeie.readers import GoldConverter, read_jsonl
    from spacy_codeie.schema.loaders import schema_from_json

    path = shared_file("conll04", "test")
    test = EvalSet("conll04", str(path), str(path.parent / "labels.json"), "en", limit=8)
    nlp = spacy.blank("en")
    component = CodeIE(nlp.vocab, schema=schema_from_json(test.schema), model=CompletionTable({}))
    gold = [GoldConverter(nlp).doc(r) for r in read_jsonl(path, 8)]
    perfect = CompletionTable(gold_completions(component, gold))
    results = evaluate_model(perfect, [test])
    scores = results["conll04"]["scores"]
    assert scores["codeie_ents_f"] == 1.0 and scores["codeie_rel_strict_f"] == 1.0
    empty = evaluate_model(CompletionTable({}), [test])["conll04"]["scores"]
    assert empty["codeie_ents_f"] == 0.0
    paths = write_report(results, tmp_path, "gold")
    assert "| gold | conll04 | 8 | 100.00 | 100.00 |" in paths["md"].read_text()
    assert "**conll04, entity errors by kind**" in paths["md"].read_text()
    missed = write_report(evaluate_model(CompletionTable({}), [test]), tmp_path / "empty", "empty")["md"].read_text()
    assert "| Peop | 0 | 0 | 0 | 0 |" in missed  # nothing predicted: every gold mention is missed, none correct
    assert paths["png"].stat().st_size > 0
    assert "| empty | conll04 | 8 | 0.00 |" in markdown_table({"empty": {"conll04": {"n_docs": 8, "scores": empty}}})


def test_package_carries_schema_and_adapter(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapter = tmp_path / "adapter"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(adapter)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(schema_from_dict(entities={"PERSON": "a human"}).to_dict()))
    out = package_pipeline({"name": "t", "lang": "en", "schema": str(schema)}, _model(tiny_model_dir), adapter,
                           tmp_path / "pkg", build=None)
    schema.unlink()
    adapter.rename(tmp_path / "moved")  # nothing may point at the original files
    nlp = spacy.load(out["pipeline"])
    component = nlp.get_pipe("codeie")
    assert component.model.has_adapter and component.labels == ("PERSON",)
    config = nlp.config["components"]["codeie"]
    assert config["model"].get("adapter") is None and config["schema"]["@misc"] == "spacy_codeie.schema_from_dict.v1"
    with pytest.raises(CodeIEError, match="schema"):
        package_pipeline({"name": "t"}, _model(tiny_model_dir), None, tmp_path / "pkg2", build=None)


TM = {"Ada Lovelace lives in London.": "Ada Lovelace wohnt in London.", "Ada Lovelace": "Ada Lovelace",
      "London": "London", "Bob works at IBM.": "Bob arbeitet bei Siemens.", "Bob": "Bob", "IBM": "IBM"}


def _record(text, mentions):
    return {"id": text[:3], "lang": "en", "text": text, "relations": [], "events": [],
            "entities": [{"start": text.index(m), "end": text.index(m) + len(m), "text": m, "label": lab}
                         for m, lab in mentions]}


def test_parallel_examples_keep_only_pairs_whose_mentions_are_found(tmp_path):
    (tmp_path / "tm.json").write_text(json.dumps(TM))
    records = [_record("Ada Lovelace lives in London.", [("Ada Lovelace", "PER"), ("London", "LOC")]),
               _record("Bob works at IBM.", [("Bob", "PER"), ("IBM", "ORG")]),
               _record("Untranslated.", [])]
    pairs, report = build_parallel(records, TranslationMemory(tmp_path / "tm.json"), source_lang="en",
                                   target_lang="de", progress=False)
    assert report.to_dict() == {"kept": 1, "dropped": {"mention not found in translation": 1, "empty translation": 1}}
    target = pairs[0]["target"]
    assert [(e["text"], e["label"]) for e in target["entities"]] == [("Ada Lovelace", "PER"), ("London", "LOC")]
    assert all(target["text"][e["start"]:e["end"]] == e["text"] for e in target["entities"])


def test_projection_finds_distinct_occurrences():
    source = _record("Paris and Paris.", [("Paris", "LOC")])
    source["entities"].append({"start": 10, "end": 15, "text": "Paris", "label": "LOC"})
    target, reason = project_record(source, "Paris und Paris.", {"Paris": "Paris"}, "de")
    assert reason == "" and sorted(e["start"] for e in target["entities"]) == [0, 10]


def test_projection_moves_a_triggerless_event_by_its_arguments():
    source = _record("Acme bought Bolt.", [])
    source["events"] = [{"trigger": None, "label": "BUY",
                         "arguments": [{"start": 0, "end": 4, "text": "Acme", "role": "buyer"},
                                       {"start": 12, "end": 16, "text": "Bolt", "role": "target"}]}]
    target, reason = project_record(source, "Bolt wurde von Acme gekauft.", {"Acme": "Acme", "Bolt": "Bolt"}, "de")
    assert reason == "" and target["events"] == [{"label": "BUY", "trigger": None, "arguments": [
        {"start": 15, "end": 19, "text": "Acme", "role": "buyer"}, {"start": 0, "end": 4, "text": "Bolt", "role": "target"}]}]


def test_translated_instance_prediction_record():
    schema = schema_from_dict(entities={"PER": "a person", "LOC": "a place"})
    pair = {"source": _record("Ada Lovelace lives in London.", [("Ada Lovelace", "PER"), ("London", "LOC")]),
            "target": {**_record("Ada Lovelace wohnt in London.", [("Ada Lovelace", "PER"), ("London", "LOC")]),
                       "lang": "de"}}
    (record,) = translated_instance_records([pair], schema, dataset="x", augment=AugmentSettings.off())
    prompt = record["prompt"]
    assert prompt.index('sentence = "Ada Lovelace lives in London."') < prompt.index('Loc("London")') \
        < prompt.index('sentence = "Ada Lovelace wohnt in London."')
    assert prompt.endswith("results = [")
    assert record["completion"] == '\n\tPer("Ada Lovelace"),\n\tLoc("London")\n]'
    assert CompletionScorer().score(record, record["completion"]) == 1.0


def test_exported_half_precision_adapter_loads_and_answers_alike(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from spacy_codeie.models import HuggingFaceModel
    from spacy_codeie.training.export import export_adapter

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(tmp_path / "full")
    style = {"@misc": "spacy_codeie.CompactPrompt.v1"}
    srsly.write_json(tmp_path / "full" / "prompt_style.json", style)
    sizes = export_adapter(tmp_path / "full", tmp_path / "half")
    assert sizes["target_bytes"] < sizes["source_bytes"]
    assert srsly.read_json(tmp_path / "half" / "prompt_style.json") == style
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(str(tmp_path / "half" / "adapter_model.safetensors")).values()} == {torch.float16}
    prompts = ["results = [", "Ada Lovelace worked for"]
    full = HuggingFaceModel(str(tiny_model_dir), adapter=str(tmp_path / "full"), max_new_tokens=8).generate(prompts)
    half = HuggingFaceModel(str(tiny_model_dir), adapter=str(tmp_path / "half"), max_new_tokens=8).generate(prompts)
    assert half == full
    with pytest.raises(CodeIEError, match="not a peft adapter"):
        export_adapter(tmp_path, tmp_path / "x")


def _dpo_config(path, model_dir, sampler_dir):
    path.write_text(f"""
[model]
@llm_models = "spacy_codeie.HuggingFace.v1"
name = "{model_dir}"
max_new_tokens = 8

[dpo_sampler]
@llm_models = "spacy_codeie.HuggingFace.v1"
name = "{sampler_dir}"
max_new_tokens = 8

[dpo]
samples = 2
max_prompts = 4
margin = 0.0
max_steps = 1
batch_size = 2
gradient_accumulation = 1
save_steps = 1
logging_steps = 1
mixed_precision = "no"
progress = false
""", encoding="utf8")
    return path


def test_dpo_samples_with_its_own_backend_then_trains_the_sft_adapter(tiny_chat_model_dir, sft_file, tmp_path,
                                                                     capsys):
    """`spacy_codeie dpo`: [dpo_sampler] samples the pairs, [model] trains against a frozen copy of the adapter."""
    from spacy_codeie.cli import main

    sft = finetune(_model(tiny_chat_model_dir), sft_file, tmp_path / "sft", lora=LoraSettings(r=2, alpha=4),
                   sft=SFTSettings(max_steps=1, batch_size=2, progress=False),
                   prompt_style={"@misc": "spacy_codeie.CompactPrompt.v1"})
    adapter = tmp_path / "sft" / "adapter"
    assert sft["steps"] == 1 and (adapter / "prompt_style.json").is_file()
    missing = _dpo_config(tmp_path / "missing.cfg", tiny_chat_model_dir, tmp_path / "no-such-model")
    assert main(["dpo", str(missing), str(sft_file), str(adapter), str(tmp_path / "dpo-missing")]) == 2
    assert "no-such-model" in capsys.readouterr().err  # the sampler block is the one that samples
    config = _dpo_config(tmp_path / "dpo.cfg", tiny_chat_model_dir, tiny_chat_model_dir)
    assert main(["dpo", str(config), str(sft_file), str(adapter), str(tmp_path / "dpo")]) == 0
    stats = json.loads((tmp_path / "dpo" / "pairs_stats.json").read_text())
    pairs = list(srsly.read_jsonl(tmp_path / "dpo" / "pairs.jsonl"))
    assert stats["prompts"] == 4 and stats["pairs"] == len(pairs) > 0
    assert all(p["chosen_score"] >= p["rejected_score"] and p["chosen"] != p["rejected"] for p in pairs)
    log = json.loads((tmp_path / "dpo" / "dpo_log.json").read_text())
    assert log["summary"]["steps"] == 1 and log["summary"]["pairs"] == len(pairs)
    trained = tmp_path / "dpo" / "adapter"
    assert (trained / "adapter_config.json").is_file() and not (trained / "ref").exists()
    for folder in (trained, tmp_path / "dpo" / "checkpoints" / "checkpoint-1"):  # the style the SFT adapter learnt
        assert json.loads((folder / "prompt_style.json").read_text()) == {"@misc": "spacy_codeie.CompactPrompt.v1"}
    with pytest.raises(CodeIEError, match="mixed_precision"):
        from spacy_codeie.training.dpo import DPOSettings

        DPOSettings(mixed_precision="fp8")


def test_dpo_pairs_are_tokenized_as_sft_and_inference_tokenize(tiny_chat_model_dir, sft_file):
    """The prompt as the backend encodes it, each answer on its own: an empty answer's "]" stays its own
    token after the prompt's "[" (tokenizing prompt + answer as one string can merge them)."""
    from spacy_codeie.training.dpo import token_ids
    from spacy_codeie.training.finetune import load_for_training

    backend, _ = load_for_training(_model(tiny_chat_model_dir))
    record = read_records(sft_file)[0]
    ids = token_ids(backend, {"prompt": record["prompt"], "chosen": record["completion"], "rejected": "]"})
    eos = backend.tokenizer.eos_token_id
    assert ids["prompt_ids"] == backend.encode(record["prompt"])
    assert ids["rejected_ids"] == backend.tokenizer("]", add_special_tokens=False)["input_ids"] + [eos]
    sft = tokenize_records(backend, [record], max_length=100000).rows[0]["input_ids"]
    assert ids["prompt_ids"] + ids["chosen_ids"] == sft  # the very tokens SFT trained on
