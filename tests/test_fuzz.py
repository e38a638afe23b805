"""Fuzz tests: hostile completions through the parser, the aligner and the component (hypothesis).

Generated completions mix valid items with code-injection attempts, deep nesting, huge numbers, unterminated
strings, code fences, invented next turns and random Unicode. Each case must parse and align without an
exception, run nothing (eval, exec, __import__, open, os.system and compile to code raise while parsing and
aligning) and give spans inside the text; docs sent through `nlp.pipe` must all come back, in order.

Budget: CODEIE_FUZZ_EXAMPLES cases per test (default 100, a few seconds each). The long run of issue 11:

    CODEIE_FUZZ_EXAMPLES=100000 python -m pytest -q tests/test_fuzz.py --hypothesis-show-statistics
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import os
import subprocess
import tempfile
import unicodedata
from pathlib import Path
from typing import Iterator, List

import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PAPER_SCHEMA, SCRIPTS, ScriptedModel, sentence_of
from spacy_codeie.alignment import align_instances
from spacy_codeie.instances import EntityInstance, EventInstance, RelationInstance
from spacy_codeie.parsing import CodeParser
from spacy_codeie.schema import schema_from_mapping

EXAMPLES = int(os.environ.get("CODEIE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SCHEMA = schema_from_mapping({k: v for k, v in PAPER_SCHEMA.items() if k != "@misc"})
MARKER = Path(tempfile.mkdtemp(prefix="codeie-fuzz-")) / "executed"
M = str(MARKER)

# ---- hostile completions ---------------------------------------------------------------------------
TRICKY = "Ada Acme ßSS ﬁfi Café Cafe\u0301 ΣσςΟΔΥΣ İi 한\u1112\u1161\u11ab \"'\\()[]{},\n\t `#=:"
strings = st.one_of(st.text(max_size=20), st.text(alphabet=TRICKY, max_size=20))
literals = strings.map(repr)
INJECTIONS = [
    f'__import__("os").system("touch {M}")', f'exec("open({M!r}, \'w\')")', 'eval("1+1")',
    f'compile("open({M!r}, \'w\')", "x", "exec")', f'open("{M}", "w")', f'(lambda: open("{M}", "w"))()',
    "().__class__.__base__.__subclasses__()", f'Person(__import__("os").system("touch {M}"))',
    f'Org(open("{M}", "w").name)', f'Person(f"{{open({M!r}, \'w\')}}")', "breakpoint()", "globals()['x']",
    'Person(*["Ada"])', 'Person(**{"name": "Ada"})', "Person(name=1)", "Person()", "Person('Ada', 'Bob')",
    f'WorksFor(Person(exec("open({M!r}, \'w\')")), Org("Acme"))', "import os", "os.system('x')",
]
FRAGMENTS = ["```python\n", "```\n", "```", "results = [", "]", "[", "\nInput:\nsentence = \"Bob met Eve.\"\nOutput:\n",
             "Sure! Here's the list:\n", "print(results)", "\\", '"', "'", '"""', "#", "\x00", "\r\n"]


@st.composite
def items(draw) -> str:
    kind = draw(st.integers(0, 9))
    if kind <= 2:
        cls = draw(st.sampled_from(["Person", "Org", "Entity", "Company", "person"]))
        return f"{cls}({draw(literals)})"
    if kind == 3:
        return f"WorksFor({draw(items())}, {draw(items())})"
    if kind == 4:
        return (f"Acquisition(trigger={draw(literals)}, buyer=[{draw(items())}], "
                f"{draw(st.sampled_from(['target', 'seller', '']))}={draw(items())})")
    if kind == 5:
        return draw(st.sampled_from(INJECTIONS))
    if kind == 6:  # deep nesting
        n = draw(st.integers(1, 5000))
        opener = draw(st.sampled_from(["(", "[", "{", "Person(", "-", "not ", "lambda: "]))
        return opener * n + "1" + draw(st.sampled_from([")", "]", "}", ""])) * n
    if kind == 7:  # huge numbers
        return draw(st.sampled_from(["9" * 5000, "10**10**10", "1e99999", "Person(9**9**9)", "0x" + "f" * 3000,
                                     "Org(" + "1" * 4400 + ")"]))
    if kind == 8:  # an unterminated string
        return f"{draw(st.sampled_from(['Person', 'Org']))}({draw(literals)[:-1]}"
    return draw(st.one_of(st.text(max_size=40), st.sampled_from(FRAGMENTS)))


@st.composite
def completions(draw) -> str:
    parts: List[str] = []
    for item in draw(st.lists(items(), max_size=12)):
        parts.append(item)
        parts.append(draw(st.sampled_from([", ", ",\n", "\n", " ", "", ",\n\t"])))
    if draw(st.booleans()):
        parts.append("]")
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(FRAGMENTS)) + draw(st.text(max_size=30)))
    if draw(st.booleans()):
        parts.insert(0, draw(st.sampled_from(FRAGMENTS)))
    return "".join(parts)


# ---- nothing runs ---------------------------------------------------------------------------------
class Executed(BaseException):
    """Raised by the guards below: a BaseException, so that no `except Exception` in the code under test hides it."""


@contextlib.contextmanager
def nothing_runs() -> Iterator[List[str]]:
    """Make running code impossible for the duration: compile may only build syntax trees (as ast.parse does),
    and nothing may be imported but what CPython's own parser imports."""
    attempts: List[str] = []
    real_compile = builtins.compile

    def refuse(name):
        def guard(*args, **kwargs):
            attempts.append(name)
            raise Executed(name)
        return guard

    def compile_to_ast_only(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            attempts.append("compile")
            raise Executed("compile")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    real_import = builtins.__import__

    def import_only_what_the_parser_needs(name, *args, **kwargs):
        if name != "unicodedata":  # CPython's parser imports it itself to normalize non-ASCII identifiers
            attempts.append(f"import {name}")
            raise Executed(name)
        return real_import(name, *args, **kwargs)

    patches = [(builtins, name, refuse(name)) for name in ("eval", "exec", "open", "breakpoint")]
    patches += [(builtins, "compile", compile_to_ast_only), (builtins, "__import__", import_only_what_the_parser_needs),
                (os, "system", refuse("os.system")),
                (os, "popen", refuse("os.popen")), (subprocess, "Popen", refuse("subprocess.Popen"))]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        yield attempts
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


# ---- the tests ------------------------------------------------------------------------------------
@FUZZ
@given(completion=completions(), text=st.text(alphabet=TRICKY, max_size=80))
def test_hostile_completions_parse_and_align_without_running_anything(completion, text):
    parser = CodeParser(SCHEMA)
    with nothing_runs() as attempts:
        parsed = parser.parse(completion)
        aligned = align_instances(text, parsed.instances, offset=7)
    assert attempts == [] and not MARKER.exists()
    assert min(parsed.unparseable, parsed.unknown_class, parsed.unknown_role, parsed.bad_arguments) >= 0
    for inst in parsed.instances:
        assert isinstance(inst, (EntityInstance, RelationInstance, EventInstance))
    spans = [(e.start, e.end) for e in aligned.entities]
    spans += [(a.start, a.end) for r in aligned.relations for a in (r.head, r.tail)]
    spans += [e.trigger for e in aligned.events] + [(a.start, a.end) for e in aligned.events for a in e.arguments]
    assert all(7 <= start < end <= 7 + len(text) for start, end in spans)
    assert len(set(spans[:len(aligned.entities)])) == len(aligned.entities)  # each occurrence taken once
    assert aligned.hallucinated + aligned.duplicates <= aligned.mentions


@FUZZ
@given(text=st.text(alphabet=TRICKY, min_size=1, max_size=80), data=st.data())
def test_mentions_cut_from_the_text_are_always_found(text, data):
    """Any stretch of the text, in any case or Unicode form, aligns to a span of the text."""
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    mention = text[start:end]
    form = data.draw(st.sampled_from(["as is", "upper", "lower", "casefold", "NFC", "NFD", "NFKC"]))
    variant = unicodedata.normalize(form, mention) if form.startswith("NF") else getattr(mention, form, str)()
    if form == "as is":
        variant = mention
    with nothing_runs() as attempts:
        result = align_instances(text, [EntityInstance("X", variant)])
    assert attempts == []
    for entity in result.entities:
        assert 0 <= entity.start < entity.end <= len(text)
    whole_characters = not unicodedata.combining(text[start]) and (
        end == len(text) or not unicodedata.combining(text[end]))
    if mention.strip() and whole_characters:
        assert result.hallucinated == 0, (text, mention, variant)
        if form == "as is":
            (entity,) = result.entities
            assert text[entity.start:entity.end] == mention.strip()


@pytest.fixture(scope="module")
def fuzz_nlp():
    model = ScriptedModel()
    SCRIPTS["fuzz"] = model
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA,
                                   "model": {"@llm_models": "codeie_test.Scripted.v1", "script": "fuzz"}})
    yield nlp, model
    SCRIPTS.pop("fuzz", None)


@FUZZ
@given(docs=st.lists(st.tuples(st.text(alphabet=TRICKY, max_size=60), completions()), max_size=6),
       batch_size=st.integers(1, 4))
def test_every_doc_comes_back_in_order(fuzz_nlp, docs, batch_size):
    nlp, model = fuzz_nlp
    answers = {text: completion for text, completion in docs}

    def answer(prompt: str) -> str:
        return answers.get(sentence_of(prompt), "]")

    model.by_prompt = answer
    texts = [text for text, _ in docs]
    out = list(nlp.pipe(texts, batch_size=batch_size))
    assert [doc.text for doc in out] == texts
    assert not MARKER.exists()
    for doc in out:
        for span in doc.spans.get("codeie", []):
            assert 0 <= span.start_char < span.end_char <= len(doc.text)
