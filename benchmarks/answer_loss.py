"""What computing the SFT loss from the answer positions' logits only saves per training step, per base.

The same records (real conversations from `train-data`, tokenized as `finetune` tokenizes them, prompts
unlabelled), the same LoRA and optimizer, the same batch; the step once with the model's own loss (logits at
every position) and once with `answer_loss` (logits where the next token is an answer token). The modes
alternate step by step after a warm-up step each. Both losses are also computed once on the same weights before
training: they agree.

    .venv/bin/python benchmarks/answer_loss.py --records configs/corpus/default/sft_all.jsonl \
        --base smollm2=smollm2-135m-instruct --base gemma3=gemma3-270m --json-out answer_loss.json

A base is `NAME=BASE` with BASE a name `spacy_codeie.PackagedBase.v1` knows, or a transformers folder / .gguf.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import add_training_bench_args, parse_training_bench_args, write_bench_json  # noqa: E402

MODES = ("all positions", "answer positions")


def load(base: str):
    from spacy_codeie.models.registry import PACKAGED_BASES
    from spacy_codeie.training.finetune import load_for_training

    if base in PACKAGED_BASES:
        block = {"@llm_models": "spacy_codeie.PackagedBase.v1", "base": base, "runtime": "transformers",
                 "dtype": "float32"}
    else:
        block = {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": base}
    return load_for_training(block)


def batch_of(backend, records_path: Path, size: int, max_length: int, skip: int) -> Dict[str, Any]:
    """`size` conversations (after the first `skip`), tokenized and padded as finetune's collator pads them."""
    from spacy_codeie.training.finetune import CompletionCollator, read_records, tokenize_records

    records = read_records(records_path)[skip: skip + 4 * size]
    rows = tokenize_records(backend, records, max_length).rows[:size]
    if len(rows) < size:
        raise SystemExit(f"fewer than {size} records of at most {max_length} tokens after record {skip}")
    return CompletionCollator(backend.tokenizer.pad_token_id)([{k: r[k] for k in ("input_ids", "labels")}
                                                               for r in rows])


def measure(name: str, base: str, args: argparse.Namespace) -> Dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model

    from spacy_codeie.training.answer_loss import answer_loss

    backend, model = load(base)
    batch = batch_of(backend, args.records, args.batch_size, args.max_length, args.skip)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step(mode: str) -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.fp32):
            loss = model(**batch).loss if mode == MODES[0] else answer_loss(model, batch)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return float(loss)

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.fp32):
        same_weights = {MODES[0]: float(model(**batch).loss), MODES[1]: float(answer_loss(model, batch)[0])}
    for mode in MODES:  # warm-up, one each
        step(mode)
    seconds: Dict[str, List[float]] = {mode: [] for mode in MODES}
    for _ in range(args.steps):
        for mode in MODES:
            started = time.perf_counter()
            step(mode)
            seconds[mode].append(time.perf_counter() - started)
    labels = batch["labels"]
    median = {mode: statistics.median(values) for mode, values in seconds.items()}
    return {"base": base, "vocab": int(model.config.vocab_size), "batch_tokens": int(batch["attention_mask"].sum()),
            "answer_tokens": int((labels[:, 1:] != -100).sum()), "padded_shape": list(labels.shape),
            # unrounded: a tiny model's step takes milliseconds, which two decimals would read as 0
            "loss_on_same_weights": same_weights, "seconds_per_step": dict(median),
            "speedup": round(median[MODES[0]] / median[MODES[1]], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_bench_args(parser, base_metavar="NAME=BASE", batch_size=2, max_length=1024)
    parser.add_argument("--skip", type=int, default=0, help="records to skip before the batch")
    args, bases = parse_training_bench_args(parser, "NAME=BASE, e.g. gemma3=gemma3-270m or tiny=/path/to/folder")
    rows = {name: measure(name, base, args) for name, base in bases}
    print("| base | vocab | batch tokens | answer tokens | s/step, all positions | s/step, answer positions "
          "| speedup | loss, all / answer |")
    print("|---" * 8 + "|")
    for name, row in rows.items():
        s, loss = row["seconds_per_step"], row["loss_on_same_weights"]
        print(f"| {name} | {row['vocab']:,} | {row['batch_tokens']:,} | {row['answer_tokens']:,} | {s[MODES[0]]:.2f} | "
              f"{s[MODES[1]]:.2f} | {row['speedup']} | {loss[MODES[0]]:.4f} / {loss[MODES[1]]:.4f} |")
    write_bench_json(args, rows)


if __name__ == "__main__":
    main()
