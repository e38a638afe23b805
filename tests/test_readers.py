import json

import pytest
import spacy
from spacy.tokens import DocBin

from conftest import shared_file
from spacy_codeie.readers import GoldConverter, doc_to_record, jsonl_corpus, jsonl_to_docbin, read_jsonl

RECORD = {"id": "x1", "lang": "en", "text": "Ada Lovelace worked for Babbage Labs, which Acme Corp bought.",
          "entities": [{"start": 0, "end": 12, "label": "PER", "text": "Ada Lovelace"},
                       {"start": 24, "end": 36, "label": "ORG", "text": "Babbage Labs"},
                       {"start": 44, "end": 53, "label": "ORG", "text": "Acme Corp"}],
          "relations": [{"head": 0, "tail": 1, "label": "WORKS_FOR"}],
          "events": [{"trigger": {"start": 54, "end": 60, "text": "bought"}, "label": "BUY",
                      "arguments": [{"start": 44, "end": 53, "text": "Acme Corp", "role": "buyer"}]}]}


def test_record_to_doc_and_back():
    nlp = spacy.blank("en")
    doc = GoldConverter(nlp).doc(RECORD)
    assert [(e.text, e.label_) for e in doc.ents] == [("Ada Lovelace", "PER"), ("Babbage Labs", "ORG"), ("Acme Corp", "ORG")]
    assert doc._.relations[0].head.text == "Ada Lovelace"
    assert doc._.events[0].arguments["buyer"][0].text == "Acme Corp"
    assert doc_to_record(doc) == RECORD


def test_jsonl_docbin_and_corpus(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(RECORD) + "\n" + json.dumps(dict(RECORD, id="x2")) + "\n", encoding="utf8")
    nlp = spacy.blank("en")
    docbin = jsonl_to_docbin(path, nlp)
    docs = list(DocBin().from_bytes(docbin.to_bytes()).get_docs(nlp.vocab))
    assert [doc_to_record(d)["id"] for d in docs] == ["x1", "x2"]
    assert doc_to_record(docs[0]) == RECORD
    examples = list(jsonl_corpus(str(path), limit=1)(nlp))
    assert len(examples) == 1 and len(examples[0].reference._.relations) == 1
    assert not examples[0].predicted.ents


def test_a_null_trigger_reads_and_writes_back_as_a_triggerless_event(tmp_path):
    record = dict(RECORD, id="yayi", events=[
        {"trigger": None, "label": "BUY", "arguments": [{"start": 44, "end": 53, "text": "Acme Corp", "role": "buyer"}]},
        {"trigger": None, "label": "BUY", "arguments": [{"start": 44, "end": 46, "text": "Ac", "role": "buyer"}]}])
    nlp = spacy.blank("en")
    converter = GoldConverter(nlp, alignment_mode="strict")
    doc = converter.doc(record)
    (event,) = doc._.events  # the second has no argument on token boundaries: nothing of it is left
    assert event.trigger is None and event.arguments["buyer"][0].text == "Acme Corp"
    assert converter.misaligned == 1
    assert doc_to_record(doc) == dict(record, events=record["events"][:1])
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf8")
    (back,) = DocBin().from_bytes(jsonl_to_docbin(path, nlp).to_bytes()).get_docs(nlp.vocab)
    assert doc_to_record(back)["events"][0]["trigger"] is None


def test_bad_jsonl(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"no_text": 1}\n', encoding="utf8")
    with pytest.raises(ValueError, match="not a record with a 'text'"):
        list(read_jsonl(path))
    with pytest.raises(ValueError, match="does not exist"):
        list(read_jsonl(tmp_path / "missing.jsonl"))


@pytest.mark.parametrize("dataset, split, lang", [("conll04", "test", "en"), ("casie", "test", "en"),
                                                  ("weibo_ner_zh", "test", "zh")])
def test_shared_datasets_read_back_losslessly(dataset, split, lang):
    path = shared_file(dataset, split)
    nlp = spacy.blank(lang)
    converter = GoldConverter(nlp)
    records = list(read_jsonl(path, limit=100))
    for record in records:
        back = doc_to_record(converter.doc(record))
        assert {(e["start"], e["end"], e["label"]) for e in back["entities"]} == {
            (e["start"], e["end"], e["label"]) for e in record["entities"]}
        assert len(back["relations"]) == len(record["relations"])
        assert [(e["trigger"]["start"], e["label"], len(e["arguments"])) for e in back["events"]] == [
            (e["trigger"]["start"], e["label"], len(e["arguments"])) for e in record["events"]]
    assert converter.misaligned == 0
