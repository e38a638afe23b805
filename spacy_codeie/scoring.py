"""Strict, offset-based scores for entities, relations and events, with parse-error and hallucination rates.

- entities: (start, end, label), over every predicted mention (`doc.spans[spans_key]`, nested ones too),
  plus spaCy's usual `ents_*` over `doc.ents` so `spacy evaluate` shows them;
- relations strict: both argument spans and entity types, and the label; boundary: spans and label;
- event triggers: identification (span) and classification (span + type);
- event arguments: identification (event type + span) and classification (+ role), as in OneIE-style EE;
- `codeie_ents_errors`: what kind of mistake each entity error is, per gold label (`entity_errors`).

Arguments are keyed without their trigger, so the arguments of a trigger-less event (YAYI-UIE names roles
only) score like any others; such an event has no trigger to score, so gold triggers it stands for are missed.
"""
from __future__ import annotations

from collections import defaultdict
from timeit import default_timer as timer
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Set, Tuple

from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry

from .annotations import DIAGNOSTICS_KEY, event_records, relation_records
from .entity_errors import EntityErrors

# The overall scores, as (title, key prefix): what `evaluate` prints and the HTML report shows.
SCORE_ROWS = [
    ("Entities (all mentions)", "codeie_ents"),
    ("Entities (doc.ents)", "ents"),
    ("Relations, strict", "codeie_rel_strict"),
    ("Relations, boundary", "codeie_rel_boundary"),
    ("Triggers, identification", "codeie_trigger_id"),
    ("Triggers, classification", "codeie_trigger_cls"),
    ("Arguments, identification", "codeie_arg_id"),
    ("Arguments, classification", "codeie_arg_cls"),
]
# Scores with a per-label breakdown, as (title, key prefix, what their labels are).
PER_LABEL_ROWS = [
    ("Entities", "codeie_ents", "entity"),
    ("Relations (strict)", "codeie_rel_strict", "relation"),
    ("Event triggers", "codeie_trigger_cls", "trigger"),
    ("Event arguments", "codeie_arg_cls", "role"),
]


class PRF:
    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def add(self, gold: Set, pred: Set) -> None:
        self.tp += len(gold & pred)
        self.fp += len(pred - gold)
        self.fn += len(gold - pred)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def fscore(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> Dict[str, float]:
        return {"p": self.precision, "r": self.recall, "f": self.fscore}


class _Tally:
    """Overall and per-label PRF for one kind of item; the label is the item's last field."""

    def __init__(self) -> None:
        self.total = PRF()
        self.per_label: Dict[str, PRF] = defaultdict(PRF)

    def add(self, gold: Set[Tuple], pred: Set[Tuple], label_of: Callable[[Tuple], str]) -> None:
        self.total.add(gold, pred)
        for label in {label_of(x) for x in gold | pred}:
            self.per_label[label].add({x for x in gold if label_of(x) == label},
                                      {x for x in pred if label_of(x) == label})

    def write(self, scores: Dict[str, Any], prefix: str, per_label: bool = True) -> None:
        for key, value in self.total.to_dict().items():
            scores[f"{prefix}_{key}"] = value
        if per_label:
            scores[f"{prefix}_per_type"] = {label: prf.to_dict() for label, prf in sorted(self.per_label.items())}


def _mentions(doc: Doc, spans_key: str) -> Set[Tuple[int, int, str]]:
    spans = doc.spans[spans_key] if spans_key in doc.spans else doc.ents
    return {(s.start_char, s.end_char, s.label_) for s in spans}


def _relations(doc: Doc, ext: str) -> Tuple[Set[Tuple], Set[Tuple]]:
    strict, boundary = set(), set()
    for rec in relation_records(doc, ext):
        h, t = rec["head"], rec["tail"]
        strict.add((h[0], h[1], h[2], t[0], t[1], t[2], rec["label"]))
        boundary.add((h[0], h[1], t[0], t[1], rec["label"]))
    return strict, boundary


def _events(doc: Doc, ext: str) -> Tuple[Set[Tuple], Set[Tuple], Set[Tuple], Set[Tuple]]:
    trig_id, trig_cls, arg_id, arg_cls = set(), set(), set(), set()
    for rec in event_records(doc, ext):
        if rec["trigger"] is not None:  # a trigger-less event counts by its arguments only
            s, e = rec["trigger"]
            trig_id.add((s, e, rec["label"]))  # label kept only for per-type tallies
            trig_cls.add((s, e, rec["label"]))
        for a_start, a_end, role, _ in rec["arguments"]:
            arg_id.add((a_start, a_end, rec["label"]))
            arg_cls.add((a_start, a_end, role, rec["label"]))
    return trig_id, trig_cls, arg_id, arg_cls


def score_codeie(
    examples: Iterable[Example],
    *,
    spans_key: str = "codeie",
    relations_extension: str = "relations",
    events_extension: str = "events",
    **kwargs: Any,
) -> Dict[str, Any]:
    """Strict P/R/F for every kind of annotation, per label, and the rates of rejected and invented output."""
    ents, mentions, errors = _Tally(), _Tally(), EntityErrors()
    rel_strict, rel_boundary = _Tally(), _Tally()
    trig_id, trig_cls, arg_id, arg_cls = PRF(), _Tally(), PRF(), _Tally()
    diag: Dict[str, int] = defaultdict(int)
    has_rel = has_event = False
    last = lambda item: item[-1]  # noqa: E731
    for eg in examples:
        pred, gold = eg.predicted, eg.reference
        ents.add({(e.start_char, e.end_char, e.label_) for e in gold.ents},
                 {(e.start_char, e.end_char, e.label_) for e in pred.ents}, last)
        gold_mentions, pred_mentions = _mentions(gold, spans_key), _mentions(pred, spans_key)
        mentions.add(gold_mentions, pred_mentions, last)
        errors.add(gold_mentions, pred_mentions)
        g_strict, g_boundary = _relations(gold, relations_extension)
        p_strict, p_boundary = _relations(pred, relations_extension)
        has_rel = has_rel or bool(g_strict or p_strict)
        rel_strict.add(g_strict, p_strict, last)
        rel_boundary.add(g_boundary, p_boundary, last)
        g_ev, p_ev = _events(gold, events_extension), _events(pred, events_extension)
        has_event = has_event or any(g_ev) or any(p_ev)
        trig_id.add({x[:2] for x in g_ev[0]}, {x[:2] for x in p_ev[0]})
        trig_cls.add(g_ev[1], p_ev[1], last)
        arg_id.add(g_ev[2], p_ev[2])
        arg_cls.add(g_ev[3], p_ev[3], lambda item: item[2])
        for key, value in pred.user_data.get(DIAGNOSTICS_KEY, {}).items():
            diag[key] += value
    scores: Dict[str, Any] = {}
    if mentions.total.tp + mentions.total.fp + mentions.total.fn or ents.total.tp + ents.total.fp + ents.total.fn:
        ents.write(scores, "ents")
        mentions.write(scores, "codeie_ents")
        scores["codeie_ents_errors"] = errors.to_dict()
    else:  # no entity in gold or prediction: nothing to score (as spaCy does)
        scores.update({"ents_p": None, "ents_r": None, "ents_f": None, "codeie_ents_f": None})
    if has_rel:
        rel_strict.write(scores, "codeie_rel_strict")
        rel_boundary.write(scores, "codeie_rel_boundary")
    else:
        scores.update({"codeie_rel_strict_f": None, "codeie_rel_boundary_f": None})
    if has_event:
        for key, value in trig_id.to_dict().items():
            scores[f"codeie_trigger_id_{key}"] = value
        trig_cls.write(scores, "codeie_trigger_cls")
        for key, value in arg_id.to_dict().items():
            scores[f"codeie_arg_id_{key}"] = value
        arg_cls.write(scores, "codeie_arg_cls")
    else:
        scores.update({"codeie_trigger_cls_f": None, "codeie_arg_cls_f": None})
    generated = diag["instances"] + diag["unparseable"] + diag["unknown_class"] + diag["bad_arguments"]
    rejected = diag["unparseable"] + diag["unknown_class"] + diag["bad_arguments"] + diag["unknown_role"]
    scores["codeie_parse_error_rate"] = rejected / (generated + diag["unknown_role"]) if generated else 0.0
    scores["codeie_hallucination_rate"] = diag["hallucinated"] / diag["mentions"] if diag["mentions"] else 0.0
    scores["codeie_truncated_rate"] = diag["truncated"] / diag["prompts"] if diag["prompts"] else 0.0
    scores["codeie_diagnostics"] = dict(diag)
    return scores


@registry.scorers("spacy_codeie.scorer.v1")
def make_codeie_scorer() -> Callable[..., Dict[str, Any]]:
    """The codeie scorer, for the component's `scorer` setting and for `nlp.evaluate`."""
    return score_codeie


def evaluate_keeping_predictions(nlp: Any, examples: Sequence[Example],
                                 batch_size: Optional[int] = None) -> Dict[str, Any]:
    """The scores of `nlp.evaluate`, with each Example's `predicted` doc replaced by the pipeline's output.

    `nlp.evaluate` scores copies and drops them; reports that show what was predicted need the docs.
    """
    from spacy.scorer import Scorer

    start = timer()
    docs = nlp.pipe((eg.predicted for eg in examples), batch_size=batch_size or nlp.batch_size)
    for eg, doc in zip(examples, docs):
        eg.predicted = doc
    elapsed = timer() - start
    scores = Scorer(nlp=nlp).score(list(examples))
    n_words = sum(len(eg.predicted) for eg in examples)
    scores["speed"] = n_words / elapsed if elapsed else 0.0
    return scores
