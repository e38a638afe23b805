"""The benchmark scripts still run end to end (on the tiny random model, so only the plumbing is checked)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import shared_file

REPO = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_scaling_writes_curves_table_and_plot(tmp_path):
    shared_file("conll2003_en", "test")
    _run("scaling.py", "--model", "tiny", "--docs", "2,4", "--lengths", "1,2", "--length-docs", "2",
         "--types", "2,6", "--type-docs", "2", "--max-new-tokens", "8", "--out", str(tmp_path))
    data = json.loads((tmp_path / "scaling.json").read_text())
    assert [p["n_docs"] for p in data["docs"]] == [2, 4]
    assert [(p["n_types"], p["prefix_cache"]) for p in data["types"]] == [(2, False), (2, True), (6, False),
                                                                          (6, True)]
    cached = [p for p in data["types"] if p["prefix_cache"]]
    assert all(p["cached_prompt_tokens"] > 0 for p in cached)
    assert all(p["cached_prompt_tokens"] == 0 for p in data["types"] if not p["prefix_cache"])
    assert (tmp_path / "scaling.png").stat().st_size > 1000
    assert "| schema types |" in (tmp_path / "scaling.md").read_text()


def test_decoding_compares_the_three_settings(tmp_path):
    shared_file("conll2003_en", "test")
    _run("decoding.py", "--model", "tiny", "--limit", "2", "--sets", "conll2003_en", "--max-new-tokens", "8",
         "--out", str(tmp_path))
    runs = json.loads((tmp_path / "decoding.json").read_text())["runs"]
    assert set(runs) == {"plain", "prefix", "constrained"}
    # The prefix cache must not change a single completion.
    assert runs["prefix"]["identical_to_plain"] == "2/2"
    assert runs["constrained"]["sets"]["CoNLL-2003"]["hallucination rate"] in (0.0, None)


def test_throughput_reports_the_component_overhead(tmp_path):
    variants = "a,a0,bprime"
    shared_file("conll2003_en", "test")
    out = tmp_path / "throughput.json"
    _run("throughput.py", "--model", "tiny", "--docs", "4", "--batch-size", "2", "--max-new-tokens", "8",
         "--variants", variants, "--threads", "1", "--json-out", str(out))
    summary = json.loads(out.read_text())["summary"]
    assert all(summary["rows"][v]["ok"] for v in variants.split(","))
    # a0 does exactly the raw variant's work: the same prompts, the same number of generated tokens.
    assert summary["ratios"]["generated_tokens_a0_minus_bprime"] == 0
    assert isinstance(summary["ratios"]["component_overhead_vs_bprime_pct"], float)
    assert summary["codeie_settings"]["prefix_cache"] is True


def test_throughput_compares_whole_configurations(tmp_path, tiny_chat_model_dir):
    shared_file("conll2003_en", "test")
    out = tmp_path / "compare.json"
    block = {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": str(tiny_chat_model_dir), "max_new_tokens": 4}
    configs = {"first": block, "second": dict(block, batch_size=1, dtype="bfloat16"),
               "int8": dict(block, merge_adapter=True, **{"benchmark:int8_dynamic": True})}
    done = _run("throughput.py", "--docs", "3", "--batch-size", "1", "--threads", "1", "--compare",
                json.dumps(configs), "--json-out", str(out))
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["first", "second", "int8"]
    assert all(r["ok"] and r["docs"] == 3 and r["prompt_style"] == "KnowCoderPrompt" for r in results.values())
    assert all(r["generated_tokens"] > 0 for r in results.values())
    assert results["second"]["backend_settings"]["dtype"] == "torch.bfloat16"
    assert results["int8"]["int8_linear_layers"] > 0 and results["first"]["int8_linear_layers"] == 0
    assert "| first | KnowCoderPrompt |" in done.stdout and "| 1.00 |" in done.stdout


def test_throughput_runs_an_entry_on_another_checkout_and_the_component_default(tmp_path, tiny_chat_model_dir):
    import shutil

    shared_file("conll2003_en", "test")
    checkout = tmp_path / "older"
    shutil.copytree(REPO / "spacy_codeie", checkout / "spacy_codeie",
                    ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    block = {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": str(tiny_chat_model_dir), "max_new_tokens": 4}
    out = tmp_path / "compare.json"
    configs = {"then": dict(block, **{"benchmark:checkout": str(checkout)}), "now": block}
    _run("throughput.py", "--docs", "2", "--batch-size", "1", "--threads", "1", "--compare", json.dumps(configs),
         "--json-out", str(out))
    results = json.loads(out.read_text())["results"]
    assert results["then"]["code"] == str(checkout) and results["now"]["code"] == str(REPO)
    assert results["now"]["model_registered_as"] == "spacy_codeie.HuggingFace.v1"
    missing = subprocess.run([sys.executable, str(REPO / "benchmarks" / "throughput.py"), "--docs", "2", "--compare",
                              json.dumps({"then": {"benchmark:checkout": str(tmp_path / "nowhere")}})],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "holds no spacy_codeie package" in missing.stderr


def test_grammar_engines_measures_both_engines_on_the_same_prompts(tmp_path):
    shared_file("conll2003_en", "test")
    shared_file("casie", "test")
    _run("grammar_engines.py", "--tokenizer", "tiny", "--limit", "3", "--sets", "conll2003_en,casie",
         "--memory-prompts", "4", "--out", str(tmp_path))
    result = json.loads((tmp_path / "grammar_engines.json").read_text())
    total = result["total"]
    assert total["prompts"] == 6 and total["admitted"] == {"automaton": 6, "llguidance": 6}
    # Without forcing, llguidance's masks are the automaton's at every step of every gold answer.
    assert total["masks"]["llguidance-noforce"]["same"] > 0
    assert total["masks"]["llguidance-noforce"]["narrower"] + total["masks"]["llguidance-noforce"]["other"] == 0
    assert all(c["automaton"] == c["llguidance"] == c["total"] for c in total["corrupted"].values())
    assert total["corrupted"]["role twice"]["total"] == 3  # CASIE's events have roles
    assert {"automaton", "llguidance"} <= set(result["memory"])
    assert "| CASIE | 3 |" in (tmp_path / "grammar_engines.md").read_text()


def test_base_models_counts_tokens_per_language_and_times_lora_training(tmp_path, tiny_chat_model_dir, tiny_model_dir):
    records = tmp_path / "sft.jsonl"
    rows = [{"lang": "en", "turns": [{"prompt": "Find people. results = [", "completion": 'Person("Ada")]'}]},
            {"lang": "zh", "prompt": "找人。 results = [", "completion": 'Person("李白")]'}]
    records.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf8")
    out = tmp_path / "bases.json"
    done = _run("base_models.py", "--records", str(records), "--base", f"chat={tiny_chat_model_dir}",
                "--base", f"plain={tiny_model_dir}", "--steps", "1", "--threads", "1", "--json-out", str(out))
    bases = json.loads(out.read_text())["bases"]
    assert list(bases) == ["chat", "plain"]
    for row in bases.values():
        assert set(row["tokens_per_record"]) == {"en", "zh"} and row["train_tokens_per_second"] > 0
        expected = row["train_tokens_per_second"] / row["tokens_per_record"]["en"]
        assert abs(row["records_per_second"]["en"] - expected) <= 0.001 * expected + 0.001
    assert bases["chat"]["chat_template"] and "| chat |" in done.stdout
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "base_models.py"), "--records", str(records),
                          "--base", "nopath"], capture_output=True, text=True)
    assert bad.returncode == 2 and "NAME=PATH" in bad.stderr


def test_answer_loss_times_both_losses_on_one_batch_and_they_agree(tmp_path, tiny_chat_model_dir):
    records = tmp_path / "sft.jsonl"
    turns = [{"prompt": "Find people. results = [", "completion": 'Person("Ada")]'},
             {"prompt": "Ada met Bob. results = [", "completion": 'Person("Ada"), Person("Bob")]'}]
    records.write_text("".join(json.dumps({"lang": "en", "turns": turns}) + "\n" for _ in range(3)), encoding="utf8")
    out = tmp_path / "answer_loss.json"
    done = _run("answer_loss.py", "--records", str(records), "--base", f"tiny={tiny_chat_model_dir}", "--steps", "1",
                "--threads", "1", "--fp32", "--json-out", str(out))
    row = json.loads(out.read_text())["bases"]["tiny"]
    assert 0 < row["answer_tokens"] < row["batch_tokens"] and row["padded_shape"][0] == 2
    losses = list(row["loss_on_same_weights"].values())
    assert abs(losses[0] - losses[1]) < 1e-5 and losses[0] > 0
    assert all(s > 0 for s in row["seconds_per_step"].values()) and "| tiny |" in done.stdout
