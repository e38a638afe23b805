"""What the benchmark scripts share: the shared data, one model loaded once and handed to every pipeline."""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any, List, Tuple

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


def add_training_bench_args(parser: argparse.ArgumentParser, *, base_metavar: str, batch_size: int,
                            max_length: int) -> None:
    """The arguments every training-speed benchmark takes: records, bases, batch shape, steps, dtype, threads."""
    parser.add_argument("--records", type=Path, required=True, help="SFT records (JSONL) from train-data")
    parser.add_argument("--base", action="append", required=True, metavar=base_metavar)
    parser.add_argument("--batch-size", type=int, default=batch_size, help="conversations per step")
    parser.add_argument("--max-length", type=int, default=max_length)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (per mode), after one warm-up step")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast (a CPU without AVX-512 BF16)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json-out", type=Path)


def parse_training_bench_args(parser: argparse.ArgumentParser, base_usage: str
                              ) -> Tuple[argparse.Namespace, List[Tuple[str, str]]]:
    """Parse and check what add_training_bench_args added (exiting with a usage error that says what to pass),
    set torch's threads, and return the args with the (name, base) pairs."""
    args = parser.parse_args()
    bases = [spec.split("=", 1) for spec in args.base]
    if any(len(b) != 2 or not all(b) for b in bases):
        parser.error(f"each --base is {base_usage}")
    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be at least 1")
    if not args.records.is_file():
        parser.error(f"no records file at {args.records}; build one with 'python -m spacy_codeie train-data'")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return args, [(name, base) for name, base in bases]


def write_bench_json(args: argparse.Namespace, rows: Any) -> None:
    """Write the rows to --json-out, if given, with the settings that produced them."""
    if args.json_out:
        args.json_out.write_text(json.dumps({"bf16": not args.fp32, "steps": args.steps, "bases": rows}, indent=1),
                                 encoding="utf8")
