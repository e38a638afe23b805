import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from conftest import PAPER_SCHEMA, ScriptedModel, sentence_of
from spacy_codeie import CodeIEError, PromptTooLongError, diagnostics

TEXT = "Ada Lovelace worked for Babbage Labs, which Acme Corp bought in 1843."
ANSWER = ('\n\tPerson("Ada Lovelace"),\n\tOrg("Babbage Labs"),\n\tOrg("Acme Corp"),\n'
          '\tWorksFor(Person("Ada Lovelace"), Org("Babbage Labs")),\n'
          '\tAcquisition(trigger="bought", buyer=[Org("Acme Corp")], target=[Org("Babbage Labs")])\n]')


def make_nlp(model_cfg, lang="en", **settings):
    nlp = spacy.blank(lang)
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": model_cfg, **settings})
    return nlp


def test_the_user_contract(scripted):
    cfg, _ = scripted({TEXT: ANSWER})
    doc = make_nlp(cfg)(TEXT)
    assert [(e.text, e.label_) for e in doc.ents] == [("Ada Lovelace", "PERSON"), ("Babbage Labs", "ORG"),
                                                      ("Acme Corp", "ORG")]
    (rel,) = doc._.relations
    assert (rel.head.text, rel.tail.text, rel.label) == ("Ada Lovelace", "Babbage Labs", "WORKS_FOR")
    assert rel.head.label_ == "PERSON" and rel.tail.label_ == "ORG"
    (event,) = doc._.events
    assert (event.trigger.text, event.label) == ("bought", "ACQUISITION")
    assert {role: [s.text for s in spans] for role, spans in event.arguments.items()} == {
        "buyer": ["Acme Corp"], "target": ["Babbage Labs"]}
    diag = diagnostics(doc)
    assert diag["instances"] == 5 and diag["hallucinated"] == 0 and diag["prompts"] == 1


def test_nlp_pipe_batches_across_docs_and_keeps_order(scripted):
    texts = [f"Doc {i}: Person {i} works." for i in range(10)]
    cfg, model = scripted(by_prompt=lambda p: f'Person("Person {sentence_of(p).split()[1][:-1]}")]')
    nlp = make_nlp(cfg)
    docs = list(nlp.pipe(texts, batch_size=4))
    assert [d.text for d in docs] == texts
    assert [d.ents[0].text for d in docs] == [f"Person {i}" for i in range(10)]
    assert [len(call) for call in model.calls] == [4, 4, 2]  # one model call per batch of docs


def test_empty_and_whitespace_docs_come_back_with_diagnostics(scripted):
    cfg, model = scripted({"Ada.": 'Person("Ada")]'})
    docs = list(make_nlp(cfg).pipe(["", "   \n\t ", "Ada."]))
    assert [d.text for d in docs] == ["", "   \n\t ", "Ada."]
    assert diagnostics(docs[0])["windows"] == 0 and diagnostics(docs[1])["prompts"] == 0
    assert [e.text for e in docs[2].ents] == ["Ada"]
    assert sum(len(p) for call in model.calls for p in call) == 1  # no prompt for empty docs


@pytest.mark.parametrize("completion, counter", [
    ("", "empty_completions"),
    ("I am sorry, I cannot do that.", "unparseable"),
    ('Person("Ada Lovelace"), Org("Babb', "truncated"),
    ('__import__("os").system("echo hacked"), Person("Ada Lovelace")]', "unknown_class"),
    ('Person("Charles Dickens")]', "hallucinated"),
])
def test_bad_completions_never_raise(scripted, completion, counter, capfd):
    cfg, _ = scripted(default=completion)
    doc = make_nlp(cfg)(TEXT)
    assert diagnostics(doc)[counter] >= 1
    assert "hacked" not in capfd.readouterr().out
    assert all(e.text in TEXT for e in doc.ents)


def test_long_doc_is_windowed_with_offsets_mapped_back(scripted):
    sentence = "Filler words go here and carry nothing at all. "
    text = sentence * 40 + "Ada Lovelace wrote the notes. " + sentence * 40
    cfg, model = scripted(by_prompt=lambda p: 'Person("Ada Lovelace")]' if "Ada" in sentence_of(p) else "]")
    nlp = make_nlp(cfg, window_size=300)
    doc = nlp(text)
    prompts = model.calls[0][0]
    assert len(prompts) == diagnostics(doc)["windows"] > 10
    assert all(len(sentence_of(p)) <= 300 for p in prompts)
    assert "".join(sentence_of(p) for p in prompts).replace(" ", "") == text.replace(" ", "")  # nothing lost
    (ent,) = doc.ents
    assert ent.text == "Ada Lovelace" and ent.start_char == text.index("Ada")


def test_sentence_windows_when_the_doc_has_sentences(scripted):
    cfg, model = scripted()
    nlp = make_nlp(cfg, window_size=60)
    nlp.add_pipe("sentencizer", first=True)
    nlp("First sentence is here. Second one is here too. Third closes it off.")
    assert [sentence_of(p) for p in model.calls[0][0]] == [
        "First sentence is here. Second one is here too.", "Third closes it off."]


def test_one_megabyte_doc(scripted):
    text = ("Ada Lovelace met Babbage. " * 40000)[:1_000_000]
    cfg, model = scripted(default='Person("Ada Lovelace")]')
    doc = make_nlp(cfg, window_size=2000)(text)
    diag = diagnostics(doc)
    assert diag["windows"] == len(model.calls[0][0]) >= 500 and diag["skipped_windows"] == 0
    assert len(doc.ents) == diag["windows"]  # one Ada per window, each placed
    assert doc.ents[-1].end_char <= len(text)


def test_a_token_longer_than_a_window_is_skipped_and_counted(scripted):
    cfg, model = scripted(default="]")
    doc = make_nlp(cfg, window_size=50)("Ada said " + "x" * 200 + " and left.")
    assert diagnostics(doc)["skipped_windows"] == 1
    assert all(len(sentence_of(p)) <= 50 for p in model.calls[0][0])


def test_mixed_scripts_and_control_characters(scripted):
    text = "Ada\x00 met 北京大学 and \"Москва\"\u2028 on\ttime\x1b."
    cfg, _ = scripted({text: 'Person("Ada"), Org("北京大学"), Org("Москва")]'})
    doc = make_nlp(cfg)(text)
    # spaCy keeps the NUL inside the token "Ada\x00"; the mention expands to that whole token
    assert [(e.start_char, e.label_) for e in doc.ents] == [(0, "PERSON"), (9, "ORG"), (19, "ORG")]
    assert [e.text for e in doc.ents][1:] == ["北京大学", "Москва"] and doc.ents[0].text.startswith("Ada")


def test_type_groups_split_the_schema_and_merge_results(scripted):
    schema = {"@misc": "spacy_codeie.schema_from_dict.v1",
              "entities": {"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"}}

    def answer(prompt):
        classes = [c for c in "ABCDE" if f"class {c}(Entity)" in prompt]
        return ", ".join(f'{c}("{c.lower()}{c.lower()}")' for c in classes) + "]"

    cfg, model = scripted(by_prompt=answer)
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": schema, "model": cfg, "max_types_per_prompt": 2})
    doc = nlp("aa bb cc dd ee")
    assert len(model.calls[0][0]) == 3
    assert [(e.text, e.label_) for e in doc.ents] == [("aa", "A"), ("bb", "B"), ("cc", "C"), ("dd", "D"), ("ee", "E")]


def test_per_task_prompts(scripted):
    cfg, model = scripted(default="]")
    make_nlp(cfg, task_split="per_task")(TEXT)
    prompts = model.calls[0][0]
    assert len(prompts) == 3
    assert "class Relation:" not in prompts[0] and "class WorksFor(Relation)" in prompts[1]
    assert "class Acquisition(Event)" in prompts[2] and "class WorksFor" not in prompts[2]


def test_existing_entities_are_kept_unless_overwrite(scripted):
    cfg, _ = scripted({TEXT: 'Person("Ada Lovelace"), Org("Acme Corp")]'})
    for overwrite, expected in ((False, ["Ada", "Acme Corp"]), (True, ["Ada Lovelace", "Acme Corp"])):
        nlp = spacy.blank("en")
        ruler = nlp.add_pipe("entity_ruler")
        ruler.add_patterns([{"label": "NAME", "pattern": "Ada"}])
        nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": cfg, "overwrite_ents": overwrite})
        doc = nlp(TEXT)
        assert [e.text for e in doc.ents] == expected
        assert {s.text for s in doc.spans["codeie"]} == {"Ada Lovelace", "Acme Corp"}


def test_nested_mentions_go_to_spans(scripted):
    cfg, _ = scripted({"Bank of America Tower": 'Org("Bank of America"), Org("Bank of America Tower"), '
                                                  'Person("America")]'})
    doc = make_nlp(cfg)("Bank of America Tower")
    assert [e.text for e in doc.ents] == ["Bank of America Tower"]
    assert len(doc.spans["codeie"]) == 3


def test_annotations_survive_docbin_and_to_disk(scripted, tmp_path):
    cfg, _ = scripted({TEXT: ANSWER})
    nlp = make_nlp(cfg)
    doc = nlp(TEXT)
    restored = list(DocBin(docs=[doc], store_user_data=True).get_docs(nlp.vocab))[0]
    restored = list(DocBin().from_bytes(DocBin(docs=[doc], store_user_data=True).to_bytes()).get_docs(nlp.vocab))[0]
    assert [r.to_dict() for r in restored._.relations] == [r.to_dict() for r in doc._.relations]
    assert [e.to_dict() for e in restored._.events] == [e.to_dict() for e in doc._.events]
    assert [s.text for s in restored.spans["codeie"]] == [s.text for s in doc.spans["codeie"]]
    doc.to_disk(tmp_path / "doc.spacy")
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    again = loaded(TEXT)
    assert [r.to_dict() for r in again._.relations] == [r.to_dict() for r in doc._.relations]
    assert loaded.get_pipe("codeie").schema == nlp.get_pipe("codeie").schema
    assert (tmp_path / "pipeline" / "codeie" / "schema.json").is_file()


def test_answers_no_style_can_read_are_a_warning_not_silence(scripted, caplog):
    config, _ = scripted(default='{"PERSON": ["Ada"]}')  # JSON, where the style expects calls
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": config})
    with caplog.at_level("WARNING", logger="spacy_codeie"):
        docs = list(nlp.pipe(["Ada wrote.", "Bob read."]))
    assert all(not d.spans["codeie"] for d in docs)
    warnings = [r.getMessage() for r in caplog.records if "could not read any instance" in r.getMessage()]
    assert len(warnings) == 1 and "KnowCoderPrompt" in warnings[0] and "'prompt' setting" in warnings[0]
    caplog.clear()
    config, _ = scripted(default='Person("Ada")]', name="readable")
    ok = spacy.blank("en")
    ok.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": config})
    with caplog.at_level("WARNING", logger="spacy_codeie"):
        ok("Ada wrote.")
    assert not any("could not read" in r.getMessage() for r in caplog.records)


def test_custom_extension_names(scripted):
    cfg, _ = scripted({TEXT: ANSWER})
    doc = make_nlp(cfg, relations_extension="my_rels", events_extension="my_events", spans_key="mine")(TEXT)
    assert len(doc._.my_rels) == 1 and len(doc._.my_events) == 1 and len(doc.spans["mine"]) == 3


def test_schema_from_file_in_config(scripted, tmp_path):
    path = tmp_path / "ontology.py"
    path.write_text('from spacy_codeie import Entity\nclass Person(Entity):\n    """A human."""\n    label = "PER"\n',
                    encoding="utf8")
    cfg, model = scripted({"Ada wrote.": 'Person("Ada")]'})
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_file.v1", "path": str(path)},
                                   "model": cfg})
    assert [(e.text, e.label_) for e in nlp("Ada wrote.").ents] == [("Ada", "PER")]
    assert "Description: A human." in model.calls[0][0][0]


@pytest.mark.parametrize("settings, message", [
    ({"window_size": 0}, "window_size"),
    ({"max_types_per_prompt": -1}, "max_types_per_prompt"),
    ({"relations_extension": "x", "events_extension": "x"}, "different names"),
])
def test_bad_settings_fail_at_add_pipe(scripted, settings, message):
    cfg, _ = scripted()
    with pytest.raises(CodeIEError, match=message):
        make_nlp(cfg, **settings)


@pytest.mark.parametrize("settings, allowed", [({"task_split": "sometimes"}, "'joint', 'per_task'"),
                                               ({"alignment_mode": "loose"}, "'strict', 'contract', 'expand'")])
def test_choices_are_checked_by_spacys_config_validation_which_names_them(scripted, settings, allowed):
    from confection import ConfigValidationError

    cfg, _ = scripted()
    with pytest.raises(ConfigValidationError, match=allowed):
        make_nlp(cfg, **settings)


def test_missing_schema_says_how_to_add_one(scripted):
    cfg, _ = scripted()
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"model": cfg})  # the schema may still come through initialize
    for run in (lambda: nlp("Ada."), nlp.initialize):
        with pytest.raises(CodeIEError, match=r"has no schema.*initialize.components.codeie.schema"):
            run()


def test_unknown_model_registry_name():
    with pytest.raises(Exception, match="spacy_codeie.NoSuchModel.v1"):
        make_nlp({"@llm_models": "spacy_codeie.NoSuchModel.v1"})


def test_model_that_breaks_the_contract(scripted):
    cfg, model = scripted()
    nlp = make_nlp(cfg)
    nlp.get_pipe("codeie").model = lambda prompts: [["]"]]
    with pytest.raises(CodeIEError, match="returned answers for 1 docs but was given 2"):
        list(nlp.pipe(["a b", "c d"]))


def test_evaluate_scores_the_component(scripted):
    from spacy.training import Example

    cfg, _ = scripted({TEXT: ANSWER})
    nlp = make_nlp(cfg)
    gold = nlp.make_doc(TEXT)
    gold.ents = [gold.char_span(0, 12, "PERSON"), gold.char_span(24, 36, "ORG")]
    scores = nlp.evaluate([Example(nlp.make_doc(TEXT), gold)])
    assert scores["ents_r"] == 1.0 and scores["ents_p"] == pytest.approx(2 / 3)


# ---- settings and data across save and load ----------------------------------------------------------
OTHER_SCHEMA = {"@misc": "spacy_codeie.schema_from_dict.v1", "entities": {"PERSON": "a human being", "CITY": "a city"},
                "relations": {"LIVES_IN": {"head": "PERSON", "tail": "CITY"}}}


def test_settings_given_at_load_win_over_the_saved_ones(scripted, tmp_path):
    text = "Ada lives in Paris."
    cfg, _ = scripted({text: 'Person("Ada"), City("Paris"), LivesIn(Person("Ada"), City("Paris"))]'})
    make_nlp(cfg).to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline", config={"components": {"codeie": {
        "relations_extension": "rels", "spans_key": "mine", "window_size": 20, "schema": OTHER_SCHEMA}}})
    component = loaded.get_pipe("codeie")
    assert component.cfg["window_size"] == 20 and component.labels == ("PERSON", "CITY", "LIVES_IN")
    doc = loaded(text)
    assert [(r.head.text, r.label, r.tail.text) for r in doc._.rels] == [("Ada", "LIVES_IN", "Paris")]
    assert {(s.text, s.label_) for s in doc.spans["mine"]} == {("Ada", "PERSON"), ("Paris", "CITY")}


def test_a_schema_given_to_initialize_is_saved_as_data(scripted, tmp_path):
    cfg, _ = scripted({TEXT: ANSWER})
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"model": cfg})
    srsly.write_json(tmp_path / "schema.json", {k: v for k, v in PAPER_SCHEMA.items() if k != "@misc"})
    nlp.config["initialize"]["components"]["codeie"] = {
        "schema": {"@readers": "srsly.read_json.v1", "path": str(tmp_path / "schema.json")}}
    nlp.initialize()
    assert len(nlp(TEXT)._.relations) == 1
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("codeie").schema == nlp.get_pipe("codeie").schema
    assert len(loaded(TEXT)._.relations) == 1
    assert len(nlp.from_bytes(nlp.to_bytes())(TEXT)._.events) == 1


def test_a_schema_in_config_and_in_initialize_is_refused(scripted):
    cfg, _ = scripted()
    nlp = make_nlp(cfg)
    with pytest.raises(CodeIEError, match=r"\[initialize.components.codeie.schema\]"):
        nlp.get_pipe("codeie").initialize(lambda: [], nlp=nlp, schema={"entities": {"CITY": "a city"}})


# ---- results do not depend on how types are grouped -----------------------------------------------
@pytest.mark.parametrize("max_types", [0, 1])
def test_one_string_under_two_labels_is_kept_under_both_in_any_grouping(scripted, max_types):
    schema = {"@misc": "spacy_codeie.schema_from_dict.v1", "entities": {"PER": "a person", "LOC": "a place"}}

    def answer(prompt):
        return ", ".join(f'{c}("Jordan")' for c in ("Per", "Loc") if f"class {c}(Entity)" in prompt) + "]"

    cfg, _ = scripted(by_prompt=answer)
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": schema, "model": cfg, "max_types_per_prompt": max_types})
    doc = nlp("Jordan went home.")
    assert sorted((s.text, s.label_) for s in doc.spans["codeie"]) == [("Jordan", "LOC"), ("Jordan", "PER")]
    assert [e.text for e in doc.ents] == ["Jordan"] and diagnostics(doc)["duplicates"] == 0


# ---- two components on one doc -----------------------------------------------------------------------
def test_a_second_component_adds_to_the_first_unless_overwrite(scripted):
    text = "Ada lives in Paris and works for Acme."
    first, _ = scripted({text: 'Person("Ada"), Org("Acme"), WorksFor(Person("Ada"), Org("Acme"))]'}, name="first")
    second, _ = scripted({text: 'Person("Ada"), City("Paris"), LivesIn(Person("Ada"), City("Paris"))]'},
                         name="second")
    for overwrite, spans, relations in (
        (False, {"Ada", "Acme", "Paris"}, {"WORKS_FOR", "LIVES_IN"}),
        (True, {"Ada", "Paris"}, {"LIVES_IN"}),
    ):
        nlp = spacy.blank("en")
        nlp.add_pipe("codeie", name="work", config={"schema": PAPER_SCHEMA, "model": first})
        nlp.add_pipe("codeie", name="home", config={"schema": OTHER_SCHEMA, "model": second, "overwrite": overwrite})
        doc = nlp(text)
        assert {s.text for s in doc.spans["codeie"]} == spans
        assert {r.label for r in doc._.relations} == relations
        assert diagnostics(doc)["prompts"] == (1 if overwrite else 2)


# ---- windows sized by the model's tokens -------------------------------------------------------------
class CountingModel(ScriptedModel):
    """A scripted model with a context: one token per UTF-8 byte, and too long a prompt is an error."""

    def __init__(self, max_prompt_tokens, **kwargs):
        super().__init__(**kwargs)
        self.max_prompt_tokens = max_prompt_tokens

    def count_tokens(self, prompts):
        return [len(p.encode("utf8")) for p in prompts]

    def __call__(self, prompts):
        batch = [list(p) for p in prompts]
        if any(n > self.max_prompt_tokens for doc in batch for n in self.count_tokens(doc)):
            raise PromptTooLongError("too long")
        return super().__call__(batch)


def test_windows_are_cut_to_the_models_context_and_a_long_doc_fails_alone(scripted):
    cfg, _ = scripted()
    nlp = make_nlp(cfg)
    component = nlp.get_pipe("codeie")
    overhead = len(component.prompt.render_prompt(component.groups[0], "").encode("utf8"))
    model = CountingModel(overhead + 400, by_prompt=lambda p: 'Person("Ada")]' if "Ada" in p else "]")
    component.model = model
    texts = ["Ada wrote.", "😀" * 999, "Ada left.", "Ada said " + "x" * 500 + " twice."]
    docs = list(nlp.pipe(texts))
    assert [d.text for d in docs] == texts
    assert [[e.text for e in d.ents] for d in docs] == [["Ada"], [], ["Ada"], ["Ada"]]
    sent = [p for call in model.calls for doc in call for p in doc]
    assert all(n <= model.max_prompt_tokens for n in model.count_tokens(sent))
    emoji = diagnostics(docs[1])
    assert emoji["windows"] >= 999 * 4 // 400 and emoji["skipped_windows"] == 0
    assert "".join(sentence_of(p) for p in model.calls[0][1]) == "😀" * 999  # nothing lost
    assert diagnostics(docs[3])["skipped_windows"] == 1  # one token longer than the context on its own


def test_a_model_that_refuses_a_long_prompt_costs_only_that_prompt(scripted):
    cfg, _ = scripted()
    nlp = make_nlp(cfg)
    component = nlp.get_pipe("codeie")
    overhead = len(component.prompt.render_prompt(component.groups[0], "").encode("utf8"))
    refusing = CountingModel(overhead + 400, by_prompt=lambda p: 'Person("Ada")]' if "Ada" in p else "]")
    component.model = lambda prompts: refusing(prompts)  # it cannot count tokens, only refuse
    docs = list(nlp.pipe(["Ada wrote.", "😀" * 999, "Ada left."]))
    assert [[e.text for e in d.ents] for d in docs] == [["Ada"], [], ["Ada"]]
    assert diagnostics(docs[1])["skipped_prompts"] == 1 and diagnostics(docs[0])["skipped_prompts"] == 0


def test_a_schema_part_longer_than_the_context_says_what_to_lower(scripted):
    cfg, _ = scripted()
    nlp = make_nlp(cfg)
    nlp.get_pipe("codeie").model = CountingModel(100)
    with pytest.raises(PromptTooLongError, match="before any text.*max_types_per_prompt"):
        nlp("Ada wrote.")


def test_a_triggerless_follow_up_answer_completes_no_detected_event():
    from spacy_codeie.instances import EventInstance, Mention, ParseResult
    from spacy_codeie.pipeline import _merge_stages

    detected = ParseResult(instances=[EventInstance("BUY", "bought"), EventInstance("BUY", "")])
    second = ParseResult(instances=[EventInstance("BUY", "bought", (("buyer", Mention("Acme")),)),
                                    EventInstance("BUY", "", (("buyer", Mention("Bolt")),))])
    # "bought" is completed; a trigger-less answer cannot say which detection it completes, so it is added
    assert _merge_stages(detected, second).instances == [EventInstance("BUY", ""), *second.instances]
