"""codeie_openie: ADELIE's open-IE prompt, its answers as tuples of spans on the Doc, serialization, the scorer.

Templates: tests/fixtures/styles/adelie_openie_templates.json (THU-KEG/ADELIE @ 70f01ff0, instructions.json
"OPENIE" and ROBUST/desc.py OUTPUT_BASE[0]). Gold answers are written as ROBUST/load_data_fs.py writes them:
"(" + "; ".join(the parts that exist, predicate first) + "); \\n" per tuple.
"""
import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from spacy_codeie import CodeIEError, openie_diagnostics
from spacy_codeie.instances import TupleInstance
from spacy_codeie.open_annotations import gold_triple_record, set_triple_records
from spacy_codeie.prompting import ADELIEOpenIEPrompt
from spacy_codeie.prompting.adelie_open import OPENIE_FORM, OPENIE_INSTRUCTION, OPENIE_NOTHING
from spacy_codeie.readers import GoldConverter, doc_to_record

TEMPLATES = json.loads((Path(__file__).parent / "fixtures" / "styles" / "adelie_openie_templates.json")
                       .read_text("utf8"))
INSTRUCTIONS = TEMPLATES["instructions.json OPENIE"]
FORM = TEMPLATES["ROBUST/desc.py OUTPUT_BASE[0]"][0]

TEXT = "Ada Lovelace was born in London in 1815. She wrote notes on engines."
# ROBUST/load_data_fs.py get_response with OUTPUT_BASE[0] (test split): parts in REL, ARG1, ARG2, TIME, LOC order.
GOLD_ANSWER = "[Answer]: (was born in; Ada Lovelace; London; 1815); \n(wrote; She; notes on engines); \n"


def published_row(instruction: str, text: str) -> str:
    """The user message as scripts/utils/fewshot_testdatasets.py joins instruction, answer form and input."""
    instruction += FORM
    if "<text>" in instruction:
        return instruction.replace("<text>", "Text: '" + text + "'") + "\n"
    return instruction + "\n" + "Text: '" + text + "'"


def make_nlp(model_cfg, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie_openie", config={"model": model_cfg, **config})
    return nlp


# ---- the prompt ----------------------------------------------------------------------------------
def test_templates_are_the_published_ones():
    assert OPENIE_INSTRUCTION == INSTRUCTIONS[0][0]
    assert OPENIE_FORM == FORM
    assert OPENIE_NOTHING == {" ".join(na.split()).strip(" .").casefold() for _, na in INSTRUCTIONS}


@pytest.mark.parametrize("index", range(len(INSTRUCTIONS)))
def test_prompt_is_the_published_row_for_every_instruction(index):
    instruction = INSTRUCTIONS[index][0]
    style = ADELIEOpenIEPrompt(instruction=instruction)
    assert style.render_user(TEXT) == published_row(instruction, TEXT)
    assert style.render_prompt(TEXT) == "<|user|>\n" + published_row(instruction, TEXT) + "\n<|assistant|>\n"
    assert ADELIEOpenIEPrompt(instruction=instruction, chat_format="none").render_prompt(TEXT) == \
        published_row(instruction, TEXT)


def test_default_prompt_byte_for_byte():
    assert ADELIEOpenIEPrompt().render_prompt("Ada sang.") == (
        "<|user|>\nOpen information extraction requires the extraction of all relations in the sentence, i.e., "
        "predicates, the subjects and objects corresponding to these relations, and the possible time and place "
        "thesis elements. Please extract all the relational tuples in the following sentence: Text: 'Ada sang.'. "
        'If there are no relations in the text, please answer "NA".Please give the answer in the tuple form '
        '"[Answer]: ({predicate}; {subject}; {object}; {time}; {location})\n". If one or more of the last three '
        "elements does not exist, it can be omitted.\n\n<|assistant|>\n"
    )


# ---- answers -------------------------------------------------------------------------------------
def test_gold_answer_parses_and_renders_back():
    style = ADELIEOpenIEPrompt()
    parsed = style.parse(GOLD_ANSWER)
    assert parsed.tuples == [TupleInstance("Ada Lovelace", "was born in", "London", "1815"),
                             TupleInstance("She", "wrote", "notes on engines")]
    assert parsed.unparseable == 0 and not parsed.truncated
    assert style.render_completion(parsed.tuples) == GOLD_ANSWER
    assert style.render_completion([]) == "[Answer]: NA"
    # the zero-shot test rows hold the reference without "[Answer]: "; an explanation first is skipped
    assert style.parse(GOLD_ANSWER[len("[Answer]: "):]).tuples == parsed.tuples
    assert style.parse("[Explanation]: Ada (a person) was born.\n" + GOLD_ANSWER).tuples == parsed.tuples


@pytest.mark.parametrize("nothing", sorted({na for _, na in INSTRUCTIONS}))
def test_nothing_found_answers_are_answers(nothing):
    for answer in (nothing, "[Answer]: " + nothing):
        parsed = ADELIEOpenIEPrompt().parse(answer)
        assert parsed.tuples == [] and parsed.unparseable == 0


def test_other_tuple_forms_and_broken_groups():
    style = ADELIEOpenIEPrompt()
    parsed = style.parse("[Answer]: (predicate: wrote; subject: She; object: notes)\n(wrote; She; notes (2 volumes); "
                         "None; Paris)\n(lonely)\n(a; b; c; d; e; f)\n(; b)\n({predicate}; Subject; Object)\n"
                         "(was; Ada; born")
    assert parsed.tuples == [TupleInstance("She", "wrote", "notes"),
                             TupleInstance("She", "wrote", "notes (2 volumes)", "", "Paris")]
    assert parsed.unparseable == 5  # one part, six parts, no predicate, the form echoed back, left open


# ---- on the Doc --------------------------------------------------------------------------------------
def test_gold_answer_lands_on_the_doc_as_spans(scripted):
    cfg, model = scripted(by_prompt=lambda prompt: GOLD_ANSWER)
    doc = make_nlp(cfg)(TEXT)
    assert model.calls[0] == [[ADELIEOpenIEPrompt().render_prompt(TEXT)]]
    first, second = doc._.triples
    assert (first.subject.span.start_char, first.subject.span.end_char) == (0, 12)
    assert (first.predicate.span.text, first.object.span.text, first.time.span.text) == ("was born in", "London", "1815")
    assert first.location is None and first.predicate.span.label_ == "predicate"
    assert second.to_dict() == {
        "subject": {"text": "She", "start": 41, "end": 44}, "predicate": {"text": "wrote", "start": 45, "end": 50},
        "object": {"text": "notes on engines", "start": 51, "end": 67}, "time": None, "location": None}
    assert openie_diagnostics(doc) == {"windows": 1, "skipped_windows": 0, "prompts": 1, "empty_completions": 0,
                                       "truncated": 0, "tuples": 2, "unparseable": 0, "duplicates": 0, "parts": 7,
                                       "unaligned": 0, "misaligned": 0}


def test_parts_not_in_the_text_keep_their_text(scripted):
    cfg, _ = scripted(by_prompt=lambda p: "[Answer]: (is; Ada Lovelace; a mathematician); \n(wrote; She; notes); \n"
                                          "(wrote; She; notes); \n")
    doc = make_nlp(cfg)(TEXT)
    first, second = doc._.triples
    assert first.subject.span.text == "Ada Lovelace"
    assert (first.predicate.text, first.predicate.span, first.object.span) == ("is", None, None)
    assert second.object.span.text == "notes"
    diag = openie_diagnostics(doc)
    assert (diag["unaligned"], diag["duplicates"], diag["tuples"]) == (2, 1, 2)


def test_parts_are_placed_together_and_windows_map_to_the_doc(scripted):
    text = "Ada met Bob in Paris. Later, Ada married Carl in Rome."
    married = "[Answer]: (married; Ada; Carl; ; Rome)"
    cfg, _ = scripted(by_prompt=lambda prompt: married)
    (tup,) = make_nlp(cfg)(text)._.triples
    assert tup.subject.span.start_char == text.index("Ada married")  # the Ada beside its predicate
    assert tup.location.span.text == "Rome" and tup.time is None

    cfg, model = scripted(by_prompt=lambda prompt: married if "married" in prompt else "[Answer]: (met; Ada; Bob)")
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("codeie_openie", config={"model": cfg, "window_size": 40})
    doc = nlp(text)
    assert len(model.calls[0][0]) == 2  # one prompt per sentence: the two do not fit one window
    met, married_tuple = doc._.triples
    assert (met.subject.span.start_char, met.object.span.text) == (0, "Bob")
    assert married_tuple.subject.span.start_char == text.index("Ada married")
    assert married_tuple.object.span.start_char == text.index("Carl")


# ---- serialization -----------------------------------------------------------------------------------
def test_triples_survive_docbin_and_to_disk(scripted, tmp_path):
    cfg, _ = scripted(by_prompt=lambda p: "[Answer]: (is; Ada; a mathematician); \n" + GOLD_ANSWER[10:])
    nlp = make_nlp(cfg, extension="oie")
    doc = nlp(TEXT)
    expected = [t.to_dict() for t in doc._.oie]
    restored = list(DocBin().from_bytes(DocBin(docs=[doc], store_user_data=True).to_bytes()).get_docs(nlp.vocab))[0]
    assert [t.to_dict() for t in restored._.oie] == expected and len(expected) == 3
    assert [t.to_dict() for t in Doc(nlp.vocab).from_bytes(doc.to_bytes())._.oie] == expected
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("codeie_openie").cfg["extension"] == "oie"
    assert [t.to_dict() for t in loaded(TEXT)._.oie] == expected


# ---- scoring -----------------------------------------------------------------------------------------
SCORER_ANSWER = ("[Answer]: (was born in; Ada Lovelace; London; 1815); \n"  # exact and text match
                 "(wrote; She; notes on engines!!); \n"  # object not in the text: text match only
                 "(is; Ada Lovelace; a mathematician); \n"  # spanless parts match by text, in both scores
                 "(wrote; Ada; poems); \n")  # wrong
GOLD_TUPLES = [
    {"subject": "Ada Lovelace", "predicate": "was born in", "object": {"start": 25, "end": 31}, "time": "1815"},
    {"subject": {"start": 41, "end": 44, "text": "She"}, "predicate": "wrote", "object": "notes on engines"},
    {"subject": "Ada Lovelace", "predicate": {"text": "is"}, "object": {"text": "a mathematician"}},
]


def test_scorer_numbers_by_hand(scripted):
    cfg, _ = scripted(by_prompt=lambda p: SCORER_ANSWER)
    nlp = make_nlp(cfg)
    gold = nlp.make_doc(TEXT)
    set_triple_records(gold, [gold_triple_record(gold, t) for t in GOLD_TUPLES])
    scores = nlp.evaluate([Example(nlp.make_doc(TEXT), gold)])
    # exact: 2 of 4 predicted, 2 of 3 gold; text: 3 of 4, 3 of 3
    assert scores["openie_exact_p"] == pytest.approx(0.5) and scores["openie_exact_r"] == pytest.approx(2 / 3)
    assert scores["openie_exact_f"] == pytest.approx(4 / 7)
    assert scores["openie_text_p"] == pytest.approx(0.75) and scores["openie_text_r"] == pytest.approx(1.0)
    assert scores["openie_text_f"] == pytest.approx(6 / 7)
    assert scores["openie_unaligned_rate"] == pytest.approx(4 / 13)  # "notes on engines!!", "is", "a math..", "poems"


def test_gold_triples_from_the_jsonl_record_format(scripted):
    cfg, _ = scripted(by_prompt=lambda p: SCORER_ANSWER)
    nlp = make_nlp(cfg)
    record = {"text": TEXT, "triples": GOLD_TUPLES}
    example = GoldConverter(nlp).example(record)
    assert nlp.evaluate([example])["openie_exact_f"] == pytest.approx(4 / 7)
    written = doc_to_record(example.reference)["triples"]
    assert written[0]["object"] == {"start": 25, "end": 31, "text": "London"}
    assert written[2]["predicate"] == {"text": "is"} and written[1]["time"] is None
    again = GoldConverter(nlp).doc({"text": TEXT, "triples": written})
    assert [t.to_dict() for t in again._.triples] == [t.to_dict() for t in example.reference._.triples]


def test_no_tuples_anywhere_scores_none(scripted):
    cfg, _ = scripted(by_prompt=lambda p: "[Answer]: NA")
    nlp = make_nlp(cfg)
    scores = nlp.evaluate([Example(nlp.make_doc(TEXT), nlp.make_doc(TEXT))])
    assert scores["openie_exact_f"] is None


# ---- bad configs -------------------------------------------------------------------------------------
def test_bad_configs_say_what_to_fix(scripted):
    cfg, _ = scripted()
    with pytest.raises(CodeIEError, match="open-IE style such as"):
        make_nlp(cfg, prompt={"@misc": "spacy_codeie.ADELIEPrompt.v1"})
    with pytest.raises(CodeIEError, match="open-IE style such as"):
        make_nlp(cfg, prompt={"@misc": "spacy_codeie.ADELIEOnDemandPrompt.v1"})
    with pytest.raises(CodeIEError, match="window_size"):
        make_nlp(cfg, window_size=0)
    with pytest.raises(CodeIEError, match="not a valid extension name"):
        make_nlp(cfg, extension="my-triples")
    Doc.set_extension("taken_by_someone", default=None, force=True)
    with pytest.raises(CodeIEError, match="already registered"):
        make_nlp(cfg, extension="taken_by_someone")
    with pytest.raises(Exception, match="chat_format"):
        make_nlp(cfg, prompt={"@misc": "spacy_codeie.ADELIEOpenIEPrompt.v1", "chat_format": "llama"})
    with pytest.raises(CodeIEError, match="returned answers for 0 docs"):
        bad, _ = scripted(name="bad")
        nlp = make_nlp(bad)
        nlp.get_pipe("codeie_openie").model = lambda prompts: []
        nlp(TEXT)
