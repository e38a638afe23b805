"""Hostile open-IE and on-demand answers are read as data: counted in diagnostics, never run, in bounded time.

The standard of tests/test_style_hostile_answers.py for the closed-IE styles: injection payloads stay inert
strings, unterminated brackets and tables, deep nesting and 10 MB answers come back as counted rejections
(or a `truncated` flag) quickly, through the parsers and through the components.
"""
import ast
import builtins
import itertools
import time

import pytest
import spacy

from spacy_codeie import ondemand_diagnostics, openie_diagnostics
from spacy_codeie.prompting import ADELIEOnDemandPrompt, ADELIEOpenIEPrompt

OPENIE, ONDEMAND = ADELIEOpenIEPrompt(), ADELIEOnDemandPrompt()
# A bound that catches quadratic work on a 100,000-character answer (minutes), not a busy machine (a second
# here is 0.3 s on an idle core).
SECONDS = 20
COLUMNS = ["Name", "City"]
TEXT = "Ada Lovelace was born in London. " + "ab " * 300
FREQUENT = ["a", "b", "ab", "b a"] + [" ".join(["ab"] * k) for k in range(2, 20)]


def _cmd(marker) -> str:
    return f"__import__('os').system('touch {marker}')"


def _tuples(marker):
    cmd = _cmd(marker)
    return [f"[Answer]: ({cmd}; Ada; London)", f"({cmd})", cmd, f"[Answer]: (eval; exec; {cmd}); \n" * 3,
            "[Answer]: (a; b; c" + "); (" * 10]


def _tables(marker):
    cmd = _cmd(marker)
    return [f"[Answer]: | Name | City |\n| --- | --- |\n| {cmd} | exec('x') |", f"| {cmd} |", cmd,
            f"[Answer]: | {cmd} | City |\n| a | b |"]


HOSTILE_TUPLES = [
    "x" * 10_000_000, "(" * 300_000, ")" * 300_000, "(" * 50_000 + ")" * 50_000, "[Answer]: " + "(a; b; c); " * 1_000_000,
    "[Answer]: " + "".join(f"(p{i}; s{i}; o{i}); " for i in range(200_000)), "(a; b" * 100_000, "\x00\ud800\u2028(a;b)",
    "[Answer]: (" + "a; " * 500_000 + ")", "[Answer]: (" + "x" * 10_000_000 + "; b)", "", "[Answer]:", ";;;;(;;)",
    # distinct tuples whose every part occurs hundreds of times in the text: the most alignment work there is
    "[Answer]: " + "".join(f"({a}; {b}; {c}); " for a, b, c in itertools.product(FREQUENT, FREQUENT, FREQUENT)),
]
HOSTILE_TABLES = [
    "|" * 10_000_000, "| a " * 1_000_000, "[Answer]: | Name | City |\n" + "| Ada | London |\n" * 2_000_000,
    "[Answer]: | Name | City |\n| --- | --- |\n| Ada | London", "| Name | City\n| Ada", "\\|" * 1_000_000,
    "[Answer]: | Name |" + " x |" * 100_000 + "\n" + "| ab |" * 50_000, "\x00|\ud800|\u2028", "", "|\n|\n|\n" * 100_000,
    "[Answer]: | Name | City |\n| --- | --- |\n" + "".join(f"| ab | a{i} |\n" for i in range(20_000)),
]


def test_injection_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    for answer in _tuples(marker):
        for tup in OPENIE.parse(answer).tuples:
            assert isinstance(tup.subject, str) and isinstance(tup.predicate, str)
    for answer in _tables(marker):
        for row in ONDEMAND.parse(answer, COLUMNS).rows:
            assert all(isinstance(cell, str) for cell in row)
    assert not marker.exists()
    assert OPENIE.parse(_tuples(marker)[0]).tuples[0].predicate == _cmd(marker)  # kept as inert text


def test_parsing_never_evaluates_or_compiles_code(tmp_path, monkeypatch):
    real_compile = builtins.compile

    def no_eval(*args, **kwargs):
        raise AssertionError("a parser evaluated its input")

    def tree_only_compile(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            raise AssertionError("a parser compiled its input to code")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", no_eval)
    monkeypatch.setattr(builtins, "exec", no_eval)
    monkeypatch.setattr(builtins, "compile", tree_only_compile)
    found = sum(len(OPENIE.parse(a).tuples) for a in _tuples(tmp_path / "x") + ["[Answer]: (wrote; Ada; notes)"])
    rows = sum(len(ONDEMAND.parse(a, COLUMNS).rows) for a in _tables(tmp_path / "x"))
    assert found >= 3 and rows >= 1


@pytest.mark.parametrize("index", range(len(HOSTILE_TUPLES)))
def test_hostile_tuple_answers_give_diagnostics_quickly(index):
    answer = HOSTILE_TUPLES[index]
    start = time.perf_counter()
    parsed = OPENIE.parse(answer)
    assert time.perf_counter() - start < SECONDS
    assert len(parsed.tuples) <= 100_000
    assert parsed.truncated == (len(answer) > 100_000)
    if index in (1, 6):  # left open
        assert parsed.unparseable >= 1 and not parsed.tuples


@pytest.mark.parametrize("index", range(len(HOSTILE_TABLES)))
def test_hostile_table_answers_give_diagnostics_quickly(index):
    answer = HOSTILE_TABLES[index]
    start = time.perf_counter()
    parsed = ONDEMAND.parse(answer, COLUMNS)
    assert time.perf_counter() - start < SECONDS
    assert all(len(row) == len(COLUMNS) for row in parsed.rows)
    assert parsed.truncated == (len(answer) > 100_000)


def test_unterminated_answers_are_counted():
    assert OPENIE.parse("[Answer]: (was born in; Ada; London); \n(wrote; Ada").unparseable == 1
    cut = ONDEMAND.parse("[Answer]: | Name | City |\n| --- | --- |\n| Ada | London |\n| Bob", COLUMNS)
    assert cut.rows == [("Ada", "London"), ("Bob", "")] and cut.ragged_rows == 1


def test_components_survive_hostile_answers(scripted):
    tuple_answers = [HOSTILE_TUPLES[i] for i in (0, 1, 4, 6, 7, 11, 13)]
    table_answers = [HOSTILE_TABLES[i] for i in (0, 2, 3, 4, 6, 7, 8)]
    answers = iter(tuple_answers + table_answers)
    cfg, _ = scripted(by_prompt=lambda prompt: next(answers))
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie_openie", config={"model": cfg})
    nlp.add_pipe("codeie_ondemand", config={"model": cfg, "instruction": "Who was born where?", "columns": COLUMNS})
    start = time.perf_counter()
    with nlp.select_pipes(disable=["codeie_ondemand"]):
        docs = list(nlp.pipe([TEXT] * len(tuple_answers), batch_size=4))
    with nlp.select_pipes(disable=["codeie_openie"]):
        tables = list(nlp.pipe([TEXT] * len(table_answers), batch_size=4))
    assert time.perf_counter() - start < 3 * SECONDS
    assert all(isinstance(doc._.triples, list) for doc in docs)
    diag = [openie_diagnostics(doc) for doc in docs]
    assert [d["truncated"] for d in diag] == [1, 1, 1, 1, 0, 0, 1]
    assert sum(d["unparseable"] for d in diag) >= 3 and diag[2]["tuples"] == 1 and diag[2]["duplicates"] > 1000
    assert diag[-1]["tuples"] > 1000 and diag[-1]["unaligned"] == 0  # every part found, each tuple placed
    assert all(doc._.table is not None for doc in tables)
    table_diag = [ondemand_diagnostics(doc) for doc in tables]
    assert [d["truncated"] for d in table_diag] == [1, 1, 0, 0, 1, 0, 0]
    assert table_diag[1]["rows"] > 1000 and table_diag[3]["ragged_rows"] == 1
