import pytest
import spacy
from spacy.training import Example

from spacy_codeie.annotations import register_extensions, set_event_records, set_relation_records
from spacy_codeie.entity_errors import EntityErrors, classify, errors_markdown
from spacy_codeie.scoring import score_codeie

TEXT = "Ada Lovelace worked for Babbage Labs, which Acme Corp bought."
ADA, BABBAGE, ACME, BOUGHT = (0, 12), (24, 36), (44, 53), (54, 60)


def make_doc(nlp, ents, rels=(), events=(), diag=None):
    doc = nlp.make_doc(TEXT)
    spans = [doc.char_span(s, e, label) for (s, e), label in ents]
    doc.ents = spans
    set_relation_records(doc, [{"head": [*h, hl], "tail": [*t, tl], "label": lab} for h, hl, t, tl, lab in rels])
    set_event_records(doc, [{"trigger": list(tr) if tr is not None else None, "label": lab,
                             "arguments": [[*a, role, ""] for a, role in args]} for tr, lab, args in events])
    if diag:
        doc.user_data["codeie_diagnostics"] = diag
    return doc


@pytest.fixture
def nlp():
    register_extensions()
    return spacy.blank("en")


def test_strict_scores(nlp):
    gold = make_doc(nlp, [(ADA, "PER"), (BABBAGE, "ORG"), (ACME, "ORG")],
                    rels=[(ADA, "PER", BABBAGE, "ORG", "WORKS_FOR")],
                    events=[(BOUGHT, "BUY", [(ACME, "buyer"), (BABBAGE, "target")])])
    pred = make_doc(nlp, [(ADA, "PER"), (BABBAGE, "PER")],  # wrong type for Babbage
                    rels=[(ADA, "PER", BABBAGE, "PER", "WORKS_FOR")],  # boundary right, strict wrong
                    events=[(BOUGHT, "BUY", [(ACME, "target"), (BABBAGE, "target")])],  # one role wrong
                    diag={"instances": 8, "unparseable": 1, "unknown_class": 1, "bad_arguments": 0,
                          "unknown_role": 0, "mentions": 10, "hallucinated": 2, "prompts": 4, "truncated": 1})
    s = score_codeie([Example(pred, gold)], spans_key="nope")
    assert s["ents_p"] == 0.5 and s["ents_r"] == pytest.approx(1 / 3)
    assert s["ents_per_type"]["PER"] == {"p": 0.5, "r": 1.0, "f": pytest.approx(2 / 3)}
    assert s["codeie_rel_strict_f"] == 0.0 and s["codeie_rel_boundary_f"] == 1.0
    assert s["codeie_trigger_id_f"] == 1.0 and s["codeie_trigger_cls_f"] == 1.0
    assert s["codeie_arg_id_f"] == 1.0 and s["codeie_arg_cls_f"] == 0.5
    assert s["codeie_parse_error_rate"] == pytest.approx(2 / 10)
    assert s["codeie_hallucination_rate"] == pytest.approx(0.2)
    assert s["codeie_truncated_rate"] == 0.25


def test_each_gold_mention_gets_one_kind_of_outcome():
    gold = {(0, 12, "PER"), (24, 36, "ORG"), (44, 53, "ORG"), (61, 70, "LOC"), (80, 90, "LOC")}
    pred = {(0, 12, "PER"),  # correct
            (24, 36, "LOC"),  # same offsets, another label
            (44, 49, "ORG"),  # the right label over part of it
            (58, 70, "ORG"),  # other offsets and another label
            (100, 104, "PER"), (110, 114, "PER")}  # nothing gold there; (80, 90) is missed
    errors = EntityErrors()
    errors.add(gold, pred)
    result = errors.to_dict()
    assert result["per_label"]["PER"] == {"correct": 1, "wrong_label": 0, "wrong_span": 0, "wrong_both": 0,
                                          "missed": 0, "confused_with": {}}
    assert result["per_label"]["ORG"]["wrong_label"] == 1 and result["per_label"]["ORG"]["wrong_span"] == 1
    assert result["per_label"]["ORG"]["confused_with"] == {"LOC": 1}
    assert result["per_label"]["LOC"]["wrong_both"] == 1 and result["per_label"]["LOC"]["missed"] == 1
    assert result["per_label"]["LOC"]["confused_with"] == {"ORG": 1}
    assert result["spurious"] == {"PER": 2}
    assert sum(sum(row[k] for k in ("correct", "wrong_label", "wrong_span", "wrong_both", "missed"))
               for row in result["per_label"].values()) == len(gold)
    # a mention that only touches the gold one's end is not an overlap
    assert classify((0, 5, "PER"), [(5, 9, "PER")]) == ("missed", [])
    table = errors_markdown(result)
    assert "| ORG | 0 | 1 | 1 | 0 | 0 | LOC (1) |" in table and "PER 2" in table


def test_the_scores_carry_the_entity_errors(nlp):
    gold = make_doc(nlp, [(ADA, "PER"), (BABBAGE, "ORG"), (ACME, "ORG")])
    pred = make_doc(nlp, [(ADA, "PER"), (BABBAGE, "PER")])
    errors = score_codeie([Example(pred, gold)])["codeie_ents_errors"]
    assert errors["per_label"]["ORG"]["wrong_label"] == 1 and errors["per_label"]["ORG"]["missed"] == 1
    assert errors["per_label"]["ORG"]["confused_with"] == {"PER": 1} and errors["spurious"] == {}


def test_nothing_to_score_gives_none_not_zero(nlp):
    doc = make_doc(nlp, [])
    s = score_codeie([Example(doc, doc)])
    assert s["ents_f"] is None and s["codeie_rel_strict_f"] is None and s["codeie_arg_cls_f"] is None


def test_triggerless_events_score_their_arguments_and_miss_the_trigger(nlp):
    gold = make_doc(nlp, [], events=[(BOUGHT, "BUY", [(ACME, "buyer"), (BABBAGE, "target")])])
    pred = make_doc(nlp, [], events=[(None, "BUY", [(ACME, "buyer"), (BABBAGE, "buyer")]),  # one role wrong
                                     (None, "SELL", [(ADA, "seller")])])  # a type gold does not have
    s = score_codeie([Example(pred, gold)])
    assert s["codeie_trigger_id_p"] == s["codeie_trigger_id_r"] == s["codeie_trigger_cls_f"] == 0.0
    assert s["codeie_trigger_cls_per_type"] == {"BUY": {"p": 0.0, "r": 0.0, "f": 0.0}}  # missed, not predicted
    assert s["codeie_arg_id_p"] == pytest.approx(2 / 3) and s["codeie_arg_id_r"] == 1.0
    assert s["codeie_arg_cls_p"] == pytest.approx(1 / 3) and s["codeie_arg_cls_r"] == 0.5
    assert s["codeie_arg_cls_per_type"]["target"] == {"p": 0.0, "r": 0.0, "f": 0.0}


def test_triggerless_predictions_alone_are_scored_not_none(nlp):
    pred = make_doc(nlp, [], events=[(None, "BUY", [(ACME, "buyer")])])
    s = score_codeie([Example(pred, make_doc(nlp, []))])
    assert s["codeie_arg_cls_p"] == 0.0 and s["codeie_arg_cls_f"] == 0.0 and s["codeie_trigger_cls_f"] == 0.0


def test_registered_scorer_is_the_component_default():
    from spacy.util import registry

    assert registry.scorers.get("spacy_codeie.scorer.v1")() is score_codeie
