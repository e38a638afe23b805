"""codeie_ondemand: ADELIE's on-demand-IE prompt against its published test rows, tables on the Doc, serialization.

Rows: tests/fixtures/styles/adelie_ondemand_rows.jsonl (THU-KEG/ADELIE @ 70f01ff02fa394b8250e5d47ba9572bace27ae4a,
unified_data/test_format/zeroshot/ondemand.jsonl, ids 2, 105, 126): system, user and gold assistant messages.
"""
import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin

from spacy_codeie import CodeIEError, ondemand_diagnostics
from spacy_codeie.errors import SchemaError
from spacy_codeie.prompting import ADELIEOnDemandPrompt
from spacy_codeie.prompting.adelie_open import ONDEMAND_SYSTEM, split_row

ROWS = {row["id"]: row for row in (json.loads(line) for line in (
    Path(__file__).parent / "fixtures" / "styles" / "adelie_ondemand_rows.jsonl").read_text("utf8").splitlines())}
PUBLISHED = ADELIEOnDemandPrompt(columns_sentence="")  # ADELIE's own prompt: the columns are in the instruction


def parts(row):
    """(system, instruction, text, gold answer, gold header) of a published row."""
    system, user, answer = (m["content"] for m in row["messages"])
    instruction, sep, text = user.partition("\n\nText: ")
    assert sep
    return system, instruction, text, answer, split_row(answer[len("[Answer]: "):].splitlines()[0])


def make_nlp(model_cfg, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie_ondemand", config={"model": model_cfg, **config})
    return nlp


# ---- the prompt ----------------------------------------------------------------------------------
@pytest.mark.parametrize("row_id", sorted(ROWS))
def test_prompt_is_the_published_row(row_id):
    system, instruction, text, _, header = parts(ROWS[row_id])
    assert system == ONDEMAND_SYSTEM
    messages = ROWS[row_id]["messages"]
    # train4llama/eval/templates.py's Tulu layout over the messages before the answer
    expected = f"<|system|>\n{messages[0]['content']}\n<|user|>\n{messages[1]['content']}\n<|assistant|>\n"
    assert PUBLISHED.render_prompt(instruction, header, text) == expected
    assert ADELIEOnDemandPrompt(columns_sentence="", chat_format="none").render_prompt(instruction, header, text) \
        == messages[1]["content"]


def test_default_prompt_adds_the_header_asked_for():
    assert ADELIEOnDemandPrompt().render_prompt("List the people.", ["Name", "Born | died"], "Ada (1815-1852).") == (
        f"<|system|>\n{ONDEMAND_SYSTEM}\n<|user|>\nList the people. Use this table header: | Name | Born \\| died |"
        "\n\nText: Ada (1815-1852).\n<|assistant|>\n")


# ---- answers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("row_id", sorted(ROWS))
def test_gold_answer_parses_and_renders_back(row_id):
    *_, answer, header = parts(ROWS[row_id])
    parsed = PUBLISHED.parse(answer, header)
    lines = answer[len("[Answer]: "):].splitlines()
    assert parsed.rows == [tuple(split_row(line)) for line in lines[2:]]
    assert (parsed.no_table, parsed.ragged_rows, parsed.missing_columns, parsed.extra_columns) == (0, 0, 0, 0)
    assert PUBLISHED.render_completion(header, parsed.rows) == answer


def test_header_is_matched_by_name_then_by_position():
    style = ADELIEOnDemandPrompt()
    parsed = style.parse("[Answer]: | **price** | Product name | Colour |\n|---|:---:|---|\n| $5 | Tea | green |\n"
                         "| $6 | Milk |\n| | | red |\n\nThat is all.", ["Product Name", "Price", "Weight"])
    assert parsed.rows == [("Tea", "$5", ""), ("Milk", "$6", "")]
    assert (parsed.extra_columns, parsed.missing_columns, parsed.ragged_rows, parsed.empty_rows) == (1, 1, 1, 1)
    positional = style.parse("| a | b |\n| --- | --- |\n| Tea | $5 |", ["Product", "Price"])
    assert positional.rows == [("Tea", "$5")] and positional.positional_header == 1
    escaped = style.parse("| Name | Note |\n| --- | --- |\n| Ada | a \\| b |", ["Name", "Note"])
    assert escaped.rows == [("Ada", "a | b")]


def test_no_table_and_nothing_found():
    style = ADELIEOnDemandPrompt()
    assert style.parse("[Answer]: I cannot help with that.", ["A"]).no_table == 1
    nothing = style.parse("[Answer]: NA", ["A"])
    assert nothing.rows == [] and nothing.no_table == 0
    assert style.parse("", ["A"]).empty


# ---- on the Doc --------------------------------------------------------------------------------------
def test_gold_table_lands_on_the_doc(scripted):
    _, instruction, text, answer, header = parts(ROWS[105])
    cfg, model = scripted(by_prompt=lambda prompt: answer)
    doc = make_nlp(cfg, instruction=instruction, columns=header)(text)
    assert model.calls[0] == [[ADELIEOnDemandPrompt().render_prompt(instruction, header, text)]]
    table = doc._.table
    assert table.columns == ("Product", "Catalyst", "Yield") and table.instruction == instruction
    assert [[c.text for c in row] for row in table.rows] == [["2c", "CyPF-Cy", ">95%"], ["2c", "CyPBn-Cy", "96%"],
                                                           ["2d", "CyPF-Cy", "56%"], ["2d", "CyPBn-Cy", "70%"]]
    first, _, third, _ = table.rows
    cypf = [i for i in range(len(text)) if text.startswith("CyPF-Cy", i)]
    assert [first[1].span.start_char, third[1].span.start_char] == cypf  # down a column, in text order
    assert first[0].span.text == "2c" and first[0].span.label_ == "Product"
    assert table.rows[1][0].span.start_char == first[0].span.start_char  # "2c" occurs once: both rows point there
    assert first[2].to_dict() == {"text": ">95%", "start": text.index(">95%"), "end": text.index(">95%") + 4}
    assert table.to_text_rows()[3] == {"Product": "2d", "Catalyst": "CyPBn-Cy", "Yield": "70%"}
    assert ondemand_diagnostics(doc)["rows"] == 4 and ondemand_diagnostics(doc)["unaligned"] == 0


def test_cells_not_in_the_text_keep_their_text(scripted):
    _, instruction, text, answer, header = parts(ROWS[2])
    cfg, _ = scripted(by_prompt=lambda prompt: answer)
    doc = make_nlp(cfg, instruction=instruction, columns=header)(text)
    gildan, c4 = doc._.table.rows
    assert gildan[1].text == "N/A" and gildan[1].span is None  # an empty cell: not looked for
    assert gildan[2].span.text == "moisture wicking technology"  # found whatever the case
    assert c4[3].text == "Carbonated drinks" and c4[3].span is None  # the model's words, not the text's
    # the tokenizer keeps "Price:$33.59" whole: "expand" widens to it, "strict" drops the span and counts it
    assert c4[4].span.text == "Price:$33.59"
    diag = ondemand_diagnostics(doc)
    assert (diag["cells"], diag["unaligned"], diag["misaligned"]) == (8, 2, 0)  # 2 N/A; "Carbonated drinks", "200mg.."
    cfg, _ = scripted(by_prompt=lambda prompt: answer, name="strict")
    strict = make_nlp(cfg, instruction=instruction, columns=header, alignment_mode="strict")(text)
    assert strict._.table.rows[1][4].span is None and strict._.table.rows[1][4].text == "$33.59"
    assert ondemand_diagnostics(strict)["misaligned"] == 2  # both prices


# ---- serialization -----------------------------------------------------------------------------------
def test_table_survives_docbin_and_to_disk(scripted, tmp_path):
    _, instruction, text, answer, header = parts(ROWS[126])
    cfg, _ = scripted(by_prompt=lambda prompt: answer)
    nlp = make_nlp(cfg, instruction=instruction, columns=header, extension="conditions")
    doc = nlp(text)
    expected = doc._.conditions.to_dict()
    assert [c["text"] for c in expected["rows"][0]] == ["25 °C", "48 h", "500 rpm"]
    assert all("start" in c for c in expected["rows"][0])
    restored = list(DocBin().from_bytes(DocBin(docs=[doc], store_user_data=True).to_bytes()).get_docs(nlp.vocab))[0]
    assert restored._.conditions.to_dict() == expected
    assert Doc(nlp.vocab).from_bytes(doc.to_bytes())._.conditions.to_dict() == expected
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    pipe = loaded.get_pipe("codeie_ondemand")
    assert (pipe.instruction, pipe.columns) == (instruction, tuple(header))
    assert loaded(text)._.conditions.to_dict() == expected


def test_doc_without_the_component_has_no_table(scripted):
    cfg, _ = scripted(by_prompt=lambda prompt: "[Answer]: NA")
    nlp = make_nlp(cfg, instruction="List the people.", columns=["Name"])
    assert nlp.make_doc("Ada.")._.table is None
    table = nlp("Ada.")._.table
    assert table.rows == () and table.columns == ("Name",)


# ---- bad configs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("config, message", [
    ({"instruction": "  ", "columns": ["Name"]}, "needs an instruction"),
    ({"instruction": "List people.", "columns": []}, "columns as a list of names"),
    ({"instruction": "List people.", "columns": ["Name", " "]}, "non-empty strings"),
    ({"instruction": "List people.", "columns": ["Name", "name "]}, "read the same"),
    ({"instruction": "List people.", "columns": ["Name"], "prompt": {"@misc": "spacy_codeie.ADELIEOpenIEPrompt.v1"}},
     "on-demand style such as"),
    ({"instruction": "List people.", "columns": ["Name"], "extension": "two words"}, "not a valid extension name"),
])
def test_bad_configs_say_what_to_fix(scripted, config, message):
    cfg, _ = scripted()
    with pytest.raises(CodeIEError, match=message):
        make_nlp(cfg, **config)


def test_missing_settings_and_bad_style_settings(scripted):
    cfg, _ = scripted()
    with pytest.raises(Exception, match="columns"):
        make_nlp(cfg, instruction="List people.")
    with pytest.raises(SchemaError, match="<columns> slot"):
        ADELIEOnDemandPrompt(columns_sentence="Use these columns.")
