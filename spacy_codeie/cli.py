"""`python -m spacy_codeie ...`: extract, evaluate, show, round-trip check and convert; thin over the library."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence

import srsly

from .entity_errors import errors_markdown
from .errors import CodeIEError
from .extraction import build_nlp, codeie_component, codeie_component_name, extract_records, roundtrip_scores
from .models.registry import PACKAGED_BASES
from .readers import blank_pipeline
from .scoring import SCORE_ROWS, evaluate_keeping_predictions


def _texts(path: Path, limit: int) -> Iterator[Dict[str, Any]]:
    """Records from JSONL (with 'text') or plain text (one document per line)."""
    count = 0
    if path.suffix == ".jsonl":
        for record in srsly.read_jsonl(path):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise CodeIEError(f"Every line of {str(path)!r} must be a JSON object with a 'text' string.")
            yield record
            count += 1
            if limit and count >= limit:
                return
    else:
        with path.open(encoding="utf8") as f:
            for i, line in enumerate(f):
                yield {"id": str(i), "text": line.rstrip("\n")}
                count += 1
                if limit and count >= limit:
                    return


def cmd_extract(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    nlp = build_nlp(pipeline=args.pipeline, schema=args.schema, model=args.model, adapter=args.adapter,
                    base=args.base, lang=args.lang, batch_size=args.batch_size,
                    max_new_tokens=args.max_new_tokens)
    codeie_component_name(nlp)  # fail before reading the input if there is no codeie component
    records = list(_texts(Path(args.input), args.limit))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf8") as f:
        bar = tqdm(total=len(records), desc="codeie extract", unit="doc", disable=args.quiet)
        for result in extract_records(nlp, records, batch_size=args.doc_batch_size):
            f.write(json.dumps(result, ensure_ascii=False) + "\n")
            bar.update(1)
        bar.close()
    print(f"Wrote {len(records)} records to {out}", file=sys.stderr)
    return 0


def score_table(scores: Dict[str, Any]) -> str:
    lines = [f"{'':28} {'P':>7} {'R':>7} {'F':>7}"]
    for title, key in SCORE_ROWS:
        if scores.get(f"{key}_f") is None:
            continue
        p, r, f = (scores.get(f"{key}_{x}") or 0.0 for x in "prf")
        lines.append(f"{title:28} {100 * p:7.2f} {100 * r:7.2f} {100 * f:7.2f}")
    lines.append(f"{'Parse-error rate':28} {100 * scores['codeie_parse_error_rate']:23.2f}%")
    lines.append(f"{'Hallucination rate':28} {100 * scores['codeie_hallucination_rate']:23.2f}%")
    lines.append(f"{'Truncated completions':28} {100 * scores['codeie_truncated_rate']:23.2f}%")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .readers import examples_from_jsonl

    nlp = build_nlp(pipeline=args.pipeline, schema=args.schema, model=args.model, adapter=args.adapter,
                    base=args.base, lang=args.lang, batch_size=args.batch_size,
                    max_new_tokens=args.max_new_tokens, progress=not args.quiet)
    cfg = codeie_component(nlp).cfg
    examples = examples_from_jsonl(args.test, nlp, limit=args.limit, spans_key=cfg["spans_key"],
                                   relations_extension=cfg["relations_extension"],
                                   events_extension=cfg["events_extension"])
    scores = evaluate_keeping_predictions(nlp, examples, batch_size=args.doc_batch_size)
    print(score_table(scores))
    errors = scores.get("codeie_ents_errors")
    if errors and errors["per_label"]:
        print("\nEntity errors, by kind and gold label:\n" + errors_markdown(errors))
    if args.output:
        srsly.write_json(args.output, {"test": str(args.test), "n_docs": len(examples), "scores": scores})
        print(f"Scores written to {args.output}", file=sys.stderr)
    if args.html:
        from .visualize import compare_examples, report_page

        cases = compare_examples(examples, spans_key=cfg["spans_key"], relations_extension=cfg["relations_extension"],
                                 events_extension=cfg["events_extension"])
        _write_page(args.html, report_page(cases, scores, title=f"Evaluation on {Path(args.test).name}",
                                           options=_view_options(args)))
    return 0


def _view_options(args: argparse.Namespace) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    if getattr(args, "colors", None):
        try:
            options["colors"] = json.loads(args.colors)
        except json.JSONDecodeError as err:
            raise CodeIEError(f"--colors must be a JSON object of label -> CSS colour, e.g. "
                              f"'{{\"ORG\": \"#7aecec\"}}' ({err}).") from None
    return options


def _write_page(path: str, markup: str) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markup, encoding="utf8")
    print(f"Wrote {out} (open it in a browser; it needs no network)", file=sys.stderr)


def cmd_show(args: argparse.Namespace) -> int:
    from .readers import read_jsonl
    from .visualize import records_report, render

    records = list(read_jsonl(args.input, args.limit))
    options = _view_options(args)
    if args.gold:
        gold = list(read_jsonl(args.gold, args.limit))
        markup = records_report(gold, records, title=args.title or f"{Path(args.input).name} vs "
                                f"{Path(args.gold).name}", options=options)
    else:
        options["title"] = args.title or Path(args.input).name
        markup = render(records, page=True, jupyter=False, options=options) or ""
    _write_page(args.output, markup)
    return 0


def cmd_roundtrip(args: argparse.Namespace) -> int:
    scores = roundtrip_scores(args.test, args.schema, args.lang, args.limit)
    print(score_table(scores))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .readers import jsonl_to_docbin

    docbin = jsonl_to_docbin(args.input, blank_pipeline(args.lang), limit=args.limit)
    docbin.to_disk(args.output)
    print(f"Wrote {len(docbin)} docs to {args.output}", file=sys.stderr)
    return 0


def cmd_annotate_ray(args: argparse.Namespace) -> int:
    from .distributed import annotate_corpus

    summary = annotate_corpus(
        args.input, args.output, args.pipeline, text_field=args.text_field, id_field=args.id_field,
        batch_size=args.batch_size, num_workers=args.workers, num_gpus_per_worker=args.gpus_per_worker,
        num_cpus_per_worker=args.cpus_per_worker, output_format=args.format, ray_address=args.address,
        limit=args.limit, progress=not args.quiet,
    )
    print(json.dumps(summary))
    return 0


def _common(p: argparse.ArgumentParser, needs_model: bool = True) -> None:
    p.add_argument("--lang", default="en", help="language of the blank pipeline (with --schema)")
    p.add_argument("--limit", type=int, default=0, help="read at most this many records (0: all)")
    if needs_model:
        p.add_argument("--pipeline", help="a saved spaCy pipeline folder or a .cfg file with a codeie component")
        p.add_argument("--schema", help="a schema file (.py of classes, or .json) for a blank pipeline")
        p.add_argument("--model", help="local model folder, .gguf file or hub id (default: the embedded model)")
        p.add_argument("--adapter", help="a LoRA adapter folder (peft) for --model, or without --model for the "
                       "packaged base it was trained from (its adapter_config.json says which; else --base)")
        p.add_argument("--base", choices=sorted(PACKAGED_BASES),
                       help="the packaged base for --adapter without --model (default: the one the adapter names)")
        p.add_argument("--batch-size", type=int, default=None,
                       help="prompts per generation batch (default: 8 with --model, else the embedded model's own)")
        p.add_argument("--doc-batch-size", type=int, default=64, help="docs per nlp.pipe batch")
        p.add_argument("--max-new-tokens", type=int, default=256)
        p.add_argument("--quiet", action="store_true", help="no progress bar")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spacy_codeie", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("extract", help="annotate texts (one per line, or JSONL with 'text') into JSONL with offsets")
    p.add_argument("input")
    p.add_argument("output")
    _common(p)
    p.set_defaults(func=cmd_extract)
    p = sub.add_parser("evaluate", help="score a pipeline on a JSONL test file")
    p.add_argument("test")
    p.add_argument("--output", help="write the scores as JSON here")
    p.add_argument("--html", help="write a page here: scores, per-label plots, gold and predicted side by side "
                                  "per doc with the errors marked, worst docs first")
    p.add_argument("--colors", help="label colours for --html, as JSON: '{\"ORG\": \"#7aecec\"}'")
    _common(p)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("show", help="JSONL records (extract's output, or gold data) -> one self-contained HTML "
                                    "page with entities, relation arcs and event frames")
    p.add_argument("input", help="a JSONL file in the shared format")
    p.add_argument("output", help="the HTML page to write")
    p.add_argument("--gold", help="gold records of the same texts: show both side by side with the errors marked")
    p.add_argument("--title", help="the page's title (default: the file name)")
    p.add_argument("--colors", help="label colours as JSON: '{\"ORG\": \"#7aecec\"}'")
    p.add_argument("--limit", type=int, default=0, help="read at most this many records (0: all)")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("roundtrip", help="check gold -> completion -> parse -> align reproduces the gold spans")
    p.add_argument("test")
    p.add_argument("--schema", required=True)
    _common(p, needs_model=False)
    p.set_defaults(func=cmd_roundtrip)
    p = sub.add_parser("convert", help="JSONL in the shared format -> a DocBin (.spacy)")
    p.add_argument("input")
    p.add_argument("output")
    _common(p, needs_model=False)
    p.set_defaults(func=cmd_convert)
    p = sub.add_parser("annotate-ray", help="extract from a JSONL or Parquet corpus with a pool of Ray actors "
                                            "(pip install \"spacy-codeie[ray]\"); same records as extract")
    p.add_argument("input", help="a .jsonl/.json or .parquet file, or a folder of them")
    p.add_argument("output", help="a .jsonl or .parquet file, or a folder for Parquet files written by the workers")
    p.add_argument("--pipeline", required=True,
                   help="a saved pipeline folder (on every node) or an installed pipeline package with codeie")
    p.add_argument("--workers", type=int, default=1, help="actors, each holding one copy of the pipeline")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each actor reserves (1 on a GPU cluster)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each actor reserves")
    p.add_argument("--batch-size", type=int, default=64, help="docs per actor call (and per nlp.pipe batch)")
    p.add_argument("--address", help="Ray cluster: 'auto', 'ray://HEAD:10001' or HEAD:6379 (default: RAY_ADDRESS, "
                                      "a cluster started here with `ray start`, or a new local one)")
    p.add_argument("--limit", type=int, default=0, help="annotate at most this many records (0: all)")
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default="id")
    p.add_argument("--format", choices=["jsonl", "parquet"], help="output format (default: from the output's suffix)")
    p.add_argument("--quiet", action="store_true", help="no Ray Data progress output")
    p.set_defaults(func=cmd_annotate_ray)
    from .training.commands import add_commands

    add_commands(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, extra = make_parser().parse_known_args(argv)
    if extra and not getattr(args, "takes_overrides", False):
        print(f"error: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return 2
    try:
        if getattr(args, "takes_overrides", False):
            return args.func(args, extra)
        return args.func(args)
    except CodeIEError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
