import pytest

from conftest import PAPER_SCHEMA
from spacy_codeie.instances import EntityInstance, EventInstance, Mention, RelationInstance
from spacy_codeie.parsing import CodeParser, ListScanner, split_items
from spacy_codeie.schema import schema_from_mapping

SCHEMA = schema_from_mapping({k: v for k, v in PAPER_SCHEMA.items() if k != "@misc"})


@pytest.fixture
def parser():
    return CodeParser(SCHEMA)


FULL = [
    EntityInstance("PERSON", "Ada Lovelace"),
    EntityInstance("ORG", "Babbage Labs"),
    RelationInstance("WORKS_FOR", Mention("Ada Lovelace", "PERSON"), Mention("Babbage Labs", "ORG")),
    EventInstance("ACQUISITION", "bought", (("buyer", Mention("Acme Corp", "ORG")),
                                            ("target", Mention("Babbage Labs", "ORG")))),
]
BODY = ('\n\tPerson("Ada Lovelace"),\n\tOrg("Babbage Labs"),\n\tWorksFor(Person("Ada Lovelace"), Org("Babbage Labs")),'
        '\n\tAcquisition(trigger="bought", buyer=[Org("Acme Corp")], target=[Org("Babbage Labs")])\n]')


@pytest.mark.parametrize("text", [
    BODY,
    "results = [" + BODY,
    "Sure! Here it is:\n```python\nresults = [" + BODY + "\n```\nHope this helps.",
    "results=[" + BODY + "\nprint(results)",
])
def test_accepted_forms(parser, text):
    result = parser.parse(text)
    assert result.instances == FULL
    assert not result.truncated and result.rejected == 0


def test_keyword_and_generic_forms(parser):
    text = ('WorksFor(head_entity=Entity("Ada"), tail_entity="Acme"), Person(name="Ada"), '
            'Acquisition("bought", buyer=Org("Acme"))]')
    result = parser.parse(text)
    assert result.instances == [
        RelationInstance("WORKS_FOR", Mention("Ada", "PERSON"), Mention("Acme", "ORG")),
        EntityInstance("PERSON", "Ada"),
        EventInstance("ACQUISITION", "bought", (("buyer", Mention("Acme", "ORG")),)),
    ]


def test_truncated_list_keeps_complete_items(parser):
    result = parser.parse('\n\tPerson("Ada"),\n\tOrg("Acme"),\n\tWorksFor(Person("Ada"), Org("Ac')
    assert result.instances == [EntityInstance("PERSON", "Ada"), EntityInstance("ORG", "Acme")]
    assert result.truncated and result.unparseable == 1


def test_broken_items_are_counted_not_fatal(parser):
    text = ('Person("Ada"), Person(Ada), Company("X"), WorksFor(Person("Ada")), '
            'Acquisition(trigger="bought", seller=[Org("A")], buyer=[Person("B")]), Org("Acme") Org("B"), ]')
    result = parser.parse(text)
    assert result.instances == [EntityInstance("PERSON", "Ada"), EventInstance("ACQUISITION", "bought", ())]
    assert result.unknown_class == 1  # Company
    assert result.bad_arguments == 3  # Person(Ada), one-argument relation, buyer typed Person
    assert result.unknown_role == 1  # seller
    assert result.unparseable == 1  # two calls without a comma
    assert not result.truncated


@pytest.mark.parametrize("text", ["", "   \n", "I cannot help with that.", "]]]", "results = [[[[[[",
                                  "(" * 5000 + ")" * 5000 + "]", "\x00\x01\ufffd]"])
def test_garbage_never_raises(parser, text):
    result = parser.parse(text)
    assert result.instances == []


def test_hostile_code_is_never_run(parser, tmp_path):
    marker = tmp_path / "pwned"
    text = (f'__import__("os").system("touch {marker}"), Person(__import__("os").system("touch {marker}")), '
            f'exec("open(\'{marker}\', \'w\')"), Person("Ada")]')
    result = parser.parse(text)
    assert not marker.exists()
    assert result.instances == [EntityInstance("PERSON", "Ada")]
    assert result.unknown_class == 2 and result.bad_arguments == 1


def test_strings_with_brackets_and_quotes(parser):
    result = parser.parse('Org("Acme ] (Holdings), Inc."), Person(\'O\\\'Brien\'), Person("Say \\"hi\\"\\n")]')
    assert [i.text for i in result.instances] == ["Acme ] (Holdings), Inc.", "O'Brien", 'Say "hi"\n']
    assert not result.truncated


def test_empty_list(parser):
    result = parser.parse("]")
    assert result.instances == [] and not result.truncated and not result.empty
    assert parser.parse("results = []").instances == []


def test_scanner_closes_on_the_outer_bracket_only():
    scanner = ListScanner()
    scanner.feed_text('Acquisition(trigger="x", buyer=[Org("a]")])')
    assert not scanner.closed
    scanner.feed_text("\n]")
    assert scanner.closed


def test_split_items_ignores_separators_inside_calls():
    items, closed = split_items('A(1,\n 2), B("x,\\ny")\nC()]')
    assert items == ["A(1,\n 2)", 'B("x,\\ny")', "C()"] and closed


@pytest.mark.parametrize("text", [
    'Person("Ada")]\nInput:\nsentence = "Bob met Eve."\nOutput:\nresults = [Person("Bob")]',
    'Person("Ada")]\n```\n',
    'Person("Ada")\n```\n\nInput:\nresults = [Person("Bob")]',  # no closing bracket: cut at the fence
    'Person("Ada"),\nInput:\nsentence = "x"\nOutput:\nresults = [Person("Bob")]',
    'results = [Person("Ada")]\n\nresults = [Person("Bob")]',
    "Here's the answer:\n```python\nresults = [Person(\"Ada\")]\n```\nresults = [Person(\"Bob\")]",
])
def test_the_answers_own_continuation_comes_first(parser, text):
    assert parser.parse(text).instances == [EntityInstance("PERSON", "Ada")]


def test_a_restatement_inside_a_string_is_not_one(parser):
    result = parser.parse('Org("results = [Person(\\"Bob\\")]"), Person("Ada")]')
    assert result.instances == [EntityInstance("ORG", 'results = [Person("Bob")]'), EntityInstance("PERSON", "Ada")]


def test_an_unterminated_string_breaks_only_its_own_item(parser):
    result = parser.parse('Person("Ada),\nOrg("Acme"),\nPerson(\'Bob)\nPerson("Eve")]\nresults = [Person("X")]')
    assert result.instances == [EntityInstance("ORG", "Acme"), EntityInstance("PERSON", "Eve")]
    assert result.unparseable == 2 and not result.truncated


def test_a_huge_list_with_one_broken_string_keeps_every_other_item(parser):
    n = 50_000
    text = 'Person("Ada),\n' + 'Org("Acme"),\n' * n + "]"
    result = parser.parse(text)
    assert len(result.instances) == n and result.unparseable == 1 and not result.truncated


def test_a_spurious_interpreter_error_does_not_drop_a_good_item(parser, monkeypatch):
    """CPython 3.11 once raised SystemError ("AST constructor recursion depth mismatch") on a good item."""
    import ast

    real_parse, calls = ast.parse, []

    def parse_failing_once(source, *args, **kwargs):
        calls.append(source)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=126, after=36)")
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", parse_failing_once)
    result = parser.parse('Person("Ada Lovelace"), Org("Acme")]')
    assert result.instances == [EntityInstance("PERSON", "Ada Lovelace"), EntityInstance("ORG", "Acme")]
    assert result.unparseable == 0 and len(calls) == 3


def test_an_item_that_keeps_failing_is_counted_not_raised(parser, monkeypatch):
    import ast

    real_parse = ast.parse

    def parse(source, *args, **kwargs):
        if "Ada" in source:
            raise SystemError("AST constructor recursion depth mismatch")
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", parse)
    result = parser.parse('Person("Ada Lovelace"), Org("Acme")]')
    assert result.instances == [EntityInstance("ORG", "Acme")] and result.unparseable == 1


def test_the_scanner_stops_where_the_parser_does():
    text = 'Person("Ada),\nOrg("Acme")]\nInput: more'
    scanner = ListScanner()
    assert scanner.feed_text(text) == text.index("]") + 1
    streamed = ListScanner()
    for ch in text[:text.index("]")]:
        streamed.feed(ch)
    assert not streamed.closed
    streamed.feed("]")
    assert streamed.closed


def test_odd_literals_warn_nobody(parser, recwarn):
    result = parser.parse('Person(1if 1 else 2), Org(0x1for x in y), Person("Ada")]')
    assert result.instances == [EntityInstance("PERSON", "Ada")]
    assert not [w for w in recwarn if issubclass(w.category, SyntaxWarning)]
