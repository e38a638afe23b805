"""Which base model is worth training on this machine: tokens per training record by language, and LoRA
training speed, for several bases on the same records in one run.

A multilingual vocabulary makes Chinese and Japanese records shorter, and a bigger model makes each token
slower; what a training budget buys is their ratio, records per second, per language. Each base gets a LoRA
of the recipe's shape (r=16 on all linear layers) and `--steps` optimizer steps on the same batch of records;
the first step is a warm-up and is not counted.

    .venv/bin/python benchmarks/base_models.py --records configs/corpus/default/sft_all.jsonl \
        --base smollm2=default --base gemma3=/path/to/gemma-3-270m-q4_k_m.gguf --json-out bases.json

A base is `NAME=PATH`: a transformers folder, a .gguf file (dequantized on load), or `default` for the packaged
SmolLM2-135M-Instruct. Records are SFT records (`train-data` output); a conversation counts by its first turn.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import add_training_bench_args, parse_training_bench_args, write_bench_json  # noqa: E402


def load_base(path: str):
    """(tokenizer, trainable base) as `finetune` loads it: a folder, a .gguf file, or the packaged default."""
    from spacy_codeie.training.finetune import load_for_training

    if path == "default":
        block = {"@llm_models": "spacy_codeie.DefaultModel.v1"}
    else:
        block = {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": path}
    backend, model = load_for_training(block)
    return backend.tokenizer, model


def first_turn_texts(records_path: Path, per_lang: int) -> Dict[str, List[str]]:
    """Prompt + answer of up to `per_lang` records per language, in file order."""
    texts: Dict[str, List[str]] = defaultdict(list)
    with records_path.open(encoding="utf8") as f:
        for line in f:
            record = json.loads(line)
            turn = record["turns"][0] if "turns" in record else record
            lang = record.get("lang") or "xx"
            if len(texts[lang]) < per_lang:
                texts[lang].append(turn["prompt"] + turn["completion"])
    return dict(texts)


def train_speed(tokenizer, model, texts: List[str], steps: int, max_length: int, bf16: bool) -> Tuple[float, int]:
    """Training tokens per second of a LoRA (r=16, all linear layers) on one batch, and the tokens in it."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    tokens = int(batch["attention_mask"].sum())
    seconds = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - started)
    return tokens / statistics.median(seconds[1:]), tokens


def measure(name: str, path: str, texts: Dict[str, List[str]], args: argparse.Namespace) -> Dict[str, Any]:
    started = time.perf_counter()
    tokenizer, model = load_base(path)
    row: Dict[str, Any] = {"path": path, "load_seconds": round(time.perf_counter() - started, 1),
                           "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
                           "vocab": int(model.config.vocab_size),
                           "chat_template": bool(getattr(tokenizer, "chat_template", None))}
    lengths = {lang: statistics.mean(len(tokenizer(t)["input_ids"]) for t in group) for lang, group in texts.items()}
    english = texts.get("en") or next(iter(texts.values()))
    speed, tokens = train_speed(tokenizer, model, english[: args.batch_size], args.steps, args.max_length,
                                not args.fp32)
    row.update({"train_tokens_per_second": round(speed, 1), "batch_tokens": tokens,
                "tokens_per_record": {lang: round(n, 1) for lang, n in sorted(lengths.items())},
                "records_per_second": {lang: round(speed / n, 3) for lang, n in sorted(lengths.items())}})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_bench_args(parser, base_metavar="NAME=PATH", batch_size=4, max_length=512)
    parser.add_argument("--per-lang", type=int, default=16, help="records per language for the token counts")
    args, bases = parse_training_bench_args(
        parser, "NAME=PATH, e.g. smollm2=default or gemma3=/models/gemma-3-270m.gguf")
    texts = first_turn_texts(args.records, args.per_lang)
    rows = {name: measure(name, path, texts, args) for name, path in bases}
    print("| base | params (M) | vocab | train tokens/s | " + " | ".join(f"tokens/record {lang}" for lang in texts)
          + " | " + " | ".join(f"records/s {lang}" for lang in texts) + " |")
    print("|---" * (4 + 2 * len(texts)) + "|")
    for name, row in rows.items():
        print(f"| {name} | {row['params_millions']} | {row['vocab']} | {row['train_tokens_per_second']} | "
              + " | ".join(str(row["tokens_per_record"][lang]) for lang in texts) + " | "
              + " | ".join(str(row["records_per_second"][lang]) for lang in texts) + " |")
    write_bench_json(args, rows)


if __name__ == "__main__":
    main()
