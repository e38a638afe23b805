"""The evaluate step: one model on several test sets, strict F1 per dataset and per label, as JSON, Markdown, PNG.

The model is loaded once and shared by one codeie component per dataset (each with that dataset's schema),
and scored by the component's own scorer, so the numbers mean what `nlp.evaluate` means.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..entity_errors import errors_markdown
from ..errors import CodeIEError
from ..readers import GoldConverter, read_jsonl
from ..schema.loaders import schema_from_json
from .fields import from_section

# (column title, score key prefix): the headline metric of each kind of annotation.
HEADLINE = [
    ("entities", "codeie_ents"),
    ("relations strict", "codeie_rel_strict"),
    ("triggers cls", "codeie_trigger_cls"),
    ("arguments cls", "codeie_arg_cls"),
]


@dataclass(frozen=True)
class EvalSet:
    name: str
    path: str
    schema: str
    lang: str = "en"
    limit: int = 0  # the first n records (0: all)

    @classmethod
    def from_dict(cls, name: str, data: Dict[str, Any]) -> "EvalSet":
        return from_section(cls, data, f"Test set {name!r}", name=name)


def evaluate_model(model, test_sets: Sequence[EvalSet], *, doc_batch_size: int = 64,
                   component_settings: Optional[Dict[str, Any]] = None) -> Dict[str, Dict[str, Any]]:
    """Scores of `model` (an llm_models callable) on every test set, keyed by test-set name."""
    from ..pipeline import CodeIE
    from ..readers import blank_pipeline
    from ..scoring import score_codeie

    results: Dict[str, Dict[str, Any]] = {}
    for test in test_sets:
        nlp = blank_pipeline(test.lang)
        component = CodeIE(nlp.vocab, schema=schema_from_json(test.schema), model=model,
                           scorer=score_codeie, **(component_settings or {}))
        converter = GoldConverter(nlp, spans_key=component.cfg["spans_key"])
        examples = [converter.example(r) for r in read_jsonl(test.path, test.limit)]
        if not examples:
            raise CodeIEError(f"The test set {test.name!r} ({test.path}) holds no records.")
        started = time.time()
        list(component.pipe((eg.predicted for eg in examples), batch_size=doc_batch_size))
        seconds = time.time() - started
        scores = component.score(examples)
        results[test.name] = {"path": test.path, "n_docs": len(examples), "seconds": round(seconds, 1),
                              "scores": scores}
    return results


def headline(scores: Dict[str, Any]) -> Dict[str, Optional[float]]:
    row: Dict[str, Optional[float]] = {title: scores.get(f"{key}_f") for title, key in HEADLINE}
    row["parse-error rate"] = scores.get("codeie_parse_error_rate")
    row["hallucination rate"] = scores.get("codeie_hallucination_rate")
    return row


def _pct(value: Optional[float]) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def markdown_table(runs: Dict[str, Dict[str, Dict[str, Any]]]) -> str:
    """One row per (model, dataset): headline F1s and the rates, in %."""
    columns = [t for t, _ in HEADLINE] + ["parse-error rate", "hallucination rate"]
    lines = ["| model | dataset | docs | " + " | ".join(columns) + " |", "|---" * (len(columns) + 3) + "|"]
    for model_name, results in runs.items():
        for name, result in results.items():
            row = headline(result["scores"])
            cells = [_pct(row[c]) for c in columns]
            lines.append(f"| {model_name} | {name} | {result['n_docs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def per_label_markdown(results: Dict[str, Dict[str, Any]]) -> str:
    lines = []
    for name, result in results.items():
        for title, key in HEADLINE:
            per = result["scores"].get(f"{key}_per_type")
            if not per:
                continue
            lines.append(f"\n**{name}, {title}**\n\n| label | P | R | F |\n|---|---|---|---|")
            for label, prf in per.items():
                lines.append(f"| {label} | {_pct(prf['p'])} | {_pct(prf['r'])} | {_pct(prf['f'])} |")
        errors = result["scores"].get("codeie_ents_errors")
        if errors and errors.get("per_label"):
            lines.append(f"\n**{name}, entity errors by kind**\n\n" + errors_markdown(errors))
    return "\n".join(lines) + "\n"


def write_report(results: Dict[str, Dict[str, Any]], output: Union[str, Path], model_name: str) -> Dict[str, Path]:
    """scores.json, scores.md (headline and per-label tables) and scores.png in `output`."""
    from .plots import plot_scores

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = {"json": output / "scores.json", "md": output / "scores.md", "png": output / "scores.png"}
    paths["json"].write_text(json.dumps({"model": model_name, "results": results}, indent=2, ensure_ascii=False,
                                        default=str), encoding="utf8")
    md = f"# {model_name}\n\n" + markdown_table({model_name: results}) + per_label_markdown(results)
    paths["md"].write_text(md, encoding="utf8")
    table = {name: {title: r["scores"].get(f"{key}_f") for title, key in HEADLINE} for name, r in results.items()}
    plot_scores(table, [t for t, _ in HEADLINE], paths["png"], title=f"strict F1: {model_name}")
    return paths


def compare_reports(reports: Dict[str, Union[str, Path]], output: Union[str, Path]) -> str:
    """One Markdown table from several scores.json files (e.g. the base model and the fine-tuned one)."""
    runs: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for name, path in reports.items():
        data = json.loads(Path(path).read_text(encoding="utf8"))
        runs[name] = data["results"]
    table = markdown_table(runs)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(table, encoding="utf8")
    return table


def test_sets_from(config_section: Dict[str, Any]) -> List[EvalSet]:
    specs = config_section.get("datasets") or {}
    if not specs:
        raise CodeIEError("[evaluate.datasets] lists no test set. Add [evaluate.datasets.NAME] with path and schema.")
    return [EvalSet.from_dict(name, dict(spec)) for name, spec in specs.items()]
