"""`python -m spacy_codeie <recipe step> CONFIG ...`: the steps the spaCy project runs, thin over the library.

Every step takes the recipe config and `--section.key value` overrides (as `spacy train` does).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List

import srsly

from .config import augment_settings, data_settings, datasets, load_config, model_block, section, settings
from .fields import from_section


def _overrides(extra: List[str]) -> Dict[str, Any]:
    from spacy.cli._util import parse_config_overrides

    return parse_config_overrides(extra)


def cmd_train_data(args: argparse.Namespace, extra: List[str]) -> int:
    from .config import prompt_style
    from .records import ConversationSettings, build_sft_records, dev_sft_records

    config = load_config(args.config, _overrides(extra))
    data = section(config, "data")
    conversations = None
    if data.get("conversations"):
        conversations = from_section(ConversationSettings, dict(data["conversations"]), "[data.conversations]")
    dev: Dict[str, List[Dict[str, Any]]] = {}
    own = data_settings(config)
    records = build_sft_records(datasets(config), prompt=prompt_style(config), augment=augment_settings(config),
                                seed=own.seed, window_size=own.window_size, progress=True,
                                conversations=conversations, dev=dev, dev_seed=own.split_seed)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_jsonl(output, records)
    for name, held in dev.items():  # dev gold in the shared JSONL format, to choose checkpoints on
        folder = output.parent / "dev"
        folder.mkdir(exist_ok=True)
        srsly.write_jsonl(folder / f"{name}.jsonl", held)
    if dev:  # and as SFT records for a dev loss (sft.dev_records)
        srsly.write_jsonl(output.parent / "dev" / "sft.jsonl", dev_sft_records(
            datasets(config), dev, prompt=prompt_style(config), seed=own.split_seed,
            window_size=own.window_size, conversations=conversations))
    counts: Dict[str, int] = {}
    for r in records:
        counts[r["dataset"]] = counts.get(r["dataset"], 0) + 1
    print(json.dumps({"records": len(records), "per_dataset": counts,
                      "dev": {k: len(v) for k, v in dev.items()}}, ensure_ascii=False))
    return 0


def cmd_finetune(args: argparse.Namespace, extra: List[str]) -> int:
    from .finetune import LoraSettings, SFTSettings, finetune

    config = load_config(args.config, _overrides(extra))
    style = (config.get("data") or {}).get("prompt")
    summary = finetune(model_block(config), args.records, args.output,
                       lora=settings(LoraSettings, config, "lora"), sft=settings(SFTSettings, config, "sft"),
                       prompt_style=dict(style) if style else None)
    print(json.dumps({k: summary[k] for k in ("trained_records", "skipped_too_long", "steps", "final_loss",
                                              "seconds_this_run")}))
    return 0


def _model_with(config, adapter: str = "", **extra: Any) -> Dict[str, Any]:
    block = dict(model_block(config))
    if adapter:
        block["adapter"] = adapter
    block.update({k: v for k, v in extra.items() if v is not None})
    return block


def cmd_evaluate_recipe(args: argparse.Namespace, extra: List[str]) -> int:
    from .config import resolve_model
    from .evaluate import evaluate_model, test_sets_from, write_report

    config = load_config(args.config, _overrides(extra))
    ev = section(config, args.section)
    tests = test_sets_from(ev)
    model = resolve_model(_model_with(config, args.adapter or "", batch_size=ev.get("batch_size"),
                                      max_new_tokens=ev.get("max_new_tokens"), progress=not args.quiet))
    results = evaluate_model(model, tests, doc_batch_size=int(ev.get("doc_batch_size", 64)))
    name = args.name or ("base" if not args.adapter else Path(args.adapter).parent.name or "adapter")
    paths = write_report(results, args.output, name)
    print(paths["md"].read_text(encoding="utf8").split("\n\n**")[0])
    return 0


def cmd_compare(args: argparse.Namespace, extra: List[str]) -> int:
    from .evaluate import compare_reports

    reports = dict(item.split("=", 1) for item in args.reports)
    print(compare_reports(reports, args.output))
    return 0


def cmd_package(args: argparse.Namespace, extra: List[str]) -> int:
    from .package import package_pipeline

    config = load_config(args.config, _overrides(extra))
    result = package_pipeline(section(config, "package"), model_block(config), args.adapter or None, args.output,
                              build=None if args.no_build else "sdist")
    print(json.dumps(result))
    return 0


def cmd_tiny_model(args: argparse.Namespace, extra: List[str]) -> int:
    from .tiny import build_tiny_model

    print(build_tiny_model(args.output, with_chat_template=args.chat_template))
    return 0


def cmd_translate(args: argparse.Namespace, extra: List[str]) -> int:
    from .config import resolve_model
    from .records import load_corpus
    from .xling import DEFAULT_TRANSLATION_PROMPT, build_parallel

    config = load_config(args.config, _overrides(extra))
    xl = section(config, "xling")
    if not xl.get("enabled", True):
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text("", encoding="utf8")
        print("[xling] enabled = false: no parallel examples (the xling step adds no records).")
        return 0
    translator = resolve_model(dict(xl["translator"]))
    records = load_corpus(xl["source"], xl.get("source_lang", "en"), int(xl.get("limit", 0)))
    pairs, report = build_parallel(records, translator, source_lang=xl.get("source_lang", "en"),
                                   target_lang=xl["target_lang"],
                                   template=xl.get("template") or DEFAULT_TRANSLATION_PROMPT,
                                   progress=not args.quiet)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    srsly.write_jsonl(args.output, pairs)
    print(json.dumps(report.to_dict()))
    return 0


def cmd_xling_data(args: argparse.Namespace, extra: List[str]) -> int:
    from ..schema.loaders import schema_from_json
    from .xling import translated_instance_records

    config = load_config(args.config, _overrides(extra))
    xl = section(config, "xling")
    pairs = list(srsly.read_jsonl(args.pairs)) if Path(args.pairs).is_file() else []
    records = translated_instance_records(pairs, schema_from_json(xl["schema"]), dataset=f"xling-{xl['target_lang']}",
                                          augment=augment_settings(config),
                                          seed=data_settings(config).seed)
    sft = list(srsly.read_jsonl(args.records))
    merged = sft + records
    srsly.write_jsonl(args.output, merged)
    print(json.dumps({"sft_records": len(sft), "xling_records": len(records), "total": len(merged)}))
    return 0


def cmd_dpo(args: argparse.Namespace, extra: List[str]) -> int:
    from .dpo import DPOSettings, sample_pairs, train_dpo

    config = load_config(args.config, _overrides(extra))
    dpo = settings(DPOSettings, config, "dpo")
    output = Path(args.output)
    pairs_path = output / "pairs.jsonl"
    if not pairs_path.is_file():
        # [dpo_sampler], when given, samples (e.g. llama.cpp, many times faster on a CPU); [model] trains
        sampler = model_block(config, "dpo_sampler") if config.get("dpo_sampler") else model_block(config)
        stats = sample_pairs(sampler, args.adapter, args.records, pairs_path, dpo)
        srsly.write_json(output / "pairs_stats.json", stats)
        print(json.dumps(stats))
    summary = train_dpo(model_block(config), args.adapter, pairs_path, output, dpo)
    print(json.dumps({k: summary[k] for k in ("pairs", "steps", "final_loss", "seconds_this_run")}))
    return 0


def cmd_export_adapter(args: argparse.Namespace, extra: List[str]) -> int:
    from .export import export_adapter

    print(json.dumps(export_adapter(args.source, args.target, args.dtype, base_model=args.base_model or None)))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("train-data", help="annotated corpora -> code-style SFT records (JSONL), per the recipe")
    p.add_argument("config")
    p.add_argument("output")
    p.set_defaults(func=cmd_train_data, takes_overrides=True)
    p = sub.add_parser("finetune", help="LoRA SFT on SFT records; resumes from the last checkpoint")
    p.add_argument("config")
    p.add_argument("records")
    p.add_argument("output")
    p.set_defaults(func=cmd_finetune, takes_overrides=True)
    p = sub.add_parser("translate", help="parallel examples: translate an annotated corpus and project its mentions")
    p.add_argument("config")
    p.add_argument("output")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_translate, takes_overrides=True)
    p = sub.add_parser("xling-data", help="add translated-instance prediction records to SFT records")
    p.add_argument("config")
    p.add_argument("pairs")
    p.add_argument("records")
    p.add_argument("output")
    p.set_defaults(func=cmd_xling_data, takes_overrides=True)
    p = sub.add_parser("dpo", help="sample from the SFT model, build preference pairs, train DPO")
    p.add_argument("config")
    p.add_argument("records")
    p.add_argument("adapter")
    p.add_argument("output")
    p.set_defaults(func=cmd_dpo, takes_overrides=True)
    p = sub.add_parser("evaluate-recipe", help="the recipe's model (plus --adapter) on the [evaluate] test sets")
    p.add_argument("config")
    p.add_argument("output")
    p.add_argument("--adapter", default="")
    p.add_argument("--section", default="evaluate",
                   help="the config section with the sets, e.g. 'evaluate_dev' for the held-out dev split")
    p.add_argument("--name", default="")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate_recipe, takes_overrides=True)
    p = sub.add_parser("compare", help="one Markdown table from several scores.json files: NAME=PATH ...")
    p.add_argument("output")
    p.add_argument("reports", nargs="+")
    p.set_defaults(func=cmd_compare, takes_overrides=True)
    p = sub.add_parser("package", help="a self-contained pipeline folder with the adapter, and `spacy package`")
    p.add_argument("config")
    p.add_argument("output")
    p.add_argument("--adapter", default="")
    p.add_argument("--no-build", action="store_true", help="write the pipeline folder only")
    p.set_defaults(func=cmd_package, takes_overrides=True)
    p = sub.add_parser("export-adapter", help="copy a LoRA adapter with its weights in half precision, for shipping")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--dtype", default="float16")
    p.add_argument("--base-model", default="", help="the base model name to record in adapter_config.json")
    p.set_defaults(func=cmd_export_adapter, takes_overrides=True)
    p = sub.add_parser("tiny-model", help="save a tiny random Llama and tokenizer (for smoke runs)")
    p.add_argument("output")
    p.add_argument("--chat-template", action="store_true")
    p.set_defaults(func=cmd_tiny_model, takes_overrides=True)
