"""GoLLIEPrompt.v1 against GoLLIE's own published renderings, and its answer reader.

The published strings below are the outputs of GoLLIE's example notebooks (template `templates/prompt.txt`,
formatted with black) in hitz-zentroa/GoLLIE at commit 164c611743fdc1befe71bbdf03e08c5eb4e35957.
"""
import pytest
from spacy.util import registry

from spacy_codeie.instances import EntityInstance, EventInstance, Mention, RelationInstance
from spacy_codeie.prompting import GoLLIEPrompt
from spacy_codeie.prompting.gollie import black_string
from spacy_codeie.schema import schema_from_dict

# notebooks/Named Entity Recognition.ipynb: the guideline cell (docstrings as written there, trailing spaces
# and all) and the rendered, black-formatted prompt.
NER_DOCS = {
    "PrivateSpaceCompany": (
        "Refers to private companies primarily focused on space exploration, transportation, \n"
        "    satellite launch, or space-based services. These are non-governmental entities that have \n"
        "    a commercial interest in space activities.",
        ["Blue origin", "Boeing", "Northrop Grumman", "Arianespace"]),
    "PublicSpaceCompany": (
        "Refers to governmental entities or agencies that are primarily focused on space \n"
        "    exploration, research, transportation, satellite launch, or other space-based services. \n"
        "    These entities are state-owned and operated and are generally funded through public funds.",
        ["ESA", "ISRO", "CNSA"]),
    "Planet": (
        "Refers to celestial bodies that orbit a star. Planets are large enough \n"
        "    to have cleared their orbits of other debris and have a nearly round shape \n"
        "    due to their self-gravity.",
        ["Earth", "Jupiter", "Venus", "Mercury", "Saturn"]),
    "Launcher": (
        "Refers to a vehicle designed primarily to transport payloads from the Earth's \n"
        "    surface to space. Launchers can carry various payloads, including satellites, \n"
        "    crewed spacecraft, and cargo, into various orbits or even beyond Earth's orbit. \n"
        "    They are usually multi-stage vehicles that use rocket engines for propulsion.",
        ["Sturn V", "Atlas V", "Soyuz", "Ariane 5"]),
}
NER_TEXT = "SpaceX is colaborating with NASA in the mission to bring humans to Mars using their new Starship rocket."
NER_PUBLISHED = (
    '# The following lines describe the task definition\n@dataclass\nclass PrivateSpaceCompany(Entity):\n    """Refers to private companies primarily focused on space exploration, transportation,\n    satellite launch, or space-based services. These are non-governmental entities that have\n    a commercial interest in space activities."""\n\n    span: str  # Such as: "Blue origin", "Boeing", "Northrop Grumman", "Arianespace"\n\n\n'
    '@dataclass\nclass PublicSpaceCompany(Entity):\n    """Refers to governmental entities or agencies that are primarily focused on space\n    exploration, research, transportation, satellite launch, or other space-based services.\n    These entities are state-owned and operated and are generally funded through public funds.\n    """\n\n    span: str  # Such as "ESA", "ISRO", "CNSA"\n\n\n'
    '@dataclass\nclass Planet(Entity):\n    """Refers to celestial bodies that orbit a star. Planets are large enough\n    to have cleared their orbits of other debris and have a nearly round shape\n    due to their self-gravity."""\n\n    span: str  # Such as: "Earth", "Jupiter", "Venus", "Mercury", "Saturn"\n\n\n'
    '@dataclass\nclass Launcher(Entity):\n    """Refers to a vehicle designed primarily to transport payloads from the Earth\'s\n    surface to space. Launchers can carry various payloads, including satellites,\n    crewed spacecraft, and cargo, into various orbits or even beyond Earth\'s orbit.\n    They are usually multi-stage vehicles that use rocket engines for propulsion."""\n\n    span: str  # Such as: "Sturn V", "Atlas V", "Soyuz", "Ariane 5"\n\n\n'
    '# This is the text to analyze\ntext = "SpaceX is colaborating with NASA in the mission to bring humans to Mars using their new Starship rocket."\n\n'
    '# The annotation instances that take place in the text above are listed here\nresult = [\n    PrivateSpaceCompany(span="SpaceX"),\n    PublicSpaceCompany(span="NASA"),\n    Planet(span="Mars"),\n    Launcher(span="Starship"),\n]\n\n'
)
# notebooks/Relation Extraction.ipynb: the gold answer of its rendered prompt.
RE_PUBLISHED_ANSWER = (
    'result = [\n    PersonalSocialRelation(arg1="Ana", arg2="Mary"),\n    PhysicalRelation(arg1="Mary", arg2="supermarket"),\n'
    '    PhysicalRelation(arg1="Ana", arg2="home"),\n]\n'
)
# notebooks/Event Extraction.ipynb: the gold answer of its argument-extraction prompt.
EAE_PUBLISHED_ANSWER = (
    'result = [\n    TransferOwnership(\n        mention="sell",\n        buyer=["Blackstone Group"],\n'
    '        seller=["Vivendi Universal"],\n        beneficiary=[],\n        artifact=["theme parks"],\n'
    '        price=["8 billion"],\n        time=[],\n        place=[],\n    ),\n]\n'
)


@pytest.fixture
def ner_schema():
    return schema_from_dict(entities={
        name: {"class_name": name, "description": doc, "examples": examples}
        for name, (doc, examples) in NER_DOCS.items()})


@pytest.fixture
def event_schema():
    roles = ["buyer", "seller", "beneficiary", "artifact", "price", "time", "place"]
    return schema_from_dict(events={"TransferOwnership": {
        "class_name": "TransferOwnership", "description": "Buying or selling.", "roles": {r: ["Entity"] for r in roles}}})


def test_ner_prompt_is_the_published_rendering(ner_schema):
    prompt = GoLLIEPrompt().render_prompt(ner_schema, NER_TEXT)
    # The notebook's hand-written guideline says `Such as "ESA"`; GoLLIE's data generator (src/tasks/utils_data.py)
    # always writes `Such as: "..."`, which is what this style renders.
    published = NER_PUBLISHED.replace('# Such as "ESA"', '# Such as: "ESA"')
    assert prompt == published.split("result =")[0] + "result ="


def test_ner_gold_answer_renders_and_parses(ner_schema):
    gold = [EntityInstance("PrivateSpaceCompany", "SpaceX"), EntityInstance("PublicSpaceCompany", "NASA"),
            EntityInstance("Planet", "Mars"), EntityInstance("Launcher", "Starship")]
    style = GoLLIEPrompt()
    published_answer = NER_PUBLISHED.split("result =")[1]
    assert style.render_completion(ner_schema, gold) == published_answer.rstrip("\n")
    parsed = style.parser(ner_schema).parse(published_answer)
    assert parsed.instances == gold and parsed.rejected == 0 and not parsed.truncated


def test_relation_gold_answer_renders_and_parses():
    schema = schema_from_dict(
        entities={"PER": "a person", "LOC": "a place"},
        relations={"PersonalSocialRelation": {"class_name": "PersonalSocialRelation", "head": "PER", "tail": "PER"},
                   "PhysicalRelation": {"class_name": "PhysicalRelation", "head": "Entity", "tail": "Entity"}})
    style = GoLLIEPrompt()
    parsed = style.parser(schema).parse(RE_PUBLISHED_ANSWER)
    assert parsed.instances == [
        RelationInstance("PersonalSocialRelation", Mention("Ana", "PER"), Mention("Mary", "PER")),
        RelationInstance("PhysicalRelation", Mention("Mary"), Mention("supermarket")),
        RelationInstance("PhysicalRelation", Mention("Ana"), Mention("home")),
    ]
    assert "result =" + style.render_completion(schema, parsed.instances) + "\n" == RE_PUBLISHED_ANSWER
    assert "    arg1: str\n    arg2: str\n" in style.render_prompt(schema, "Ana and Mary are sisters.")


def test_event_gold_answer_renders_black_layout_and_parses(event_schema):
    style = GoLLIEPrompt()
    gold = EventInstance("TransferOwnership", "sell", (
        ("buyer", Mention("Blackstone Group")), ("seller", Mention("Vivendi Universal")),
        ("artifact", Mention("theme parks")), ("price", Mention("8 billion"))))
    assert "result =" + style.render_completion(event_schema, [gold]) + "\n" == EAE_PUBLISHED_ANSWER
    parsed = style.parser(event_schema).parse(EAE_PUBLISHED_ANSWER)
    assert parsed.instances == [gold] and parsed.rejected == 0


def test_event_guideline_has_mention_and_role_fields(event_schema):
    prompt = GoLLIEPrompt().render_prompt(event_schema, "x")
    assert ("class TransferOwnership(Event):\n    \"\"\"Buying or selling.\"\"\"\n\n"
            "    mention: str  # The text span that most clearly expresses (triggers) the event\n"
            "    buyer: List[str]\n") in prompt


def test_short_items_stay_on_one_line_and_long_ones_split(ner_schema):
    style = GoLLIEPrompt()
    long_text = "x" * 100
    out = style.render_completion(ner_schema, [EntityInstance("Planet", "Mars"), EntityInstance("Planet", long_text)])
    assert out == f' [\n    Planet(span="Mars"),\n    Planet(\n        span="{long_text}"\n    ),\n]'
    assert [i.text for i in style.parser(ner_schema).parse(out).instances] == ["Mars", long_text]
    assert style.render_completion(ner_schema, []) == " []"


@pytest.mark.parametrize("text", ['say "hi"', "it's", "both ' and \"", "back\\slash\nnewline"])
def test_text_literal_reads_back_exactly(text):
    import ast

    literal = black_string(text)
    assert ast.literal_eval(literal) == text
    if '"' not in text:
        assert literal.startswith('"')


def test_parser_counts_what_it_drops(ner_schema):
    parser = GoLLIEPrompt().parser(ner_schema)
    result = parser.parse(' [\n    Planet(span="Mars"),\n    Moon(span="Luna"),\n    Planet(name=3),\n'
                          '    Planet(span="a" +),\n    "loose string",\n    Planet(span="Venus"),\n')
    assert [i.text for i in result.instances] == ["Mars", "Venus"]
    assert (result.unknown_class, result.bad_arguments, result.unparseable) == (2, 1, 1)
    assert result.truncated  # the list was never closed


def test_parser_reads_unknown_roles_and_wrapped_strings(event_schema):
    parser = GoLLIEPrompt().parser(event_schema)
    result = parser.parse('result = [TransferOwnership(mention="sold", buyer=[Name("Acme")], weapon=["gun"], '
                          'place=None)]')
    assert result.instances == [EventInstance("TransferOwnership", "sold", (("buyer", Mention("Acme")),))]
    assert result.unknown_role == 1


def test_registered():
    from spacy_codeie.prompting.style import PromptStyle

    assert isinstance(GoLLIEPrompt(), PromptStyle)
    assert isinstance(registry.misc.get("spacy_codeie.GoLLIEPrompt.v1")(), GoLLIEPrompt)
    assert GoLLIEPrompt.tasks == "per_task"


def test_the_published_ner_answer_lands_on_the_doc(ner_schema, scripted):
    import spacy

    answer = NER_PUBLISHED.split("result =")[1]
    config, model = scripted(by_prompt=lambda prompt: answer)
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1", **ner_schema.to_dict()},
                                   "model": config, "prompt": {"@misc": "spacy_codeie.GoLLIEPrompt.v1"}})
    doc = nlp(NER_TEXT)
    assert model.calls[0][0][0].endswith("result =")
    assert [(s.text, s.label_) for s in doc.spans["codeie"]] == [
        ("SpaceX", "PrivateSpaceCompany"), ("NASA", "PublicSpaceCompany"), ("Mars", "Planet"), ("Starship", "Launcher")]


# The texts of notebooks/Relation Extraction.ipynb and notebooks/Event Extraction.ipynb (same commit).
RE_TEXT = "Ana and Mary are sisters. Mary was at the supermarket while Ana was at home."
EE_TEXT = ("The Times reported that Vivendi Universal was negotiating to sell its flagship theme parks to the New York "
           "investment firm, Blackstone Group, for 8 billion as the first step toward dismantling its entertainment "
           "empire.")


def _pipeline(schema, config):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": {"@misc": "spacy_codeie.schema_from_dict.v1", **schema.to_dict()},
                                   "model": config, "prompt": {"@misc": "spacy_codeie.GoLLIEPrompt.v1"}})
    return nlp


def test_the_published_relation_answer_lands_on_the_doc(scripted):
    schema = schema_from_dict(
        entities={"PER": "a person", "LOC": "a place"},
        relations={"PersonalSocialRelation": {"class_name": "PersonalSocialRelation", "head": "PER", "tail": "PER"},
                   "PhysicalRelation": {"class_name": "PhysicalRelation", "head": "Entity", "tail": "Entity"}})
    config, model = scripted(by_prompt=lambda prompt: RE_PUBLISHED_ANSWER.split("result =", 1)[1])
    doc = _pipeline(schema, config)(RE_TEXT)
    assert any(f'text = "{RE_TEXT}"' in prompt for prompt in model.calls[0][0])
    assert [(r.label, r.head.text, r.head.start_char, r.tail.text, r.tail.start_char) for r in doc._.relations] == [
        ("PersonalSocialRelation", "Ana", 0, "Mary", 8),
        ("PhysicalRelation", "Mary", 26, "supermarket", 42),
        ("PhysicalRelation", "Ana", 60, "home", 71),
    ]


def test_the_published_event_answer_lands_on_the_doc(event_schema, scripted):
    config, model = scripted(by_prompt=lambda prompt: EAE_PUBLISHED_ANSWER.split("result =", 1)[1])
    doc = _pipeline(event_schema, config)(EE_TEXT)
    (event,) = doc._.events
    assert (event.label, event.trigger.text) == ("TransferOwnership", "sell")
    assert {role: [s.text for s in spans] for role, spans in event.arguments.items()} == {
        "buyer": ["Blackstone Group"], "seller": ["Vivendi Universal"], "artifact": ["theme parks"],
        "price": ["8 billion"]}
