"""What the benchmark scripts share: the shared data, one model loaded once and handed to every pipeline."""
from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any, List

from spacy_llm.registry import registry as llm_registry

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
_SHARED_MODEL: List[Any] = []


@llm_registry.llm_models("codeie_bench.Shared.v1")
def shared_model():
    """The model load_model built, so that each benchmark point's pipeline reuses it instead of reloading."""
    if not _SHARED_MODEL:
        raise RuntimeError("call load_model() first")
    return _SHARED_MODEL[0]


def load_model(kind: str, **settings: Any):
    """'default': SmolLM2-135M-Instruct with the shipped adapter (DefaultModel.v2); 'tiny': a random 2-layer
    Llama built here (plumbing only: its outputs are noise)."""
    from spacy_codeie.models.huggingface import HuggingFaceModel
    from spacy_codeie.models.registry import default_model_v2

    if kind == "default":
        model = default_model_v2(**settings)
    else:
        from spacy_codeie.training.tiny import build_tiny_model

        folder = build_tiny_model(Path(tempfile.mkdtemp(prefix="codeie-bench-tiny-")))
        model = HuggingFaceModel(str(folder), **settings)
    _SHARED_MODEL[:] = [model]
    return model


def read_texts(dataset: str, n: int) -> List[str]:
    path = SHARED / dataset / "test.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: the benchmarks read the shared datasets beside the repository.")
    texts = []
    with path.open(encoding="utf8") as f:
        for line in f:
            if len(texts) >= n:
                break
            texts.append(json.loads(line)["text"])
    if len(texts) < n:
        raise SystemExit(f"{path} holds only {len(texts)} records; asked for {n}.")
    return texts


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
