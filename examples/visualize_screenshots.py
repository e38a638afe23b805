"""The screenshots in docs/: the view of the example docs (English, Chinese, Arabic) and an evaluation page.

    python examples/visualize_screenshots.py            # needs Chromium (Debian: apt-get install chromium)

The "predicted" side of the evaluation page is the gold data with a few errors of each kind put in by hand,
so the page shows every mark without running a model.
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from spacy_codeie import render
from spacy_codeie.readers import read_jsonl
from spacy_codeie.visualize import records_report
from spacy_codeie.visualize.browser import screenshot

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"


def with_errors(records):
    """A copy of the records with a wrong label, a wrong boundary, a missed and an invented annotation."""
    pred = copy.deepcopy(records)
    en = pred[0]
    text = en["text"]
    en["entities"][2]["label"] = "ORG"  # London: LOC -> ORG
    university = en["entities"][1]
    university["start"] = text.index("the University")  # boundary
    en["relations"] = [r for r in en["relations"] if r["label"] != "LOCATED_IN"]  # missed
    en["relations"].append({"head": 3, "tail": 4, "label": "WORKS_FOR"})  # invented
    en["events"][0]["arguments"] = [a for a in en["events"][0]["arguments"] if a["role"] != "time"]
    en["events"][0]["arguments"][0]["role"] = "seller"  # wrong role
    return pred


def main() -> None:
    records = list(read_jsonl(HERE / "visualize_samples.jsonl"))
    with tempfile.TemporaryDirectory() as tmp:
        view = Path(tmp) / "view.html"
        view.write_text(render(records[:3], page=True, jupyter=False, options={"title": "spacy-codeie view"}),
                        encoding="utf8")
        screenshot(view, DOCS / "visualize_view.png", width=1000, height=790)
        wrapped = Path(tmp) / "wrapped.html"
        wrapped.write_text(render(records[3:], page=True, jupyter=False, options={"title": "A long doc wraps"}),
                           encoding="utf8")
        screenshot(wrapped, DOCS / "visualize_wrapped.png", width=760, height=520)
        report = Path(tmp) / "report.html"
        report.write_text(records_report(records, with_errors(records), title="Evaluation: gold vs predicted"),
                          encoding="utf8")
        screenshot(report, DOCS / "visualize_report.png", width=1300, height=1650)
    print(f"Wrote the screenshots to {DOCS}")


if __name__ == "__main__":
    main()
