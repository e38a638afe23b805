"""Gold vs predicted, per doc: each mention and arc gets a status, each doc an error count and an F-score.

Statuses, on the predicted side: `ok` (also in gold), `label` (the same span, or the same argument pair, with
another label), `boundary` (overlapping a gold item with the same label), `fp` (anything else); on the gold
side the same, with `fn` for an item nothing predicted overlaps. Items are keyed as the scorer keys them
(`scoring.py`): entities and triggers by (span, label); relations by both argument spans and the label; event
arguments by (event type, argument span, role), wherever the trigger is, so the arguments of a trigger-less
event (YAYI-UIE) compare like any others.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Sequence, Tuple

from ..entity_errors import overlaps
from .views import Arc, DocView, Status, VisualizeError, view_from_doc, view_from_record

Span = Tuple[int, int]


@dataclass
class Case:
    """One doc's gold and predicted views, marked, with its counts."""
    index: int
    gold: DocView
    pred: DocView
    tp: int
    n_gold: int
    n_pred: int
    errors: Dict[str, int]

    @property
    def n_errors(self) -> int:
        return sum(self.errors.values())

    @property
    def fscore(self) -> float:
        return 2 * self.tp / (self.n_gold + self.n_pred) if self.n_gold + self.n_pred else 1.0


@dataclass(frozen=True)
class _Item:
    """A mention or arc reduced to what matching looks at: spans that must match, and a label."""
    spans: Tuple[Span, ...]
    label: str
    group: str = ""  # must be equal to compare at all (the event type for arguments)


def _status(item: _Item, others: Sequence[_Item], miss: Status) -> Status:
    same_group = [o for o in others if o.group == item.group]
    if any(o.spans == item.spans and o.label == item.label for o in same_group):
        return "ok"
    if any(o.spans == item.spans for o in same_group):
        return "label"
    if any(o.label == item.label and all(overlaps(a, b) for a, b in zip(o.spans, item.spans)) for o in same_group):
        return "boundary"
    return miss


def _mark(golds: Sequence[Any], preds: Sequence[Any], key: Callable[[Any], _Item]) -> None:
    gold_items, pred_items = [key(g) for g in golds], [key(p) for p in preds]
    for obj, item in zip(golds, gold_items):
        obj.status = _status(item, pred_items, "fn")
    for obj, item in zip(preds, pred_items):
        obj.status = _status(item, gold_items, "fp")


def compare_views(gold: DocView, pred: DocView, index: int = 0) -> Case:
    """Mark `gold` and `pred` (views of the same text) in place and count their agreement."""
    if gold.text != pred.text:
        raise VisualizeError(f"Doc {gold.key or index!r}: the gold and predicted texts differ; compare records of "
                             f"the same texts, in the same order.")
    for kind in ("entity", "trigger"):
        _mark([m for m in gold.mentions if m.kind == kind], [m for m in pred.mentions if m.kind == kind],
              lambda m: _Item(((m.start, m.end),), m.label))

    def relation_key(view: DocView) -> Callable[[Arc], _Item]:
        def key(a: Arc) -> _Item:
            if a.head is None:  # only roles of trigger-less events lack a head, never a relation
                raise VisualizeError(f"Doc {view.key!r}: a relation arc has no head.")
            h, t = view.mention(a.head), view.mention(a.tail)
            return _Item(((h.start, h.end), (t.start, t.end)), a.label)
        return key

    def role_key(view: DocView) -> Callable[[Arc], _Item]:
        def key(a: Arc) -> _Item:
            t = view.mention(a.tail)
            return _Item(((t.start, t.end),), a.label, group=a.event)
        return key

    for kind, make_key in (("relation", relation_key), ("role", role_key)):
        golds = [a for a in gold.arcs if a.kind == kind]
        preds = [a for a in pred.arcs if a.kind == kind]
        gk, pk = make_key(gold), make_key(pred)
        gold_items, pred_items = [gk(a) for a in golds], [pk(a) for a in preds]
        for arc, item in zip(golds, gold_items):
            arc.status = _status(item, pred_items, "fn")
        for arc, item in zip(preds, pred_items):
            arc.status = _status(item, gold_items, "fp")
    for view in (gold, pred):  # bare argument spans carry no status of their own; their arcs do
        for m in view.mentions:
            if m.kind == "argument":
                m.status = "ok"
    gold_scored = [m for m in gold.mentions if m.kind != "argument"] + list(gold.arcs)
    pred_scored = [m for m in pred.mentions if m.kind != "argument"] + list(pred.arcs)
    errors = {
        "fp": sum(x.status == "fp" for x in pred_scored),
        "fn": sum(x.status == "fn" for x in gold_scored),
        "label": sum(x.status == "label" for x in pred_scored),
        "boundary": sum(x.status == "boundary" for x in pred_scored),
    }
    tp = sum(x.status == "ok" for x in pred_scored)
    return Case(index, gold, pred, tp, len(gold_scored), len(pred_scored), errors)


def compare_records(gold: Iterable[Mapping[str, Any]], predicted: Iterable[Mapping[str, Any]]) -> List[Case]:
    """Cases from two lists of records in the shared format, paired by position (e.g. gold data and the
    output of `extract` on it)."""
    gold, predicted = list(gold), list(predicted)
    if len(gold) != len(predicted):
        raise VisualizeError(f"{len(gold)} gold records but {len(predicted)} predicted ones; compare the output "
                             f"of `extract` with the file it was run on (same records, same order).")
    return [compare_views(view_from_record(g, str(i)), view_from_record(p, str(i)), i)
            for i, (g, p) in enumerate(zip(gold, predicted))]


def compare_examples(
    examples: Iterable[Any],
    *,
    spans_key: str = "codeie",
    relations_extension: str = "relations",
    events_extension: str = "events",
) -> List[Case]:
    """Cases from spaCy Examples whose `predicted` docs went through the pipeline."""
    settings = dict(spans_key=spans_key, relations_extension=relations_extension, events_extension=events_extension)
    cases = []
    for i, eg in enumerate(examples):
        gold = view_from_doc(eg.reference, key=str(i), **settings)
        pred = view_from_doc(eg.predicted, key=gold.key, **settings)
        cases.append(compare_views(gold, pred, i))
    return cases


def error_totals(cases: Sequence[Case]) -> Dict[str, int]:
    totals = {"fp": 0, "fn": 0, "label": 0, "boundary": 0}
    for case in cases:
        for key, value in case.errors.items():
            totals[key] += value
    return totals


def worst_first(cases: Sequence[Case]) -> List[int]:
    """Indices of `cases`, most errors first, then lowest F, then file order."""
    return sorted(range(len(cases)), key=lambda i: (-cases[i].n_errors, cases[i].fscore, i))
