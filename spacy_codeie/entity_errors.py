"""What kind of mistake each entity error is, per gold label: F1 says how much is wrong, this says what to fix.

Every gold mention is one of
- `correct`: a prediction has its offsets and label;
- `wrong_label`: a prediction has its offsets but another label (a clearer class name or description may help);
- `wrong_span`: a prediction with its label overlaps it with other offsets (boundaries: articles, titles, ...);
- `wrong_both`: only predictions with other offsets and another label overlap it;
- `missed`: no prediction overlaps it (recall: more or closer training data).
A prediction that overlaps no gold mention is `spurious`, counted under the label it was given.
`confused_with` counts the labels given instead, for `wrong_label` and `wrong_both`.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Dict, Iterable, List, Literal, Sequence, Set, Tuple

Mention = Tuple[int, int, str]  # start char, end char, label
ErrorKind = Literal["correct", "wrong_label", "wrong_span", "wrong_both", "missed"]
ERROR_KINDS: Tuple[ErrorKind, ...] = ("correct", "wrong_label", "wrong_span", "wrong_both", "missed")


def overlaps(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Whether two (start, end, ...) character ranges share a character (touching ends do not)."""
    return a[0] < b[1] and b[0] < a[1]


def classify(gold: Mention, predicted: Iterable[Mention]) -> Tuple[ErrorKind, List[str]]:
    """The kind of outcome for one gold mention, and the other labels predicted over it (sorted)."""
    touching = [p for p in predicted if overlaps(gold, p)]
    if gold in touching:
        return "correct", []
    same_offsets = sorted(p[2] for p in touching if p[:2] == gold[:2])
    if same_offsets:
        return "wrong_label", same_offsets
    if any(p[2] == gold[2] for p in touching):
        return "wrong_span", []
    if touching:
        return "wrong_both", sorted({p[2] for p in touching})
    return "missed", []


class EntityErrors:
    """Tallies the outcome of every gold mention and the spurious predictions, over many docs."""

    def __init__(self) -> None:
        self.outcomes: Dict[str, Counter] = defaultdict(Counter)
        self.confused_with: Dict[str, Counter] = defaultdict(Counter)
        self.spurious: Counter = Counter()

    def add(self, gold: Set[Mention], predicted: Set[Mention]) -> None:
        for mention in gold:
            kind, others = classify(mention, predicted)
            self.outcomes[mention[2]][kind] += 1
            self.confused_with[mention[2]].update(others)
        for mention in predicted:
            if not any(overlaps(mention, g) for g in gold):
                self.spurious[mention[2]] += 1

    def to_dict(self) -> Dict[str, Any]:
        per_label = {}
        for label in sorted(self.outcomes):
            row: Dict[str, Any] = {kind: self.outcomes[label][kind] for kind in ERROR_KINDS}
            row["confused_with"] = dict(self.confused_with[label].most_common())
            per_label[label] = row
        return {"per_label": per_label, "spurious": dict(sorted(self.spurious.items()))}


def errors_markdown(errors: Dict[str, Any]) -> str:
    """A Markdown table of `EntityErrors.to_dict()`: one row per gold label, then the spurious predictions."""
    lines = ["| gold label | correct | wrong label | wrong span | wrong both | missed | most often given instead |",
             "|---|---|---|---|---|---|---|"]
    for label, row in errors.get("per_label", {}).items():
        instead = ", ".join(f"{other} ({n})" for other, n in list(row["confused_with"].items())[:3])
        lines.append(f"| {label} | " + " | ".join(str(row[k]) for k in ERROR_KINDS) + f" | {instead} |")
    spurious = errors.get("spurious") or {}
    if spurious:
        lines.append("\nSpurious (predicted where no gold mention is): "
                     + ", ".join(f"{label} {n}" for label, n in spurious.items()))
    return "\n".join(lines) + "\n"
