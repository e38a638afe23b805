"""The pages in a real headless Chromium: scripts run without error, every label is drawn where it can be seen
(not covered, not off the page), right-to-left text runs right to left, controls work, and screenshots are written.

Chromium comes from Debian's packages: the `chromium` fixture installs it where it is absent and the tests run
as root with apt-get; elsewhere they are skipped, saying so. Set CODEIE_SCREENSHOTS=folder to keep the PNGs.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import spacy
from test_visualize import ANSWER, SAMPLES, TEXT, TRIGGERLESS, _pair

from conftest import PAPER_SCHEMA
from spacy_codeie import render
from spacy_codeie.readers import GoldConverter, read_jsonl
from spacy_codeie.visualize import records_report
from spacy_codeie.visualize.browser import dump_dom, find_chromium, screenshot

PACKAGES = ["chromium", "fonts-wqy-microhei"]  # the font: CJK glyphs in screenshots


def _apt_install(packages):
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return "installing needs root and apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"{' '.join(cmd)} failed: {err}"
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}"
    return ""


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium; installed from Debian's packages where absent (as in CI on a fresh machine)."""
    if find_chromium() is None:
        why = _apt_install(PACKAGES)
        if find_chromium() is None:
            pytest.skip(f"Chromium is not installed and could not be installed ({why}); install the Debian "
                        f"package 'chromium' (or set CODEIE_CHROMIUM) to run the browser tests")
    elif shutil.which("fc-list") and not subprocess.run(["fc-list", ":lang=zh"], capture_output=True,
                                                        text=True).stdout.strip():
        _apt_install(PACKAGES[1:])  # only the screenshots need it; the checks below do not
    return find_chromium()


# Runs first in <head>: records script errors, then, after the page's own script drew, reports what a reader
# sees: each label's box, whether it is the topmost element at its centre, each mark's box, and control tests.
PROBE = r"""<script>
window.__errors = [];
addEventListener("error", function (e) { __errors.push(String(e.message || e)); });
addEventListener("unhandledrejection", function (e) { __errors.push("rejection: " + e.reason); });
function __layout() {  // where every label and mark is now
  return JSON.stringify(Array.prototype.map.call(document.querySelectorAll(".codeie-label, mark"), function (el) {
    var r = el.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }));
}
function __pending() {  // docs on the screen that the page has not drawn yet
  return Array.prototype.filter.call(document.querySelectorAll(".codeie-doc"), function (d) {
    var r = d.getBoundingClientRect();
    return r.top < innerHeight && !d.hasAttribute("data-codeie-drawn") && !d.hasAttribute("data-codeie-error");
  }).length;
}
function __whenSettled(then, tries) {  // the page redraws on resize and font loads: wait until nothing moves
  var before = __layout();
  setTimeout(function () {
    if ((__layout() === before && !__pending()) || tries > 30) then(); else __whenSettled(then, tries + 1);
  }, 300);
}
addEventListener("load", function () { __whenSettled(function () {
  var out = { errors: __errors, docs: document.querySelectorAll(".codeie-doc").length,
              drawn: document.querySelectorAll(".codeie-doc[data-codeie-drawn]").length,
              failed: Array.prototype.map.call(document.querySelectorAll("[data-codeie-error]"),
                                               function (d) { return d.getAttribute("data-codeie-error"); }),
              title: document.title, labels: [], marks: [], texts: [], width: innerWidth };
  document.querySelectorAll(".codeie-label").forEach(function (el) {
    var r = el.getBoundingClientRect(), hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    var box = el.closest(".codeie-doc").querySelector(".codeie-text").getBoundingClientRect();  // its doc's text
    var shown = el.querySelector("text") || el;  // an arc's label: its <text>, not its <title> tooltip
    out.labels.push({ text: shown.textContent, doc: el.closest(".codeie-doc").id, left: r.left, right: r.right,
                      top: r.top + scrollY, width: r.width, height: r.height,
                      topmost: !!hit && (hit === el || el.contains(hit)),
                      inside: r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5 });
  });
  document.querySelectorAll("mark.codeie-m").forEach(function (el) {
    var r = el.getClientRects()[0];
    out.marks.push({ doc: el.closest(".codeie-doc").id, m: +el.getAttribute("data-m"), label: el.getAttribute("data-label"),
                     left: r.left, right: r.right, top: r.top });
  });
  document.querySelectorAll(".codeie-text").forEach(function (el) {
    out.texts.push({ doc: el.closest(".codeie-doc").id, text: el.textContent, direction: getComputedStyle(el).direction });
  });
  if (window.__more) window.__more(out);
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 0); });
</script>"""


def probe(markup, path, *, width=1200, height=3000, more=""):
    """Write `markup` with the probe to `path`, load it in Chromium and return the probe's report."""
    script = PROBE + (f"<script>{more}</script>" if more else "")
    if "<head>" in markup:
        page = markup.replace("<head>", "<head>" + script, 1)
    else:
        page = f'<!DOCTYPE html><html><head><meta charset="utf-8">{script}</head><body>{markup}</body></html>'
    path.write_text(page, encoding="utf8")
    dom = dump_dom(path, width=width, height=height)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"the probe did not report; the page's DOM ends with: {dom[-500:]}"
    import html

    return json.loads(html.unescape(found.group(1)))


def sample_docs():
    """Real Docs: the English one from a codeie pipeline, the others from gold records (nested spans too)."""
    from conftest import SCRIPTS, ScriptedModel

    SCRIPTS["browser"] = ScriptedModel({TEXT: ANSWER})
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA,
                                   "model": {"@llm_models": "codeie_test.Scripted.v1", "script": "browser"}})
    docs = [nlp(TEXT)]
    records = list(read_jsonl(SAMPLES))
    for record in records:
        docs.append(GoldConverter(spacy.blank(record["lang"])).doc(record))
    return docs, records


def expected_labels(record):
    labels = {e["label"] for e in record["entities"]} | {r["label"] for r in record["relations"]}
    for event in record["events"]:
        labels.add(event["label"])
        labels.update(a["role"] for a in event["arguments"])
    return labels


def assert_all_visible(report, labels_by_doc):
    assert report["errors"] == [] and report["failed"] == []
    assert report["drawn"] == report["docs"] > 0
    for doc_id, labels in labels_by_doc.items():
        seen = [x for x in report["labels"] if x["doc"] == doc_id]
        hidden = [x for x in seen if not (x["topmost"] and x["inside"] and x["width"] > 0 and x["height"] > 0
                                          and x["left"] >= 0 and x["right"] <= report["width"])]
        assert not hidden, f"labels in {doc_id} not visible: {hidden}"
        assert labels <= {x["text"] for x in seen}, f"{doc_id}: missing {labels - {x['text'] for x in seen}}"


def test_english_chinese_arabic_docs_draw_every_label(chromium, tmp_path):
    docs, records = sample_docs()
    markup = render(docs, page=True, jupyter=False, options={"title": "codeie view"})
    report = probe(markup, tmp_path / "view.html")
    wanted = {"codeie-doc-0": {"PERSON", "ORG", "WORKS_FOR", "ACQUISITION", "buyer", "target"}}
    wanted.update({f"codeie-doc-{i + 1}": expected_labels(r) for i, r in enumerate(records)})
    assert_all_visible(report, wanted)
    texts = {t["doc"]: t for t in report["texts"]}
    assert [texts[f"codeie-doc-{i}"]["text"] for i in range(len(docs))] != []
    for i, record in enumerate(records):  # the text reads as it is (label tags aside)
        shown = texts[f"codeie-doc-{i + 1}"]["text"]
        for label in expected_labels(record):
            shown = shown.replace(label, "")
        assert shown == record["text"]
    # Arabic runs right to left: its first mention is right of its last on the line
    arabic = records.index(next(r for r in records if r["lang"] == "ar")) + 1
    assert texts[f"codeie-doc-{arabic}"]["direction"] == "rtl"
    marks = [m for m in report["marks"] if m["doc"] == f"codeie-doc-{arabic}"]
    first = next(m for m in marks if m["label"] == "ACQUISITION")  # the sentence's first word
    last = next(m for m in marks if m["label"] == "DATE")  # its last mention
    assert first["left"] > last["right"]
    # arcs of the long English doc cross lines and still leave room: no label sits on another
    long_doc = f"codeie-doc-{records.index(next(r for r in records if r['id'] == 'en-long')) + 1}"
    boxes = [x for x in report["labels"] if x["doc"] == long_doc]
    for a in boxes:
        for b in boxes:
            if a is not b:
                assert (a["right"] <= b["left"] or b["right"] <= a["left"] or a["top"] + a["height"] <= b["top"]
                        or b["top"] + b["height"] <= a["top"]), (a, b)
    png = screenshot(tmp_path / "view.html", tmp_path / "view.png", width=1100, height=1300)
    _check_png(png, 1100, 1300)
    _keep(png, "view.png")


def test_narrow_window_wraps_and_still_shows_every_label(chromium, tmp_path):
    records = list(read_jsonl(SAMPLES))
    report = probe(render(records, page=True, jupyter=False), tmp_path / "narrow.html", width=420, height=4000)
    assert_all_visible(report, {f"codeie-doc-{i}": expected_labels(r) for i, r in enumerate(records)})


def test_evaluation_page_marks_errors_and_its_controls_work(chromium, tmp_path):
    gold, pred = _pair()
    records = list(read_jsonl(SAMPLES))
    markup = records_report([gold] + records, [pred] + records, title="gold vs predicted")
    more = r"""window.__more = function (out) {
  var order = function () { return Array.prototype.map.call(document.querySelectorAll(".codeie-items > .codeie-case"),
                                                     function (c) { return c.id; }); };
  out.worstFirst = order();
  var sort = document.querySelector('select[data-role="sort"]');
  sort.value = "file"; sort.dispatchEvent(new Event("change", { bubbles: true }));
  out.fileOrder = order();
  var box = document.querySelector('input[type="checkbox"][data-label="WORKS_FOR"]');
  box.checked = false; box.dispatchEvent(new Event("change", { bubbles: true }));
  out.arcLabelsAfterOff = Array.prototype.map.call(document.querySelectorAll(".codeie-arc-text"),
                                                   function (t) { return t.textContent; });
  var errorsOnly = document.querySelector('input[data-role="errors-only"]');
  errorsOnly.checked = true; errorsOnly.dispatchEvent(new Event("change", { bubbles: true }));
  out.shownWithErrors = Array.prototype.filter.call(document.querySelectorAll(".codeie-case"),
                                                     function (c) { return c.style.display !== "none"; }).length;
};"""
    report = probe(markup, tmp_path / "report.html", width=1400, height=5000, more=more)
    wanted = {"codeie-doc-0": {"PER", "ORG", "LOC", "WORKS_FOR", "BASED_IN", "buyer", "target", "BUY"},
              "codeie-doc-1": {"PER", "ORG", "WORKS_FOR", "LIVES_IN", "seller", "BUY"}}
    assert_all_visible(report, wanted)
    assert report["worstFirst"][0] == "codeie-case-0"  # the one doc with errors
    assert report["fileOrder"] == [f"codeie-case-{i}" for i in range(len(records) + 1)]
    assert "WORKS_FOR" not in report["arcLabelsAfterOff"] and "LOCATED_IN" in report["arcLabelsAfterOff"]
    assert report["shownWithErrors"] == 1
    png = screenshot(tmp_path / "report.html", tmp_path / "report.png", width=1300, height=1500)
    _check_png(png, 1300, 1500)
    _keep(png, "report.png")


def test_triggerless_events_draw_their_roles_in_english_and_chinese(chromium, tmp_path):
    zh_text = "习近平在北京会见了普京。"
    zh = {"id": "zh", "lang": "zh", "text": zh_text, "entities": [], "relations": [],
          "events": [{"trigger": None, "label": "会见", "arguments": [
              {"start": 0, "end": 3, "role": "会见主体"}, {"start": 9, "end": 11, "role": "会见对象"},
              {"start": 4, "end": 6, "role": "地点"}]}]}
    docs = [GoldConverter(spacy.blank("en")).doc(TRIGGERLESS), GoldConverter(spacy.blank("zh")).doc(zh)]
    more = r"""window.__more = function (out) {
  var box = document.querySelector('input[type="checkbox"][data-label="ACQUISITION"]');
  box.checked = false; box.dispatchEvent(new Event("change", { bubbles: true }));
  out.arcLabelsAfterOff = Array.prototype.map.call(document.querySelectorAll(".codeie-arc-text"),
                                                   function (t) { return t.textContent; });
};"""
    report = probe(render(docs, page=True, jupyter=False), tmp_path / "triggerless.html", more=more)
    assert_all_visible(report, {"codeie-doc-0": {"ACQUISITION: buyer", "ACQUISITION: target"},
                                "codeie-doc-1": {"会见: 会见主体", "会见: 会见对象", "会见: 地点"}})
    assert {m["label"] for m in report["marks"]} == {""}  # arguments only: no trigger is marked
    assert [t["text"] for t in report["texts"]] == [TRIGGERLESS["text"], zh_text]
    assert sorted(report["arcLabelsAfterOff"]) == ["会见: 会见主体", "会见: 会见对象", "会见: 地点"]


def test_a_script_in_the_text_stays_text_in_the_browser(chromium, tmp_path):
    text = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\"> Ada"
    record = {"id": "<script>document.title='pwned'</script>", "text": text,
              "entities": [{"start": text.index("Ada"), "end": len(text), "label": "<script>x</script>"}],
              "relations": [{"head": 0, "tail": 0, "label": "</script><script>document.title='pwned'</script>"}]}
    report = probe(render(record, page=True, jupyter=False, options={"title": "safe"}), tmp_path / "x.html")
    assert report["errors"] == [] and report["title"] == "safe"
    assert report["texts"][0]["text"] == text + "<script>x</script>"  # the text, then the label tag, as text
    assert "</script><script>document.title='pwned'</script>" in {x["text"] for x in report["labels"]}


def _check_png(path, width, height):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (width, height)
    assert len(data) > 20_000  # a drawn page, not a blank one


def _keep(path, name):
    folder = os.environ.get("CODEIE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / name)
