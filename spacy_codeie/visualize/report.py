"""The evaluation page: scores and per-label plots on top, then gold and predicted side by side per doc.

Docs come worst first (most errors, then lowest F); the page can re-sort them, keep only docs with errors
or with a label, and switch labels off.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..entity_errors import ERROR_KINDS
from ..scoring import PER_LABEL_ROWS, SCORE_ROWS
from .colors import label_color
from .compare import Case, error_totals, worst_first
from .html import Options, doc_html, esc, index_html, legend_html, page, resolve_options, script_json

ERROR_KEYS = (("fp", "false positives"), ("fn", "false negatives"), ("label", "wrong labels"),
              ("boundary", "wrong boundaries"))


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}" if isinstance(value, (int, float)) else "–"


def overall_table(scores: Mapping[str, Any]) -> str:
    rows = []
    for title, key in SCORE_ROWS:
        if scores.get(f"{key}_f") is None:
            continue
        rows.append(f"<tr><td>{esc(title)}</td>" + "".join(f"<td>{_pct(scores.get(f'{key}_{x}'))}</td>" for x in "prf")
                    + "</tr>")
    for title, key in (("Parse-error rate", "codeie_parse_error_rate"), ("Hallucination rate",
                                                                          "codeie_hallucination_rate")):
        if key in scores:
            rows.append(f'<tr><td>{title}</td><td colspan="3">{_pct(scores[key])}%</td></tr>')
    if not rows:
        return ""
    return ('<table class="codeie-scores codeie-overall"><thead><tr><th></th><th>P</th><th>R</th><th>F</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


def _support(cases: Sequence[Case]) -> Dict[str, Counter]:
    """How many gold items each label has, per kind of score: the tables' 'gold' column."""
    out: Dict[str, Counter] = {"entity": Counter(), "relation": Counter(), "trigger": Counter(), "role": Counter()}
    for case in cases:
        for m in case.gold.mentions:
            if m.kind in out:
                out[m.kind][m.label] += 1
        for a in case.gold.arcs:
            out[a.kind][a.label] += 1
    return out


def per_label(scores: Mapping[str, Any], cases: Sequence[Case], options: Options) -> str:
    """One table and one bar plot of F per label for each kind of score that has labels."""
    support = _support(cases)
    tables, plots = [], []
    for title, key, kind in PER_LABEL_ROWS:
        per_type = scores.get(f"{key}_per_type") or {}
        if not per_type:
            continue
        rows = "".join(
            f'<tr><td>{_chip(label, options)}</td><td>{_pct(prf.get("p"))}</td><td>{_pct(prf.get("r"))}</td>'
            f'<td>{_pct(prf.get("f"))}</td><td>{support[kind][label]}</td></tr>'
            for label, prf in per_type.items())
        tables.append(f'<table class="codeie-scores"><caption>{esc(title)}</caption><thead><tr><th>label</th>'
                      f'<th>P</th><th>R</th><th>F</th><th>gold</th></tr></thead><tbody>{rows}</tbody></table>')
        plots.append(bar_plot(title, [(label, prf.get("f") or 0.0) for label, prf in per_type.items()], options))
    if not tables:
        return ""
    return (f'<h2>Per label</h2><div class="codeie-plots">{"".join(plots)}</div>'
            f'<div class="codeie-plots">{"".join(tables)}</div>')


def _chip(label: str, options: Options) -> str:
    return f'<span class="codeie-chip" style="--c:{esc(label_color(label, options["colors"]))}">{esc(label)}</span>'


def entity_errors_table(scores: Mapping[str, Any], options: Options) -> str:
    """The scorer's `codeie_ents_errors`: each gold label's mentions by outcome, and what was predicted instead."""
    errors = scores.get("codeie_ents_errors") or {}
    per_label = errors.get("per_label") or {}
    if not per_label:
        return ""
    rows = "".join(
        f"<tr><td>{_chip(label, options)}</td>" + "".join(f"<td>{row[k]}</td>" for k in ERROR_KINDS)
        + "<td>" + ", ".join(f"{_chip(other, options)} {n}" for other, n in row["confused_with"].items()) + "</td></tr>"
        for label, row in per_label.items())
    heads = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in ERROR_KINDS)
    spurious = errors.get("spurious") or {}
    note = ("<p>Spurious (predicted where no gold mention is): "
            + ", ".join(f"{_chip(label, options)} {n}" for label, n in spurious.items()) + "</p>") if spurious else ""
    return (f'<h2>Entity errors by kind</h2><table class="codeie-scores codeie-errors"><thead><tr><th>gold label</th>'
            f"{heads}<th>given instead</th></tr></thead><tbody>{rows}</tbody></table>{note}")


def bar_plot(title: str, bars: Sequence[Tuple[str, float]], options: Options, width: int = 300) -> str:
    """F per label as horizontal bars, in SVG (no plotting library, nothing to load)."""
    row, left, top = 18, 130, 20
    height = top + row * len(bars) + 6
    parts = [f'<svg class="codeie-plot" width="{left + width + 50}" height="{height}" role="img" '
             f'aria-label="{esc(title)}: F per label"><text x="0" y="13" font-weight="600">{esc(title)}: F</text>']
    for i, (label, value) in enumerate(sorted(bars, key=lambda b: b[1])):
        y = top + i * row
        w = max(0.0, min(1.0, value)) * width
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{esc(label[:20])}</text>'
                     f'<rect x="{left}" y="{y + 2}" width="{width}" height="{row - 5}" fill="#f2f2f2"/>'
                     f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 5}" '
                     f'fill="{esc(label_color(label, options["colors"]))}" stroke="#999" stroke-width="0.5"/>'
                     f'<text x="{left + w + 4:.1f}" y="{y + 12}">{100 * value:.1f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _badge(case: Case) -> str:
    bad = " codeie-bad" if case.n_errors else ""
    return (f'<span class="codeie-badge{bad}" title="errors: {esc(case.errors)}">{case.n_errors} errors · '
            f'F {100 * case.fscore:.0f}</span>')


def case_html(case: Case, options: Options) -> str:
    labels = sorted(case.gold.labels() | case.pred.labels())
    name = esc(case.gold.key) if case.gold.key else f"#{case.index + 1}"
    return (f'<article class="codeie-item codeie-case" id="codeie-case-{case.index}" data-index="{case.index}" '
            f'data-errors="{case.n_errors}" data-f="{case.fscore:.4f}" data-labels="{esc(script_json(labels))}">'
            f'<div class="codeie-doc-title"><b>{name}</b>{_badge(case)}</div><div class="codeie-pair">'
            f'{doc_html(case.gold, 2 * case.index, options, extra_class="codeie-side", heading="gold")}'
            f'{doc_html(case.pred, 2 * case.index + 1, options, extra_class="codeie-side", heading="predicted")}'
            "</div></article>")


def report_page(
    cases: Sequence[Case],
    scores: Optional[Mapping[str, Any]] = None,
    *,
    title: str = "spacy-codeie evaluation",
    options: Optional[Mapping[str, Any]] = None,
) -> str:
    """A self-contained page: overall and per-label scores, error counts, then every doc, worst first."""
    opts = resolve_options(dict(options or {}, title=title))
    totals = error_totals(cases)
    order = worst_first(cases)
    keys = "".join(f'<span class="codeie-key-{k}">{totals[k]} {name}</span>' for k, name in ERROR_KEYS)
    views = [v for case in cases for v in (case.gold, case.pred)]
    controls = ('<div class="codeie-legend"><label class="codeie-sort">sort <select data-role="sort">'
                '<option value="worst">worst first</option><option value="f">lowest F first</option>'
                '<option value="file">file order</option></select></label>'
                '<label class="codeie-only"><input type="checkbox" data-role="errors-only"> only docs with errors'
                '</label></div>')
    body = (f"<h1>{esc(title)}</h1>"
            f'<div class="codeie-meta">{len(cases)} docs; {sum(c.n_errors == 0 for c in cases)} without errors'
            "</div>"
            f"{overall_table(scores or {})}"
            f"{per_label(scores or {}, cases, opts)}"
            f"{entity_errors_table(scores or {}, opts)}"
            "<h2>Docs</h2>"
            f'<div class="codeie-keys">{keys}</div>'
            f"{legend_html(views, opts) if opts['legend'] else ''}{controls}"
            f"{index_html([c.gold for c in cases], order, [_badge(c) for c in cases], anchor='codeie-case')}"
            f'<div class="codeie-items">{"".join(case_html(cases[i], opts) for i in order)}</div>')
    return page(body, title)


def records_report(
    gold: Sequence[Mapping[str, Any]],
    predicted: Sequence[Mapping[str, Any]],
    *,
    title: str = "spacy-codeie evaluation",
    options: Optional[Mapping[str, Any]] = None,
) -> str:
    """The evaluation page for two record lists (gold data and `extract`'s output on it), scored as
    `evaluate` scores, without running a model."""
    from spacy.training import Example

    from ..readers import GoldConverter, blank_pipeline
    from ..scoring import score_codeie
    from .compare import compare_records

    cases = compare_records(gold, predicted)
    converters: Dict[str, GoldConverter] = {}
    examples: List[Example] = []
    for g, p in zip(gold, predicted):
        lang = str(g.get("lang") or p.get("lang") or "xx")
        if lang not in converters:
            converters[lang] = GoldConverter(blank_pipeline(lang), alignment_mode="expand")
        convert = converters[lang]
        examples.append(Example(convert.doc(p), convert.doc(g)))
    return report_page(cases, score_codeie(examples), title=title, options=options)
