"""The view's HTML without a browser: nesting, escaping, colours, options, gold-vs-predicted marks, CLI, server.

What the page looks like in a browser (arcs drawn, labels visible, RTL) is in test_visualize_browser.py.
"""
import json
import re
import sys
import threading
import urllib.request
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
import spacy

from conftest import PAPER_SCHEMA
from spacy_codeie import render
from spacy_codeie.cli import main
from spacy_codeie.readers import GoldConverter, read_jsonl
from spacy_codeie.visualize import VisualizeError, compare_records, make_server, report_page, view_from_record
from spacy_codeie.visualize.colors import PALETTE, label_color
from spacy_codeie.visualize.views import Mention, nest

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "visualize_samples.jsonl"
TEXT = "Ada Lovelace worked for Babbage Labs, which Acme Corp bought in 1843."
ANSWER = ('\n\tPerson("Ada Lovelace"),\n\tOrg("Babbage Labs"),\n\tOrg("Acme Corp"),\n'
          '\tWorksFor(Person("Ada Lovelace"), Org("Babbage Labs")),\n'
          '\tAcquisition(trigger="bought", buyer=[Org("Acme Corp")], target=[Org("Babbage Labs")])\n]')


class Marks(HTMLParser):
    """Reads back the text of each doc and the nesting of its marks: (depth, mention id, text inside)."""

    def __init__(self):
        super().__init__()
        self.stack, self.marks, self.texts, self.in_text, self.scripts = [], [], [], 0, []
        self._script = None
        self.in_tag = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and "codeie-tag" in (attrs.get("class") or ""):
            self.in_tag = True
        if tag == "div" and "codeie-text" in (attrs.get("class") or "").split():
            self.in_text = 1
            self.texts.append("")
        elif self.in_text:
            self.in_text += 1
            if tag == "mark":
                self.stack.append([int(attrs["data-m"]), attrs["data-label"], ""])
        if tag == "script":
            self._script = [attrs.get("class") or "", ""]

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append(tuple(self._script))
            self._script = None
        if not self.in_text:
            return
        if tag == "span" and self.in_tag:
            self.in_tag = False
        self.in_text -= 1
        if tag == "mark":
            mention, label, text = self.stack.pop()
            self.marks.append((len(self.stack), mention, label, text))
            for outer in self.stack:
                outer[2] += text

    def handle_data(self, data):
        if self._script is not None:
            self._script[1] += data
        if self.in_text:
            if self.in_tag:
                return  # a label tag, not text of the doc
            self.texts[-1] += data
            if self.stack:
                self.stack[-1][2] += data


def parse(markup):
    parser = Marks()
    parser.feed(markup)
    return parser


def arcs_of(markup):
    return [json.loads(body) for cls, body in parse(markup).scripts if cls == "codeie-arcs"]


def samples():
    return list(read_jsonl(SAMPLES))


def test_a_pipeline_doc_renders_entities_relations_and_events(scripted):
    cfg, _ = scripted({TEXT: ANSWER})
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": cfg})
    markup = render(nlp(TEXT), jupyter=False)
    parsed = parse(markup)
    assert parsed.texts == [TEXT]  # every character, in order, nothing added
    marks = {(text, label) for _, _, label, text in parsed.marks}
    assert {("Ada Lovelace", "PERSON"), ("Babbage Labs", "ORG"), ("Acme Corp", "ORG"),
            ("bought", "ACQUISITION")} <= marks
    (arcs,) = arcs_of(markup)
    by_id = {m: text for _, m, _, text in parsed.marks}
    assert sorted((by_id[a["h"]], a["l"], by_id[a["t"]], a["k"]) for a in arcs) == [
        ("Ada Lovelace", "WORKS_FOR", "Babbage Labs", "relation"),
        ("bought", "buyer", "Acme Corp", "role"),
        ("bought", "target", "Babbage Labs", "role"),
    ]
    assert "<style>" in markup and "codeieView" in markup  # a fragment carries its style and script
    assert not markup.lstrip().startswith("<!DOCTYPE")


def test_nested_spans_from_doc_spans_are_nested_marks():
    nlp = spacy.blank("en")
    doc = GoldConverter(nlp).doc(samples()[0])  # "University of London" ORG holds "London" LOC
    assert len(doc.spans["codeie"]) > len(doc.ents)  # the nested one is only in the span group
    parsed = parse(render([doc], jupyter=False))
    depth = {(text, label): d for d, _, label, text in parsed.marks}
    assert depth[("University of London", "ORG")] == 0 and depth[("London", "LOC")] == 1


def test_crossing_mentions_are_split_into_pieces_that_nest():
    text = "abcdefghij"
    mentions = [Mention(0, 0, 6, "A", "entity"), Mention(1, 3, 9, "B", "entity"), Mention(2, 4, 5, "C", "entity")]
    root = nest(text, mentions)

    def flatten(piece, depth=0):
        for child in piece.children:
            if isinstance(child, str):
                yield depth, None, child
            else:
                yield depth, child, None
                yield from flatten(child, depth + 1)

    items = list(flatten(root))
    assert "".join(t for _, _, t in items if t) == text
    pieces = [(p.mention.label, p.first, p.last, p.height) for _, p, _ in items if p]
    # A [0,6) holds B's first piece [3,6) which holds C; B goes on as a second piece [6,9)
    assert pieces == [("A", True, True, 3), ("B", True, False, 2), ("C", True, True, 1), ("B", False, True, 1)]
    html = render({"text": text, "entities": [{"start": m.start, "end": m.end, "label": m.label} for m in mentions]},
                  jupyter=False)
    assert html.count('class="codeie-tag codeie-label">B<') == 1  # one label per mention, on its last piece


def test_markup_in_text_labels_and_ids_renders_as_text():
    evil = "<script>alert('x')</script>"
    text = f"{evil} Ada & Bob </div>"
    record = {"id": "<b>id</b>", "text": text,
              "entities": [{"start": text.index("Ada"), "end": text.index("Ada") + 3, "label": '<img src=x onerror="a()">'},
                           {"start": 0, "end": len(evil), "label": "CODE"}],
              "relations": [{"head": 0, "tail": 1, "label": "</script><script>alert(2)</script>"}]}
    for markup in (render(record, jupyter=False), render([record], page=True, jupyter=False)):
        assert evil not in markup and "<img" not in markup and "<b>id" not in markup
        assert "</script><script>alert(2)" not in markup
        parsed = parse(markup)
        assert parsed.texts == [text]  # the page shows the text as it is
        (arcs,) = arcs_of(markup)
        assert arcs[0]["l"] == "</script><script>alert(2)</script>"  # still intact as data
        assert {cls for cls, _ in parsed.scripts} == {"codeie-arcs", ""}  # no script but ours


def test_colours_are_stable_and_configurable():
    # fixed values: a label keeps its colour across runs, processes (no `hash()`) and releases
    assert (label_color("ORG"), label_color("WORKS_FOR"), label_color("PER")) == ("#7aecec", "#ffc6e6", "#aa9cfc")
    assert label_color("WORKS_FOR") in PALETTE
    assert label_color("ORG", {"ORG": "#123456"}) == "#123456"
    markup = render({"text": "Acme", "entities": [{"start": 0, "end": 4, "label": "ORG"}]},
                    options={"colors": {"ORG": "rebeccapurple"}}, jupyter=False)
    assert "--c:rebeccapurple" in markup
    with pytest.raises(VisualizeError, match="not a CSS colour"):
        label_color("ORG", {"ORG": "red;background:url(http://x)"})


def test_options_are_checked():
    record = {"text": "x"}
    with pytest.raises(VisualizeError, match="Unknown view option 'colours'.*colors"):
        render(record, options={"colours": {}}, jupyter=False)
    with pytest.raises(VisualizeError, match="'auto', 'ltr' or 'rtl'"):
        render(record, options={"direction": "up"}, jupyter=False)
    with pytest.raises(VisualizeError, match="spaCy Docs or records"):
        render([42], jupyter=False)


def test_direction_follows_the_language_unless_set():
    ar, en = samples()[2], samples()[0]
    assert re.search(r'class="codeie-text" dir="rtl" lang="ar"', render(ar, jupyter=False))
    assert re.search(r'class="codeie-text" dir="auto" lang="en"', render(en, jupyter=False))
    assert 'dir="ltr"' in render(ar, options={"direction": "ltr"}, jupyter=False)


def test_bad_offsets_say_which_annotation_to_fix():
    with pytest.raises(VisualizeError, match=r"record 'r1': entity 0 has offsets \(2, 40\)"):
        render({"id": "r1", "text": "short", "entities": [{"start": 2, "end": 40, "label": "X"}]}, jupyter=False)
    with pytest.raises(VisualizeError, match="relation 0 has head/tail 0/3"):
        render({"text": "ab", "entities": [{"start": 0, "end": 1, "label": "X"}],
                "relations": [{"head": 0, "tail": 3, "label": "R"}]}, jupyter=False)


def test_jupyter_mode_needs_ipython(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)  # as where IPython is not installed
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    with pytest.raises(VisualizeError, match="jupyter=False"):
        render({"text": "x"}, jupyter=True)


def _pair():
    """Gold and a prediction with one error of each kind, for entities, relations and event arguments."""
    text = "Ada Lovelace joined Acme Corp in Paris, and Acme bought Babbage Labs."
    at = lambda s, n=0: text.index(s) if n == 0 else text.index(s, text.index(s) + 1)  # noqa: E731

    def ent(s, label, n=0):
        return {"start": at(s, n), "end": at(s, n) + len(s), "label": label}

    gold = {"id": "g", "text": text,
            "entities": [ent("Ada Lovelace", "PER"), ent("Acme Corp", "ORG"), ent("Paris", "LOC"),
                         ent("Babbage Labs", "ORG")],
            "relations": [{"head": 0, "tail": 1, "label": "WORKS_FOR"}, {"head": 1, "tail": 2, "label": "BASED_IN"}],
            "events": [{"trigger": ent("bought", ""), "label": "BUY",
                        "arguments": [dict(ent("Acme", ""), role="buyer", start=at("Acme", 1), end=at("Acme", 1) + 4),
                                      dict(ent("Babbage Labs", ""), role="target")]}]}
    pred = {"id": "p", "text": text,
            "entities": [ent("Ada Lovelace", "PER"),  # ok
                         ent("Acme", "ORG"),  # boundary (gold: Acme Corp)
                         ent("Paris", "ORG"),  # wrong label
                         ent("Babbage", "PER")],  # overlaps an ORG with another label: false positive
            "relations": [{"head": 0, "tail": 1, "label": "WORKS_FOR"},  # boundary: tail Acme vs Acme Corp
                          {"head": 0, "tail": 2, "label": "LIVES_IN"}],  # false positive
            "events": [{"trigger": ent("bought", ""), "label": "BUY",
                        "arguments": [dict(ent("Acme", ""), role="seller", start=at("Acme", 1),
                                           end=at("Acme", 1) + 4)]}]}  # wrong role; target missed
    return gold, pred


def test_each_kind_of_error_is_marked_on_its_side():
    gold, pred = _pair()
    (case,) = compare_records([gold], [pred])

    def statuses(view):
        ents = {(view.text[m.start:m.end], m.label): m.status for m in view.mentions if m.kind == "entity"}
        arcs = {a.label: a.status for a in view.arcs}
        return ents, arcs

    gold_ents, gold_arcs = statuses(case.gold)
    pred_ents, pred_arcs = statuses(case.pred)
    assert pred_ents == {("Ada Lovelace", "PER"): "ok", ("Acme", "ORG"): "boundary", ("Paris", "ORG"): "label",
                         ("Babbage", "PER"): "fp"}
    assert gold_ents == {("Ada Lovelace", "PER"): "ok", ("Acme Corp", "ORG"): "boundary", ("Paris", "LOC"): "label",
                         ("Babbage Labs", "ORG"): "fn"}
    assert pred_arcs == {"WORKS_FOR": "boundary", "LIVES_IN": "fp", "seller": "label"}
    assert gold_arcs == {"WORKS_FOR": "boundary", "BASED_IN": "fn", "buyer": "label", "target": "fn"}
    assert case.errors == {"fp": 2, "fn": 3, "label": 2, "boundary": 2}
    assert case.tp == 2 and case.n_pred == 8 and case.n_gold == 9  # PER and the trigger agree
    assert case.fscore == pytest.approx(4 / 17)


YAYI_TEXT = "Widget Co said Acme bought Widget Co on Monday."
TRIGGERLESS = {"id": "yayi", "lang": "en", "text": YAYI_TEXT, "entities": [], "relations": [],
               "events": [{"trigger": None, "label": "ACQUISITION",
                           "arguments": [{"start": 15, "end": 19, "text": "Acme", "role": "buyer"},
                                         {"start": 27, "end": 36, "text": "Widget Co", "role": "target"}]}]}


def test_a_triggerless_event_renders_its_roles_without_a_trigger_mark():
    doc = GoldConverter(spacy.blank("en")).doc(TRIGGERLESS)
    assert doc._.events[0].trigger is None
    markup = render(doc, jupyter=False)
    parsed = parse(markup)
    assert parsed.texts == [YAYI_TEXT]
    assert [(label, text) for _, _, label, text in parsed.marks] == [("", "Acme"), ("", "Widget Co")]  # no trigger
    (arcs,) = arcs_of(markup)
    by_id = {m: text for _, m, _, text in parsed.marks}
    assert [(a["h"], a["e"], a["l"], by_id[a["t"]]) for a in arcs] == [(None, "ACQUISITION", "buyer", "Acme"),
                                                                      (None, "ACQUISITION", "target", "Widget Co")]
    assert 'ACQUISITION <i class="codeie-no-trigger">no trigger</i> → <b>buyer</b> → <q>Acme</q>' in markup
    assert "0 relations, 1 events" in markup
    labels = json.loads(unescape(re.search(r'data-labels="([^"]*)"', markup).group(1)))
    assert labels == ["ACQUISITION", "buyer", "target"]  # its type too, for the legend and the "docs with" filter


def test_a_triggerless_prediction_matches_gold_arguments_and_misses_the_trigger():
    event = dict(TRIGGERLESS["events"][0], trigger={"start": 20, "end": 26, "text": "bought"})
    gold = dict(TRIGGERLESS, events=[event])
    (case,) = compare_records([gold], [TRIGGERLESS])
    assert {a.label: a.status for a in case.pred.arcs} == {"buyer": "ok", "target": "ok"}
    assert [m.status for m in case.gold.mentions if m.kind == "trigger"] == ["fn"]
    assert case.tp == 2 and case.errors == {"fp": 0, "fn": 1, "label": 0, "boundary": 0}
    markup = report_page([case], {})
    assert "no trigger" in markup and "false negative" in markup


def test_the_report_puts_the_worst_docs_first_and_shows_scores():
    gold, pred = _pair()
    perfect = view_from_record(gold)
    records = [(gold, gold), (gold, pred), ({"text": "x"}, {"text": "x"})]
    cases = compare_records([g for g, _ in records], [p for _, p in records])
    markup = report_page(cases, {"codeie_ents_p": 0.5, "codeie_ents_r": 0.25, "codeie_ents_f": 1 / 3,
                                 "codeie_ents_per_type": {"PER": {"p": 1.0, "r": 1.0, "f": 1.0}}})
    order = [int(i) for i in re.findall(r'<article class="codeie-item codeie-case" id="codeie-case-(\d+)"', markup)]
    assert order == [1, 0, 2]  # the doc with errors first, then the rest in file order
    assert re.search(r"<td>Entities \(all mentions\)</td><td>50.0</td><td>25.0</td><td>33.3</td>", markup)
    assert 'aria-label="Entities: F per label"' in markup  # the plot
    assert "2 false positives" in markup and "3 false negatives" in markup
    assert perfect.labels() <= set(re.findall(r'data-label="([^"]*)"', markup))
    assert markup.count('class="codeie-doc codeie-side"') == 6  # gold and predicted for each doc
    assert "Entity errors by kind" not in markup  # the scores carry no error table
    errors = {"per_label": {"ORG": {"correct": 1, "wrong_label": 2, "wrong_span": 0, "wrong_both": 0, "missed": 3,
                                    "confused_with": {"LOC": 2}}}, "spurious": {"PER": 4}}
    markup = report_page(cases, {"codeie_ents_errors": errors})
    table = markup[markup.index("Entity errors by kind"):]
    assert re.search(r"ORG</span></td><td>1</td><td>2</td><td>0</td><td>0</td><td>3</td><td>"
                     r"<span[^>]*>LOC</span> 2</td>", table)
    assert re.search(r"Spurious[^<]*<span[^>]*>PER</span> 4", table)


def test_cli_show_writes_one_self_contained_page(tmp_path, capsys):
    out = tmp_path / "view.html"
    assert main(["show", str(SAMPLES), str(out), "--colors", '{"ORG": "#abcdef"}']) == 0
    markup = out.read_text(encoding="utf8")
    assert markup.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", markup)  # loads nothing
    assert not re.search(r"@import|url\(", markup)
    assert 'class="codeie-index"' in markup and 'data-role="only"' in markup  # index and label filter
    records = samples()
    for record in records:
        assert f'href="#codeie-doc-{records.index(record)}">{record["id"]}</a>' in markup
    assert "--c:#abcdef" in markup
    assert parse(markup).texts == [r["text"] for r in records]
    assert "needs no network" in capsys.readouterr().err
    assert main(["show", str(SAMPLES), str(out), "--colors", "{nope"]) == 2
    assert "--colors must be a JSON object" in capsys.readouterr().err


def test_cli_show_with_gold_marks_errors(tmp_path):
    gold, pred = _pair()
    (tmp_path / "gold.jsonl").write_text(json.dumps(gold) + "\n", encoding="utf8")
    (tmp_path / "pred.jsonl").write_text(json.dumps(pred) + "\n", encoding="utf8")
    out = tmp_path / "report.html"
    assert main(["show", str(tmp_path / "pred.jsonl"), str(out), "--gold", str(tmp_path / "gold.jsonl")]) == 0
    markup = out.read_text(encoding="utf8")
    for status in ("fp", "fn", "label", "boundary"):
        assert f"codeie-s-{status}" in markup
    assert re.search(r"<td>Relations, strict</td><td>0.0</td>", markup)  # scored like evaluate scores


def test_cli_evaluate_writes_the_report_of_its_predictions(scripted, tmp_path, capsys):
    gold = {"id": "d1", "lang": "en", "text": TEXT, "entities": [
        {"start": 0, "end": 12, "label": "PERSON"}, {"start": 24, "end": 36, "label": "ORG"}],
        "relations": [{"head": 0, "tail": 1, "label": "WORKS_FOR"}]}
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps(gold) + "\n", encoding="utf8")
    cfg, _ = scripted({TEXT: ANSWER})  # also predicts Acme Corp and the event: false positives
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": cfg})
    nlp.config.to_disk(tmp_path / "pipeline.cfg")
    out = tmp_path / "report.html"
    assert main(["evaluate", str(test), "--pipeline", str(tmp_path / "pipeline.cfg"), "--html", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Relations, strict" in printed
    markup = out.read_text(encoding="utf8")
    assert "Evaluation on test.jsonl" in markup
    parsed = parse(markup)
    assert parsed.texts == [TEXT, TEXT]  # gold and predicted
    pred_marks = {(text, label) for _, _, label, text in parsed.marks}
    assert ("Acme Corp", "ORG") in pred_marks and ("bought", "ACQUISITION") in pred_marks
    assert re.search(r'class="codeie-m codeie-entity codeie-s-fp"[^>]*data-label="ORG"', markup)
    assert re.search(r'data-errors="[1-9]', markup)


def test_serve_answers_with_the_page():
    markup = render(samples(), page=True, jupyter=False)
    with make_server(markup, "127.0.0.1", 0) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{httpd.server_port}/", timeout=10) as response:
                body = response.read().decode("utf8")
                assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        finally:
            httpd.shutdown()
    assert body == markup
