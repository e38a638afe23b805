"""What prefix caching and constrained decoding change, on shared test data, with one model loaded once.

Three settings of the same model, on the first --limit docs of each test set:
  plain        no prefix cache, free decoding (what codeie did before both existed)
  prefix       schema-prefix KV cache, free decoding (must give the same completions as plain, only faster)
  constrained  prefix cache + constrained decoding (the default)
For each: strict F1, parse-error rate, hallucination rate (the component's own scorer), seconds, docs/s and
generated tokens/s; and how many completions are identical to `plain`.

    python benchmarks/decoding.py --limit 40 --out docs/results/decoding
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import SHARED, load_model, peak_rss_mib  # noqa: E402
from spacy_codeie.training.evaluate import EvalSet, evaluate_model, headline  # noqa: E402

SETS = [("CoNLL-2003", "conll2003_en", "en"), ("CoNLL04", "conll04", "en"), ("CASIE", "casie", "en"),
        ("Weibo", "weibo_ner_zh", "zh")]
VARIANTS = {"plain": (False, False), "prefix": (True, False), "constrained": (True, True)}


def record_completions(model) -> List[str]:
    """Keep every completion the model returns (in order) while leaving its behaviour unchanged."""
    seen: List[str] = []
    generate = model.generate

    def recording(prompts):
        out = generate(prompts)
        seen.extend(out)
        return out

    model.generate = recording
    return seen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "default"], default="default")
    parser.add_argument("--limit", type=int, default=40, help="first n docs of each test set")
    parser.add_argument("--sets", default=",".join(s[1] for s in SETS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--out", default="benchmarks/results/decoding")
    args = parser.parse_args(argv)

    model = load_model(args.model, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    completions = record_completions(model)
    chosen = set(args.sets.split(","))
    sets = [EvalSet(name=title, path=str(SHARED / folder / "test.jsonl"), schema=str(SHARED / folder / "labels.json"),
                    lang=lang, limit=args.limit) for title, folder, lang in SETS if folder in chosen]
    runs: Dict[str, Dict[str, Any]] = {}
    outputs: Dict[str, List[str]] = {}
    for variant in args.variants.split(","):
        model.prefix_cache, model.constrained = VARIANTS[variant]
        model.clear_prefix_cache()
        completions.clear()
        before = dict(model.stats)
        started = time.perf_counter()
        results = evaluate_model(model, sets)
        seconds = time.perf_counter() - started
        generated = model.stats["generated_tokens"] - before.get("generated_tokens", 0)
        outputs[variant] = list(completions)
        runs[variant] = {"seconds": round(seconds, 1), "generated_tokens": generated,
                         "tokens_per_s": round(generated / seconds, 2), "peak_rss_mib": round(peak_rss_mib()),
                         "sets": {name: {"seconds": r["seconds"], "n_docs": r["n_docs"],
                                         "docs_per_s": round(r["n_docs"] / max(r["seconds"], 1e-9), 3),
                                         **headline(r["scores"])} for name, r in results.items()}}
        if "plain" in outputs and variant != "plain":
            same = sum(a == b for a, b in zip(outputs["plain"], outputs[variant]))
            runs[variant]["identical_to_plain"] = f"{same}/{len(outputs[variant])}"
        print(variant, json.dumps(runs[variant]), flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"model": args.model, "limit": args.limit, "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens}
    (out / "decoding.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2), encoding="utf8")
    table = markdown(runs, meta)
    (out / "decoding.md").write_text(table, encoding="utf8")
    print(table)
    return 0


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def markdown(runs: Dict[str, Dict[str, Any]], meta: Dict[str, Any]) -> str:
    lines = [f"Model: {meta['model']}; first {meta['limit']} docs per set; generate batch {meta['batch_size']}; "
             f"max_new_tokens {meta['max_new_tokens']}. F1 and rates in %.", "",
             "| setting | dataset | docs/s | entities F1 | relations F1 | triggers F1 | arguments F1 | "
             "parse-error rate | hallucination rate |", "|---" * 9 + "|"]
    for variant, run in runs.items():
        for name, row in run["sets"].items():
            lines.append(f"| {variant} | {name} | {row['docs_per_s']:.2f} | {_pct(row['entities'])} | "
                         f"{_pct(row['relations strict'])} | {_pct(row['triggers cls'])} | "
                         f"{_pct(row['arguments cls'])} | {_pct(row['parse-error rate'])} | "
                         f"{_pct(row['hallucination rate'])} |")
    lines += ["", "| setting | total seconds | generated tokens | tokens/s | identical completions to plain |",
              "|---|---|---|---|---|"]
    for variant, run in runs.items():
        lines.append(f"| {variant} | {run['seconds']} | {run['generated_tokens']} | {run['tokens_per_s']} | "
                     f"{run.get('identical_to_plain', '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
