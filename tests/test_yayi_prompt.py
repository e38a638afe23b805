"""YAYIPrompt.v1 against the prompts of YAYI-UIE's README, and its readers of JSON-like answers.

Published strings: wenge-research/YAYI-UIE at commit 603ea82f1a4cb2322321285dae4a2f4bd4bc8d2e, README.md (Chinese)
and README_EN.md (English): the inference examples (`prompt = ...`, wrapped in `<reserved_13>`/`<reserved_14>`
there) and the sample instructions of each task. The repository publishes no gold answers (its
test/test_sample_100.jsonl is not in the stored snapshot), so the answers below are of the shapes the
instructions ask for.
"""
import json

import pytest
import spacy
from spacy.tokens import DocBin, Span
from spacy.util import registry

from spacy_codeie.errors import SchemaError
from spacy_codeie.instances import EntityInstance, EventInstance, Mention, RelationInstance
from spacy_codeie.prompting import YAYIPrompt
from spacy_codeie.prompting.yayi import is_mostly_cjk
from spacy_codeie.readers import GoldConverter, doc_to_record
from spacy_codeie.schema import schema_from_dict

# README_EN.md, "Inference"
EN_NER_PROMPT = "Text: Alberto Mancini won in the final 7–5 , 2–6 , 7–6 , 7–5 against Boris Becker . \nFrom the given text, extract all the entities and types. Please format the answer in json {location/person/organization：[entities]}."
# README.md, 模型推理
ZH_NER_PROMPT = "文本:氧化锆陶瓷以其卓越的物理和化学特性在多个行业中发挥着关键作用。这种材料因其高强度、高硬度和优异的耐磨性，广泛应用于医疗器械、切削工具、磨具以及高端珠宝制品。在制造这种高性能陶瓷时，必须遵循严格的制造标准，以确保其最终性能。这些标准涵盖了从原材料选择到成品加工的全过程，保障产品的一致性和可靠性。氧化锆的制造过程通常包括粉末合成、成型、烧结和后处理等步骤。原材料通常是高纯度的氧化锆粉末，通过精确控制的烧结工艺，这些粉末被转化成具有特定微观结构的坚硬陶瓷。这种独特的微观结构赋予氧化锆陶瓷其显著的抗断裂韧性和耐腐蚀性。此外，氧化锆陶瓷的热膨胀系数与铁类似，使其在高温应用中展现出良好的热稳定性。因此，氧化锆陶瓷不仅在工业领域，也在日常生活中的应用日益增多，成为现代材料科学中的一个重要分支。\n抽取文本中可能存在的实体，并以json{制造品名称/制造过程/制造材料/工艺参数/应用/生物医学/工程特性：[实体]}格式输出。"
# README_EN.md, "Sample Prompts" (the text line left out)
EN_RE_INSTRUCTION = ("From the given text, extract the possible head entities (subjects) and tail entities (objects) "
                     "and give the corresponding relation triples.The relations are [country of administrative "
                     "divisions,place of birth,location contains]. Output the result in json[{'relation':'', "
                     "'head':'', 'tail':''}, ].")
EN_EE_INSTRUCTION = ("Given the text and the role list [seller, place, beneficiary, buyer], identify event arguments "
                     "and roles, provide your answer in the format of json{role:name}.")
# README.md, 指令样例 (the optional 【task】 prefix included as published)
ZH_NER_INSTRUCTION = "【实体抽取】抽取文本中可能存在的实体，并以json{人物/机构/地点：[实体]}格式输出。"
ZH_RE_INSTRUCTION = ("【关系抽取】已知关系列表是[注资,拥有,纠纷,自己,增持,重组,买资,签约,持股,交易]。根据关系列表抽取关系三元组，"
                     "按照json[{'relation':'', 'head':'', 'tail':''}, ]的格式输出。")
ZH_EE_INSTRUCTION = "已知论元角色列表是[时间，地点，会见主体，会见对象]，请根据论元角色列表从给定的输入中抽取可能的论元，以json{角色:论元}格式输出。"


def _instruction(prompt: str) -> str:
    return prompt.removeprefix("<reserved_13>").removesuffix("<reserved_14>").split("\n", 1)[1]


def _without_task_tag(instruction: str) -> str:
    return instruction.split("】", 1)[1] if instruction.startswith("【") else instruction


def test_english_ner_prompt_is_the_published_one():
    schema = schema_from_dict(entities=["location", "person", "organization"])
    text = EN_NER_PROMPT.split("\n")[0].removeprefix("Text: ")
    assert YAYIPrompt().render_prompt(schema, text) == "<reserved_13>" + EN_NER_PROMPT + "<reserved_14>"
    assert YAYIPrompt(language="en", chat_tokens=False).render_prompt(schema, text) == EN_NER_PROMPT


def test_chinese_ner_prompt_is_the_published_one():
    names = "制造品名称/制造过程/制造材料/工艺参数/应用/生物医学/工程特性".split("/")
    schema = schema_from_dict(entities={n: {"class_name": f"T{i}"} for i, n in enumerate(names)})
    text = ZH_NER_PROMPT.split("\n")[0].removeprefix("文本:")
    assert YAYIPrompt(language="auto").render_prompt(schema, text) == "<reserved_13>" + ZH_NER_PROMPT + "<reserved_14>"
    other = schema_from_dict(entities={"人物": {"class_name": "A"}, "机构": {"class_name": "B"}, "地点": {"class_name": "C"}})
    assert _instruction(YAYIPrompt().render_prompt(other, "张三在北京。")) == _without_task_tag(ZH_NER_INSTRUCTION)


def test_relation_instructions_are_the_published_ones():
    en = schema_from_dict(entities={"Entity_": ""}, relations={
        "country of administrative divisions": {"class_name": "A", "head": "Entity", "tail": "Entity"},
        "place of birth": {"class_name": "B", "head": "Entity", "tail": "Entity"},
        "location contains": {"class_name": "C", "head": "Entity", "tail": "Entity"}})
    assert _instruction(YAYIPrompt().render_prompt(en, "Ada was born in Paris.")) == EN_RE_INSTRUCTION
    labels = "注资,拥有,纠纷,自己,增持,重组,买资,签约,持股,交易".split(",")
    zh = schema_from_dict(entities={"Entity_": ""}, relations={
        label: {"class_name": f"R{i}", "head": "Entity", "tail": "Entity"} for i, label in enumerate(labels)})
    assert _instruction(YAYIPrompt().render_prompt(zh, "甲公司增持乙公司。")) == _without_task_tag(ZH_RE_INSTRUCTION)


def test_event_instructions_are_the_published_ones():
    en = schema_from_dict(events={"TRANSFER": {"roles": {"seller": ["Entity"], "place": ["Entity"],
                                                        "beneficiary": ["Entity"], "buyer": ["Entity"]}}})
    assert _instruction(YAYIPrompt(language="en").render_prompt(en, "x")) == EN_EE_INSTRUCTION
    zh = schema_from_dict(events={"会见": {"class_name": "Meet", "roles": {
        "时间": {"types": ["Entity"], "parameter": "time"}, "地点": {"types": ["Entity"], "parameter": "place"},
        "会见主体": {"types": ["Entity"], "parameter": "host"}, "会见对象": {"types": ["Entity"], "parameter": "guest"}}}})
    assert _instruction(YAYIPrompt(language="zh").render_prompt(zh, "x")) == ZH_EE_INSTRUCTION


@pytest.fixture
def schema():
    return schema_from_dict(
        entities={"PERSON": "", "ORG": ""},
        relations={"WORKS_FOR": {"head": "PERSON", "tail": "ORG"}, "LOCATED_IN": {"head": "ORG", "tail": "Entity"}},
        events={"ACQUISITION": {"roles": {"buyer": ["ORG"], "seller": ["Entity"]}}},
    )


def test_answers_in_either_quote_style_parse(schema):
    ner = YAYIPrompt().parser(schema.subset(list(schema.entities)))
    for answer in ('{"person": ["Ada", "Bo"], "org": ["Acme"]}', "{'person': ['Ada', 'Bo'], 'org': 'Acme'}",
                   '```json\n{"person": ["Ada", "Bo"], "org": ["Acme"]}\n```', 'json{"PERSON": ["Ada", "Bo"], "Org": ["Acme"]}'):
        parsed = ner.parse(answer)
        assert parsed.instances == [EntityInstance("PERSON", "Ada"), EntityInstance("PERSON", "Bo"),
                                    EntityInstance("ORG", "Acme")], answer
        assert parsed.rejected == 0
    rel = YAYIPrompt().parser(schema.subset(list(schema.relations)))
    parsed = rel.parse("[{'relation':'works for', 'head':'Ada', 'tail':'Acme'}, {'relation':'owns', 'head':'A', 'tail':'B'}, "
                       "{'relation':'', 'head':'', 'tail':''}, {'关系':'located in', '头实体':'Acme', '尾实体':'Paris'}]")
    assert parsed.instances == [RelationInstance("WORKS_FOR", Mention("Ada", "PERSON"), Mention("Acme", "ORG")),
                                RelationInstance("LOCATED_IN", Mention("Acme", "ORG"), Mention("Paris"))]
    assert parsed.unknown_class == 1


def test_full_width_punctuation_of_the_instruction_is_read(schema):
    ner = YAYIPrompt().parser(schema.subset(list(schema.entities)))
    parsed = ner.parse("{'person'：['张三，李四', '王五']，'org'：['甲公司']}")
    assert parsed.instances == [EntityInstance("PERSON", "张三，李四"), EntityInstance("PERSON", "王五"),
                                EntityInstance("ORG", "甲公司")]


def test_event_answers_are_role_dicts_without_trigger(schema):
    ev = schema.subset(list(schema.events))
    parsed = YAYIPrompt().parser(ev).parse("{'buyer': 'Acme', 'seller': ['Bolt', 'Volt'], 'weapon': 'x'}")
    assert parsed.instances == [EventInstance("ACQUISITION", "", (
        ("buyer", Mention("Acme", "ORG")), ("seller", Mention("Bolt")), ("seller", Mention("Volt"))))]
    assert parsed.unknown_role == 1


def test_completions_round_trip(schema):
    style = YAYIPrompt()
    cases = [
        (schema.subset(list(schema.entities)), [EntityInstance("PERSON", "张三"), EntityInstance("ORG", "Acme")]),
        (schema.subset(list(schema.relations)),
         [RelationInstance("WORKS_FOR", Mention("Ada", "PERSON"), Mention("Acme", "ORG"))]),
        (schema.subset(list(schema.events)),
         [EventInstance("ACQUISITION", "", (("buyer", Mention("Acme", "ORG")), ("seller", Mention("Bolt"))))]),
    ]
    for sub, gold in cases:
        completion = style.render_completion(sub, gold)
        assert style.parser(sub).parse(completion).instances == gold, completion
    assert style.render_completion(cases[0][0], [EntityInstance("PERSON", "张三")]) == '{"person": ["张三"]}'


def test_several_event_types_get_qualified_roles():
    schema = schema_from_dict(events={"ATTACK": {"roles": {"place": ["Entity"]}}, "MEET": {"roles": {"place": ["Entity"]}}})
    style = YAYIPrompt(language="en")
    assert "[attack place, meet place]" in style.render_prompt(schema, "x")
    parsed = style.parser(schema).parse('{"meet place": "Paris"}')
    assert parsed.instances == [EventInstance("MEET", "", (("place", Mention("Paris")),))]


def test_language_choice():
    assert is_mostly_cjk("张三在北京工作。") and not is_mostly_cjk("Ada works in Paris, 北京.")
    schema = schema_from_dict(entities=["person"])
    assert YAYIPrompt(language="zh").render_prompt(schema, "Ada").startswith("<reserved_13>文本:Ada\n抽取")
    assert YAYIPrompt(language="en").render_prompt(schema, "张三").startswith("<reserved_13>Text: 张三\nFrom")
    with pytest.raises(SchemaError):
        YAYIPrompt(language="fr")


def test_one_task_per_prompt_and_name_collisions(schema):
    with pytest.raises(SchemaError, match="one task per prompt"):
        YAYIPrompt().render_prompt(schema, "x")
    with pytest.raises(SchemaError, match="label_names"):
        YAYIPrompt().render_prompt(schema_from_dict(entities={"PERSON": "", "Person": {"class_name": "P2"}}), "x")


def test_registered():
    from spacy_codeie.prompting.style import PromptStyle

    assert isinstance(YAYIPrompt(), PromptStyle)
    style = registry.misc.get("spacy_codeie.YAYIPrompt.v1")(language="en", label_names={"PERSON": "human"})
    assert isinstance(style, YAYIPrompt) and style.tasks == "per_task"


def test_entity_and_relation_answers_land_on_the_doc(schema, scripted):
    import spacy

    def answer(prompt: str) -> str:
        if "relation" in prompt:
            return "[{'relation': 'works for', 'head': 'Ada Lovelace', 'tail': 'Acme'}]"
        return '{"person": ["Ada Lovelace"], "org": ["Acme"]}'

    config, _ = scripted(by_prompt=answer)
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1",
                                              **schema.subset(list(schema.entities + schema.relations)).to_dict()},
                                   "model": config, "prompt": {"@misc": "spacy_codeie.YAYIPrompt.v1", "language": "en"}})
    doc = nlp("Ada Lovelace worked for Acme.")
    assert {(s.text, s.label_) for s in doc.spans["codeie"]} == {("Ada Lovelace", "PERSON"), ("Acme", "ORG")}
    assert [(r.head.text, r.label, r.tail.text) for r in doc._.relations] == [("Ada Lovelace", "WORKS_FOR", "Acme")]


# ---- trigger-less events on the Doc ------------------------------------------------------------------------
EE_CASES = [
    pytest.param("en", {"ACQUISITION": {"roles": {"buyer": ["Entity"], "target": ["Entity"]}}},
                 "Widget Co said Acme bought Widget Co on Monday.", '{"buyer": "Acme", "target": "Widget Co"}',
                 "the role list [buyer, target]",
                 {"buyer": [("Acme", 15)], "target": [("Widget Co", 27)]}, id="en"),  # the Widget Co nearer Acme
    pytest.param("zh", {"会见": {"roles": {"会见主体": ["Entity"], "会见对象": ["Entity"], "地点": ["Entity"]}}},
                 "习近平在北京会见了普京。", '```json\n{"会见主体": "习近平", "会见对象": ["普京"], "地点": "北京"}\n```',
                 "已知论元角色列表是[会见主体，会见对象，地点]",
                 {"会见主体": [("习近平", 0)], "会见对象": [("普京", 9)], "地点": [("北京", 4)]}, id="zh"),
]


def _yayi_events_nlp(lang, events, scripted, answer):
    config, model = scripted(by_prompt=lambda prompt: answer)
    nlp = spacy.blank(lang)
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1",
                                              **schema_from_dict(events=events).to_dict()},
                                   "model": config, "prompt": {"@misc": "spacy_codeie.YAYIPrompt.v1"}})
    return nlp, model


@pytest.mark.parametrize("lang, events, text, answer, instruction, expected", EE_CASES)
def test_event_answers_land_on_the_doc_without_a_trigger(scripted, tmp_path, lang, events, text, answer,
                                                         instruction, expected):
    nlp, model = _yayi_events_nlp(lang, events, scripted, answer)
    doc = nlp(text)
    assert instruction in model.calls[0][0][0]  # YAYI's EE prompt, in the text's language
    (event,) = doc._.events
    assert event.trigger is None and event.label == next(iter(events))
    assert {role: [(s.text, s.start_char) for s in spans] for role, spans in event.arguments.items()} == expected
    assert all(isinstance(s, Span) and s.doc is doc for spans in event.arguments.values() for s in spans)
    assert doc.user_data["codeie:events"][0]["trigger"] is None
    as_dict = event.to_dict()
    assert as_dict["trigger"] is None and json.loads(json.dumps(as_dict))["trigger"] is None
    assert sorted((a["role"], a["text"], a["start"]) for a in as_dict["arguments"]) == sorted(
        (role, t, start) for role, spans in expected.items() for t, start in spans)
    assert doc.user_data["codeie_diagnostics"]["hallucinated"] == 0

    restored = list(DocBin().from_bytes(DocBin(docs=[doc], store_user_data=True).to_bytes()).get_docs(nlp.vocab))[0]
    assert [e.to_dict() for e in restored._.events] == [as_dict] and restored._.events[0].trigger is None
    nlp.to_disk(tmp_path / "pipeline")
    again = spacy.load(tmp_path / "pipeline")(text)
    assert [e.to_dict() for e in again._.events] == [as_dict]
    assert doc_to_record(again)["events"][0]["trigger"] is None


def test_a_triggerless_event_scores_its_arguments_not_a_trigger(scripted):
    nlp, _ = _yayi_events_nlp("en", {"ACQUISITION": {"roles": {"buyer": ["Entity"], "target": ["Entity"]}}},
                              scripted, '{"buyer": "Acme", "target": "Widget Co"}')
    text = "Widget Co said Acme bought Widget Co on Monday."
    gold = {"text": text, "events": [{"trigger": {"start": 20, "end": 26}, "label": "ACQUISITION",
                                      "arguments": [{"start": 15, "end": 19, "role": "buyer"},
                                                    {"start": 27, "end": 36, "role": "target"}]}]}
    scores = nlp.evaluate([GoldConverter(nlp).example(gold)])
    assert scores["codeie_arg_cls_p"] == scores["codeie_arg_cls_r"] == scores["codeie_arg_id_f"] == 1.0
    assert scores["codeie_trigger_id_r"] == scores["codeie_trigger_cls_f"] == 0.0  # its trigger is missed
    assert scores["codeie_arg_cls_per_type"] == {"buyer": {"p": 1.0, "r": 1.0, "f": 1.0},
                                                 "target": {"p": 1.0, "r": 1.0, "f": 1.0}}


def test_triggerless_events_merge_with_what_other_components_wrote(scripted):
    events = {"ACQUISITION": {"roles": {"buyer": ["Entity"], "target": ["Entity"]}}}
    schema = {"@misc": "spacy_codeie.schema_from_dict.v1", **schema_from_dict(events=events).to_dict()}
    text = "Widget Co said Acme bought Widget Co on Monday."
    nlp, _ = _yayi_events_nlp("en", events, scripted, '{"buyer": "Acme", "target": "Widget Co"}')
    nlp.add_pipe("codeie", name="again", config={"schema": schema, "model": nlp.get_pipe_config("codeie")["model"],
                                                 "prompt": {"@misc": "spacy_codeie.YAYIPrompt.v1"}})
    knowcoder, _ = scripted({text: 'Acquisition(trigger="bought", buyer=[Entity("Acme")])]'}, name="knowcoder")
    nlp.add_pipe("codeie", name="knowcoder", config={"schema": schema, "model": knowcoder})
    doc = nlp(text)
    found = [(e.trigger.text if e.trigger is not None else "", sorted(e.arguments)) for e in doc._.events]
    assert found == [("", ["buyer", "target"]), ("bought", ["buyer"])]  # the same trigger-less event once
