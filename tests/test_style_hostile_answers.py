"""Hostile answers in every style's format are read as data: diagnostics, never a crash, never execution.

The same standard as KnowCoder's parser (tests/test_parsing.py): injection payloads stay strings or are
dropped, deep nesting, unterminated strings and 10 MB answers come back as counted rejections in bounded time.
"""
import builtins
import time

import pytest

from spacy_codeie.instances import ParseResult
from spacy_codeie.prompting import ADELIEPrompt, GoLLIEPrompt, KnowCoderTaskPrompt, YAYIPrompt
from spacy_codeie.schema import schema_from_dict

STYLES = {"yayi": YAYIPrompt(language="en"), "adelie": ADELIEPrompt(), "gollie": GoLLIEPrompt(),
          "knowcoder": KnowCoderTaskPrompt()}


@pytest.fixture
def schemas():
    full = schema_from_dict(
        entities={"PERSON": "", "ORG": ""},
        relations={"WORKS_FOR": {"head": "PERSON", "tail": "ORG"}},
        events={"ACQUISITION": {"roles": {"buyer": ["ORG"], "from": ["Entity"]}}},
    )
    return {"ner": full.subset(list(full.entities)), "re": full.subset(list(full.relations)),
            "ee": full.subset(list(full.events))}


def _payloads(marker: str):
    cmd = f"__import__('os').system('touch {marker}')"
    return {
        "yayi": [cmd, "{'person': " + cmd + "}", f"[{{'relation': {cmd}, 'head': 'a', 'tail': 'b'}}]",
                 "{'person': ['Ada'], **" + cmd + "}", f"{{'buyer': (lambda: {cmd})()}}"],
        "adelie": [f"[Answer]: {cmd}: person; ", f"[Answer]: ({cmd}; works for; {cmd})", cmd],
        "gollie": [f"result = [{cmd}]", f"result = [Person(span={cmd})]", f'result = [Person(span="a").__class__({cmd})]',
                   f"result = [WorksFor(arg1={cmd}, arg2='b')]", f"result = [Acquisition(mention='x', buyer=[{cmd}])]",
                   f"result = [{cmd} for _ in range(3)]", f"result = [exec({cmd!r})]"],
        "knowcoder": [f"results = [\n\t{cmd}\n]", f"results = [\n\tPerson({cmd})\n]",
                      f'results = [\n\tAcquisition(trigger = "x", from = [{cmd}])\n]',
                      f"results = [\n\tWorksFor(Entity({cmd}), Entity('b'))\n]", f"results = [exec({cmd!r})]",
                      f'results = [\n\tAcquisition("from = {cmd}")\n]'],
    }


@pytest.mark.parametrize("name", sorted(STYLES))
def test_injection_is_never_run(schemas, tmp_path, name):
    marker = tmp_path / "pwned"
    style = STYLES[name]
    for payload in _payloads(str(marker))[name]:
        for schema in schemas.values():
            result = style.parser(schema).parse(payload)
            assert isinstance(result, ParseResult)
            for inst in result.instances:  # whatever was kept is the payload as inert text
                assert "__import__" not in getattr(inst, "label", "")
    assert not marker.exists()


def _hostile(name: str):
    deep = "[" * 50_000 + "]" * 50_000
    deep_small = "[" * 3_000 + "]" * 3_000
    ten_mb = "x" * 10_000_000
    common = [deep, deep_small, ten_mb, "\x00\ud800\u2028", ""]
    return common + {
        "yayi": ['{"person": ["Ada', "{'person': ['Ada'", '{"person": ' + deep_small + "}",
                 '{"person": [' + '"Ada", ' * 1_500_000 + '"Bo"]}', "[" + "{'relation': 'x'}, " * 2_000_000],
        "adelie": ["[Answer]: " + "Ada: person; " * 1_000_000, "[Answer]: (" * 300_000, "[Answer]: ; ; : ;:",
                   "[Answer]: (a; works for)"],
        "gollie": ['result = [Person(span="Ada', "result = [Person(span='Ada'),\n    Person(span='Bo",
                   "result = [" + "Person(" * 10_000, 'result = [Person(span="' + "a" * 10_000_000 + '")]',
                   "result = [" + 'Person(span="Ada"), ' * 1_000_000 + "]", "result = [)]]]", "result = "],
        "knowcoder": ['results = [\n\tPerson("Ada', "results = [" + "Person(" * 10_000, "results = [)]]]",
                      "results = [" + 'Acquisition(trigger = "x", from = [Entity("a")]), ' * 5_000 + "]",
                      'results = [\n\tPerson("' + "a" * 10_000_000 + '")\n]', "results = "],
    }[name]


@pytest.mark.parametrize("name", sorted(STYLES))
def test_malformed_and_huge_answers_give_diagnostics(schemas, name):
    style = STYLES[name]
    for answer in _hostile(name):
        for schema in schemas.values():
            start = time.perf_counter()
            result = style.parser(schema).parse(answer)
            assert time.perf_counter() - start < 5, (name, answer[:40])
            assert isinstance(result, ParseResult)
            assert len(result.instances) <= 100_000


@pytest.mark.parametrize("name", sorted(STYLES))
def test_cut_off_and_broken_answers_are_counted(schemas, name):
    cases = {
        "yayi": ("ner", '{"person": ["Ada", "B'),
        "adelie": ("re", "[Answer]: (Ada; works for; Acme)\n(Bo; works"),
        "gollie": ("ner", 'result = [\n    Person(span="Ada"),\n    Person(span="B'),
        "knowcoder": ("ee", 'results = [\n\tAcquisition(trigger = "bought", from = [Entity("Ac'),
    }
    task, answer = cases[name]
    result = STYLES[name].parser(schemas[task]).parse(answer)
    assert result.rejected + int(result.truncated) >= 1


def test_ten_megabyte_answers_are_clipped_and_flagged(schemas):
    for name, answer in (("gollie", "result = [" + 'Person(span="Ada"), ' * 600_000 + "]"),
                         ("adelie", "[Answer]: " + "Ada: person; " * 1_000_000),
                         ("yayi", '{"person": [' + '"Ada", ' * 1_500_000 + '"Bo"]}')):
        result = STYLES[name].parser(schemas["ner"]).parse(answer)
        assert result.truncated, name


@pytest.mark.parametrize("name", sorted(STYLES))
def test_parsing_never_evaluates_or_compiles_code(schemas, tmp_path, monkeypatch, name):
    """eval and exec raise; compile raises unless it only builds a syntax tree (`ast.parse` is
    `compile(..., flags=PyCF_ONLY_AST)`, which yields a tree and no code object, so nothing can run)."""
    import ast

    real_compile = builtins.compile
    code_requests = []

    def no_eval(*args, **kwargs):
        raise AssertionError("a style parser evaluated its input")

    def tree_only_compile(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            code_requests.append(source)
            raise AssertionError("a style parser compiled its input to code")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", no_eval)
    monkeypatch.setattr(builtins, "exec", no_eval)
    monkeypatch.setattr(builtins, "compile", tree_only_compile)
    style = STYLES[name]
    answers = _payloads(str(tmp_path / "pwned"))[name] + {
        "yayi": ["{'person': ['Ada']}", '[{"relation": "works for", "head": "Ada", "tail": "Acme"}]', "{'buyer': 'Acme'}"],
        "adelie": ["[Answer]: Ada: person; ", "[Answer]: (Ada; works for; Acme)", "[Answer]: bought: acquisition; "],
        "gollie": ['result = [Person(span="Ada")]', 'result = [WorksFor(arg1="Ada", arg2="Acme")]',
                   'result = [Acquisition(mention="bought", buyer=["Acme"])]'],
        "knowcoder": ['results = [\n\tPerson("Ada")\n]', 'results = [\n\tWorksFor(Entity("Ada"), Entity("Acme"))\n]',
                      'results = [\n\tAcquisition(trigger = "bought", from = [Entity("Acme")])\n]'],
    }[name]
    found = 0
    for answer in answers:
        for schema in schemas.values():
            found += len(style.parser(schema).parse(answer).instances)
    assert found >= 3 and not code_requests
