"""How codeie's cost grows with the number of docs, the length of docs and the number of schema types.

One model is loaded once; each point runs `nlp.pipe` on a fresh blank pipeline that shares it. The schema-size
curve is measured with the schema-prefix cache on and off, which is where the cache pays: without it every
prompt re-reads every class definition.

    python benchmarks/scaling.py --model default --out docs/results/scaling
    python benchmarks/scaling.py --model tiny --docs 4,8 --lengths 1,2 --types 2,4   # plumbing only

Writes scaling.json, scaling.md and scaling.png into --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spacy  # noqa: E402

from bench_utils import SHARED, load_model, read_texts  # noqa: E402
from spacy_codeie.schema import schema_from_dict  # noqa: E402

ENTITY_SOURCES = ["conll2003_en", "conll04", "wikigold_en", "wikiann", "weibo_ner_zh", "stockmark_ner_ja"]


def entity_pool() -> List[Dict[str, str]]:
    """Real entity types with their descriptions from the shared datasets' labels files, unique labels."""
    pool, seen = [], set()
    for name in ENTITY_SOURCES:
        path = SHARED / name / "labels.json"
        if not path.is_file():
            continue
        for entry in json.loads(path.read_text(encoding="utf8")).get("entity", []):
            label = entry["label"].upper().replace(".", "_").replace("-", "_")
            if label in seen:
                label = f"{label}_{name.split('_')[0].upper()}"
            seen.add(label)
            pool.append({"label": label, "description": entry.get("description") or label})
    return pool


def schema_with(n_types: int):
    pool = entity_pool()
    if n_types > len(pool):
        pool = pool + [{"label": f"{e['label']}_{k}", "description": e["description"]}
                       for k in range(2, n_types // max(1, len(pool)) + 2) for e in pool]
    return schema_from_dict(entities={e["label"]: e["description"] for e in pool[:n_types]})


def run_point(model, schema, texts: List[str], lang: str = "en", batch_size: int = 64) -> Dict[str, Any]:
    nlp = spacy.blank(lang)
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1",
                                              "entities": {t.label: t.description for t in schema.entities}},
                                   "model": {"@llm_models": "codeie_bench.Shared.v1"}})
    before = dict(model.stats)
    started = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - started
    delta = {k: model.stats[k] - before.get(k, 0) for k in model.stats}
    return {"docs": len(docs), "chars": sum(len(t) for t in texts), "seconds": round(seconds, 3),
            "docs_per_s": round(len(docs) / seconds, 3), "gen_tokens": delta.get("generated_tokens", 0),
            "prompt_tokens": delta.get("prompt_tokens", 0),
            "cached_prompt_tokens": delta.get("cached_prompt_tokens", 0),
            "entities": sum(len(d.ents) for d in docs)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "default"], default="default")
    parser.add_argument("--dataset", default="conll2003_en")
    parser.add_argument("--docs", default="8,16,32,64", help="doc counts for the first curve")
    parser.add_argument("--lengths", default="1,2,4,8", help="sentences joined per doc for the second curve")
    parser.add_argument("--length-docs", type=int, default=8, help="docs per point of the length curve")
    parser.add_argument("--types", default="2,4,8,16,32", help="schema sizes for the third curve")
    parser.add_argument("--type-docs", type=int, default=16, help="docs per point of the schema-size curve")
    parser.add_argument("--batch-size", type=int, default=8, help="generate batch size")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/scaling")
    parser.add_argument("--redraw", action="store_true", help="only rewrite the table and plot from scaling.json")
    args = parser.parse_args(argv)
    if args.redraw:
        saved = json.loads((Path(args.out) / "scaling.json").read_text(encoding="utf8"))
        (Path(args.out) / "scaling.md").write_text(markdown(saved, saved["meta"]), encoding="utf8")
        plot(saved, Path(args.out) / "scaling.png")
        return 0
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731

    model = load_model(args.model, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    texts = read_texts(args.dataset, max(ints(args.docs) + [args.type_docs,
                                                            args.length_docs * max(ints(args.lengths))]))
    base_schema = schema_with(4)
    run_point(model, base_schema, texts[:2])  # warm-up: first-call costs are not part of any point
    results: Dict[str, List[Dict[str, Any]]] = {"docs": [], "length": [], "types": []}
    for n in ints(args.docs):
        results["docs"].append({"n_docs": n, **run_point(model, base_schema, texts[:n])})
        print("docs", results["docs"][-1], flush=True)
    for k in ints(args.lengths):
        joined = [" ".join(texts[i * k:(i + 1) * k]) for i in range(args.length_docs)]
        results["length"].append({"sentences_per_doc": k, **run_point(model, base_schema, joined)})
        print("length", results["length"][-1], flush=True)
    for n in ints(args.types):
        schema = schema_with(n)
        for cached in (False, True):
            model.prefix_cache = cached
            model.clear_prefix_cache()
            point = run_point(model, schema, texts[:args.type_docs])
            results["types"].append({"n_types": n, "prefix_cache": cached, **point})
            print("types", results["types"][-1], flush=True)
    model.prefix_cache = True

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"model": args.model, "dataset": args.dataset, "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens, "constrained": model.constrained}
    (out / "scaling.json").write_text(json.dumps({"meta": meta, **results}, indent=2), encoding="utf8")
    (out / "scaling.md").write_text(markdown(results, meta), encoding="utf8")
    plot(results, out / "scaling.png")
    print(markdown(results, meta))
    return 0


def markdown(results, meta) -> str:
    lines = [f"Model: {meta['model']}; data: {meta['dataset']}; generate batch {meta['batch_size']}, "
             f"max_new_tokens {meta['max_new_tokens']}, constrained={meta['constrained']}.", "",
             "| docs | seconds | docs/s | generated tokens | tokens/s |", "|---|---|---|---|---|"]
    for r in results["docs"]:
        lines.append(f"| {r['n_docs']} | {r['seconds']:.1f} | {r['docs_per_s']:.2f} | {r['gen_tokens']} | "
                     f"{r['gen_tokens'] / r['seconds']:.1f} |")
    lines += ["", "| sentences per doc | chars | prompt tokens | generated tokens | seconds | s per 1k chars |",
              "|---|---|---|---|---|---|"]
    for r in results["length"]:
        lines.append(f"| {r['sentences_per_doc']} | {r['chars']} | {r['prompt_tokens']} | {r['gen_tokens']} | "
                     f"{r['seconds']:.1f} | {1000 * r['seconds'] / max(1, r['chars']):.2f} |")
    lines += ["", "| schema types | prompt tokens | s (no prefix cache) | s (prefix cache) | speed-up |",
              "|---|---|---|---|---|"]
    by_n: Dict[int, Dict[bool, Dict[str, Any]]] = {}
    for r in results["types"]:
        by_n.setdefault(r["n_types"], {})[r["prefix_cache"]] = r
    for n, pair in by_n.items():
        off, on = pair.get(False), pair.get(True)
        if off and on:
            lines.append(f"| {n} | {off['prompt_tokens']} | {off['seconds']:.1f} | {on['seconds']:.1f} | "
                         f"{off['seconds'] / on['seconds']:.2f}x |")
    return "\n".join(lines) + "\n"


def plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    d = results["docs"]
    axes[0].plot([r["n_docs"] for r in d], [r["seconds"] for r in d], marker="o")
    axes[0].set(xlabel="docs", ylabel="seconds", title="cost vs. number of docs")
    ln = results["length"]
    axes[1].plot([r["chars"] for r in ln], [r["seconds"] for r in ln], marker="o")
    axes[1].set(xlabel="characters (all docs)", ylabel="seconds", title="cost vs. doc length")
    for cached, style in ((False, "--"), (True, "-")):
        pts = [r for r in results["types"] if r["prefix_cache"] == cached]
        axes[2].plot([r["n_types"] for r in pts], [r["seconds"] for r in pts], style, marker="o",
                     label="prefix cache" if cached else "no prefix cache")
    sizes = sorted({r["n_types"] for r in results["types"]})
    axes[2].set_xscale("log", base=2)
    axes[2].set_xticks(sizes, [str(n) for n in sizes])
    axes[2].minorticks_off()
    axes[2].set(xlabel="schema types", ylabel="seconds", title="cost vs. schema size")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
