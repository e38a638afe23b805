"""Scores for open-IE tuples against gold tuples on the reference docs (`nlp.evaluate`, `spacy evaluate`).

- exact: subject, predicate and object must have the gold spans (character offsets); a part with no span in
  the text (an implicit "is") is compared by its normalized text, and a missing object matches a missing one;
- text: the lenient variant, subject, predicate and object compared as text (case-folded, whitespace
  collapsed, outer punctuation and quotes stripped), wherever they are.

Time and location are not scored: the benchmarks ADELIE reports (CaRB, ROBUST) score the triple. Tuples are
compared as sets per doc.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Dict, Iterable, Optional, Set, Tuple

from spacy.training import Example
from spacy.util import registry

from .open_annotations import OPENIE_DIAGNOSTICS_KEY, triple_records
from .scoring import PRF

SCORED_PARTS = ("subject", "predicate", "object")


def normalize(text: str) -> str:
    return " ".join(text.split()).casefold().strip(" .,;:!?'\"`")


def _exact_part(part: Optional[list]) -> Optional[Tuple]:
    if part is None:
        return None
    text, start, end = part
    return (start, end) if start is not None else ("text", normalize(text))


def exact_keys(records: Iterable[Dict[str, Any]]) -> Set[Tuple]:
    return {tuple(_exact_part(rec.get(name)) for name in SCORED_PARTS) for rec in records}


def text_keys(records: Iterable[Dict[str, Any]]) -> Set[Tuple[str, ...]]:
    return {tuple(normalize(rec[name][0]) if rec.get(name) else "" for name in SCORED_PARTS) for rec in records}


def score_open_ie(examples: Iterable[Example], *, extension: str = "triples", **kwargs: Any) -> Dict[str, Any]:
    """P/R/F of (subject, predicate, object) by span and by text; None where neither side has a tuple."""
    exact, text = PRF(), PRF()
    diag: Dict[str, int] = defaultdict(int)
    seen = False
    for eg in examples:
        gold, pred = triple_records(eg.reference, extension), triple_records(eg.predicted, extension)
        seen = seen or bool(gold or pred)
        exact.add(exact_keys(gold), exact_keys(pred))
        text.add(text_keys(gold), text_keys(pred))
        for key, value in eg.predicted.user_data.get(OPENIE_DIAGNOSTICS_KEY, {}).items():
            diag[key] += value
    scores: Dict[str, Any] = {}
    for prefix, prf in (("openie_exact", exact), ("openie_text", text)):
        for key, value in prf.to_dict().items():
            scores[f"{prefix}_{key}"] = value if seen else None
    scores["openie_unaligned_rate"] = diag["unaligned"] / diag["parts"] if diag["parts"] else 0.0
    scores["openie_diagnostics"] = dict(diag)
    return scores


@registry.scorers("spacy_codeie.openie_scorer.v1")
def make_openie_scorer() -> Callable[..., Dict[str, Any]]:
    """The open-IE scorer, for the component's `scorer` setting."""
    return score_open_ie
