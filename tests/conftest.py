"""Shared fixtures: a scripted model for exact outputs, and a tiny random transformers model built at test time."""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

import pytest
from spacy_llm.registry import registry as llm_registry

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_SENTENCE = re.compile(r'^sentence = (".*")$', re.M)


def sentence_of(prompt: str) -> str:
    """The sentence a KnowCoder prompt asks about (read with ast.literal_eval: it is our own prompt)."""
    return ast.literal_eval(_SENTENCE.search(prompt).group(1))


class ScriptedModel:
    """Answers each prompt with a fixed completion chosen by its sentence; records every call."""

    def __init__(self, responses: Optional[Dict[str, str]] = None, default: str = "]",
                 by_prompt: Optional[Callable[[str], str]] = None):
        self.responses = dict(responses or {})
        self.default = default
        self.by_prompt = by_prompt
        self.calls: List[List[List[str]]] = []

    def __call__(self, prompts: Iterable[Iterable[str]]) -> List[List[str]]:
        batch = [list(p) for p in prompts]
        self.calls.append(batch)
        out = []
        for doc_prompts in batch:
            answers = []
            for prompt in doc_prompts:
                if self.by_prompt is not None:
                    answers.append(self.by_prompt(prompt))
                else:
                    answers.append(self.responses.get(sentence_of(prompt), self.default))
            out.append(answers)
        return out


SCRIPTS: Dict[str, ScriptedModel] = {}


@llm_registry.llm_models("codeie_test.Scripted.v1")
def scripted_model(script: str = "default") -> ScriptedModel:
    """A model from the SCRIPTS table, so configs (and nlp.to_disk/spacy.load) can name it."""
    return SCRIPTS.setdefault(script, ScriptedModel())


@pytest.fixture
def scripted():
    """Install a ScriptedModel under a name and return (config dict, model)."""
    def make(responses=None, default="]", by_prompt=None, name="default"):
        model = ScriptedModel(responses, default, by_prompt)
        SCRIPTS[name] = model
        return {"@llm_models": "codeie_test.Scripted.v1", "script": name}, model

    yield make
    SCRIPTS.clear()


PAPER_SCHEMA = {
    "@misc": "spacy_codeie.schema_from_dict.v1",
    "entities": {"PERSON": "a human being", "ORG": "a company, agency or institution"},
    "relations": {"WORKS_FOR": {"head": "PERSON", "tail": "ORG", "description": "employment"}},
    "events": {"ACQUISITION": {"description": "one organisation buys another",
                               "roles": {"buyer": ["ORG"], "target": ["ORG"]}}},
}


@pytest.fixture
def paper_schema():
    return dict(PAPER_SCHEMA)


def shared_file(dataset: str, split: str) -> Path:
    path = SHARED_DATA / dataset / f"{split}.jsonl"
    if not path.is_file():
        pytest.skip(f"shared dataset {dataset}/{split} is not present beside the repository")
    return path


@pytest.fixture(scope="session", autouse=True)
def merge_cache(tmp_path_factory):
    """GGUF files with an adapter merged (the llama.cpp runtime) go to a folder of this test run, not the
    user's cache."""
    old = os.environ.get("SPACY_CODEIE_CACHE")
    os.environ["SPACY_CODEIE_CACHE"] = str(tmp_path_factory.mktemp("codeie-cache"))
    yield
    if old is None:
        os.environ.pop("SPACY_CODEIE_CACHE", None)
    else:
        os.environ["SPACY_CODEIE_CACHE"] = old


# ---- a tiny random transformers model, built once per session ---------------------------------------
from spacy_codeie.training.tiny import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama-chat"), with_chat_template=True)
