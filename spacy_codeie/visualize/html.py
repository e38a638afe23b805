"""Views -> HTML: the text with nested marks, the arcs as JSON for the page script, legend, index and page.

Everything from the data goes through `html.escape` (text, labels, ids) or through `script_json` (arc data
inside a <script> block), so a doc that contains markup renders as text. Pages carry their CSS and script
inline: a written page opens without network access.
"""
from __future__ import annotations

import html
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, Iterable, List, Literal, Mapping, Optional, Sequence, TypedDict

from .colors import label_color
from .views import DocView, Piece, VisualizeError, nest

Direction = Literal["auto", "ltr", "rtl"]
RTL_LANGS = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ku", "ps", "sd", "syr", "ug", "ur", "yi"})
STATUS_TEXT = {
    "ok": "",
    "fp": "false positive (not in gold)",
    "fn": "false negative (missed)",
    "label": "wrong label",
    "boundary": "wrong boundaries",
}


class Options(TypedDict, total=False):
    colors: Dict[str, str]  # label -> CSS colour, over the stable palette
    direction: Direction  # text direction; "auto": right-to-left for RTL languages, else from the text
    title: str  # the page's title
    legend: bool  # show the labels with their colours (and filters, in pages)
    details: bool  # a collapsed list of each doc's relations and events under it


DEFAULTS: Options = {"colors": {}, "direction": "auto", "title": "spacy-codeie", "legend": True, "details": True}


def resolve_options(options: Optional[Mapping[str, Any]]) -> Options:
    """The defaults updated with `options`; unknown keys and bad values are errors, not silently ignored."""
    out: Dict[str, Any] = dict(DEFAULTS)
    for key, value in (options or {}).items():
        if key not in DEFAULTS:
            raise VisualizeError(f"Unknown view option {key!r}; the options are: {', '.join(sorted(DEFAULTS))}.")
        out[key] = value
    if out["direction"] not in ("auto", "ltr", "rtl"):
        raise VisualizeError(f"The option 'direction' is {out['direction']!r}; use 'auto', 'ltr' or 'rtl'.")
    if not isinstance(out["colors"], Mapping):
        raise VisualizeError("The option 'colors' must be a dict of label -> CSS colour, e.g. {'ORG': '#7aecec'}.")
    return out  # type: ignore[return-value]


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """The page's CSS or script, shipped beside this module."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf8")


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def script_json(data: Any) -> str:
    """JSON that cannot end its <script> element or open a comment, whatever strings it holds."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def text_direction(view: DocView, direction: Direction) -> str:
    if direction != "auto":
        return direction
    return "rtl" if view.lang.split("-")[0].lower() in RTL_LANGS else "auto"


# ---- one doc ------------------------------------------------------------------------------------------
def _piece_html(piece: Piece, colors: Mapping[str, str]) -> str:
    inner = "".join(esc(c) if isinstance(c, str) else _piece_html(c, colors) for c in piece.children)
    m = piece.mention
    if m is None:
        return inner
    classes = ["codeie-m", f"codeie-{m.kind}", f"codeie-s-{m.status}"]
    if not piece.first:
        classes.append("codeie-cont")
    if not piece.last:
        classes.append("codeie-open")
    title = " ".join(x for x in (m.label or "argument", STATUS_TEXT[m.status]) if x)
    tag = f'<span class="codeie-tag codeie-label">{esc(m.label)}</span>' if piece.last and m.label else ""
    return (f'<mark class="{" ".join(classes)}" data-m="{m.id}" data-label="{esc(m.label)}" '
            f'style="--c:{esc(label_color(m.label, colors))};--h:{piece.height}" title="{esc(title)}">'
            f"{inner}{tag}</mark>")


def _arc_data(view: DocView, colors: Mapping[str, str]) -> List[Dict[str, Any]]:
    return [{"h": a.head, "t": a.tail, "l": a.label, "k": a.kind, "e": a.event, "s": a.status,
             "c": label_color(a.event if a.kind == "role" else a.label, colors), "why": STATUS_TEXT[a.status]}
            for a in view.arcs]


def _details_html(view: DocView) -> str:
    """The relations and events as a list: readable without the script, and searchable with Ctrl+F."""
    if not view.arcs:
        return ""
    items = []
    for a in view.arcs:
        tail = view.mention(a.tail)
        if a.head is None:  # a role of a trigger-less event
            source = '<i class="codeie-no-trigger">no trigger</i>'
        else:
            head = view.mention(a.head)
            source = f"<q>{esc(view.text[head.start:head.end])}</q>"
        status = f' <em class="codeie-why">{esc(STATUS_TEXT[a.status])}</em>' if a.status != "ok" else ""
        prefix = f"{esc(a.event)} " if a.kind == "role" else ""
        items.append(f'<li class="codeie-s-{a.status}">{prefix}{source} '
                     f'→ <b>{esc(a.label)}</b> → <q>{esc(view.text[tail.start:tail.end])}</q>{status}</li>')
    counts = view.counts()
    summary = f"{counts['relations']} relations, {counts['events']} events"
    return f'<details class="codeie-details"><summary>{summary}</summary><ul>{"".join(items)}</ul></details>'


def doc_html(view: DocView, index: int, options: Options, extra_class: str = "codeie-item", badge: str = "",
             heading: Optional[str] = None) -> str:
    """One doc: title line, the text with its mentions, the arcs' data and (optionally) the list of arcs."""
    colors = options["colors"]
    counts = view.counts()
    meta = " · ".join(x for x in (view.lang, f"{counts['entities']} entities", f"{counts['relations']} relations",
                                  f"{counts['events']} events") if x)
    note = f'<div class="codeie-note">dropped: {esc(view.note)}</div>' if view.note else ""
    title = esc(heading) if heading is not None else esc(view.key) if view.key else f"#{index + 1}"
    direction = text_direction(view, options["direction"])
    lang = f' lang="{esc(view.lang)}"' if view.lang else ""
    details = _details_html(view) if options["details"] else ""
    return (f'<section class="codeie-doc {extra_class}" id="codeie-doc-{index}" data-index="{index}" '
            f'data-labels="{esc(script_json(sorted(view.labels())))}">'
            f'<div class="codeie-doc-title"><b>{title}</b> <span class="codeie-meta">{esc(meta)}</span>{badge}</div>'
            f"{note}"
            f'<div class="codeie-canvas"><div class="codeie-text" dir="{direction}"{lang}>'
            f"{_piece_html(nest(view.text, view.mentions), colors)}</div></div>"
            f'<script type="application/json" class="codeie-arcs">{script_json(_arc_data(view, colors))}</script>'
            f"{details}</section>")


# ---- around the docs -----------------------------------------------------------------------------------
def legend_html(views: Iterable[DocView], options: Options, filters: bool = True) -> str:
    """The labels with their colours; in pages, each one a switch, and a filter for docs holding a label."""
    labels = sorted(set().union(*(v.labels() for v in views)) if views else set())
    if not labels:
        return ""
    chips = []
    for label in labels:
        color = esc(label_color(label, options["colors"]))
        box = f'<input type="checkbox" checked data-label="{esc(label)}"> ' if filters else ""
        chips.append(f'<label class="codeie-chip" style="--c:{color}">{box}{esc(label)}</label>')
    select = ""
    if filters:
        choices = "".join(f'<option value="{esc(label)}">{esc(label)}</option>' for label in labels)
        select = (f'<label class="codeie-only">docs with <select data-role="only">'
                  f'<option value="">any label</option>{choices}</select></label>')
    return f'<div class="codeie-legend">{"".join(chips)}{select}</div>'


def index_html(views: Sequence[DocView], order: Sequence[int], badges: Optional[Sequence[str]] = None,
               anchor: str = "codeie-doc") -> str:
    """A list of the docs, linking to each: id, a few words of its text and its counts."""
    rows = []
    for i in order:
        view = views[i]
        counts = view.counts()
        name = esc(view.key) if view.key else f"#{i + 1}"
        snippet = esc(view.text[:60] + ("…" if len(view.text) > 60 else ""))
        badge = badges[i] if badges else ""
        rows.append(f'<li data-index="{i}"><a href="#{anchor}-{i}">{name}</a> {badge}'
                    f'<span class="codeie-meta">{counts["entities"]}e {counts["relations"]}r {counts["events"]}ev'
                    f'</span> <span class="codeie-snippet" dir="auto">{snippet}</span></li>')
    return (f'<details class="codeie-index" {"open" if len(views) <= 30 else ""}><summary>Index of {len(views)} '
            f'docs</summary><ol>{"".join(rows)}</ol></details>')


def fragment(body: str) -> str:
    """Markup to embed (notebooks, other pages): carries its own style and script."""
    return (f'<div class="codeie-root"><style>{asset("codeie.css")}</style>{body}'
            f'<script>{asset("codeie.js")}</script></div>')


def page(body: str, title: str) -> str:
    """A whole, self-contained HTML page."""
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
            f'initial-scale=1"><title>{esc(title)}</title><style>{asset("codeie.css")}</style></head>\n'
            f'<body><div class="codeie-root codeie-page">{body}</div><script>{asset("codeie.js")}</script>'
            f"</body></html>\n")
