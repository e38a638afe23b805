import pytest
import spacy

from spacy_codeie.alignment import StringAligner, align_instances, token_span
from spacy_codeie.instances import EntityInstance, EventInstance, Mention, RelationInstance


def test_occurrences_in_generation_order_each_used_once():
    text = "Paris is not Paris, Texas. Paris!"
    result = align_instances(text, [EntityInstance("LOC", "Paris")] * 4)
    assert [(e.start, e.end) for e in result.entities] == [(0, 5), (13, 18), (27, 32)]
    assert result.duplicates == 1 and result.hallucinated == 0 and result.mentions == 4


def test_hallucinations_are_dropped_and_counted():
    result = align_instances("Ada met Bob.", [EntityInstance("PER", "Ada"), EntityInstance("PER", "Charles")])
    assert [(e.start, e.end) for e in result.entities] == [(0, 3)]
    assert result.hallucinated == 1


def test_case_insensitive_keeps_offsets_even_where_folding_changes_length():
    text = "Die STRAßE in İSTANBUL und die Straße"
    aligner = StringAligner(text)
    assert aligner.occurrences("straße") == [(4, 10), (31, 37)]
    span = aligner.occurrences("istanbul")  # İ lower-cases to two characters; it is kept as is
    assert span == [] or text[span[0][0]:span[0][1]].lower().endswith("stanbul")
    assert aligner.occurrences("İSTANBUL") == [(14, 22)]


def test_whitespace_normalized_match():
    text = "The  New\nYork   Times said so."
    aligner = StringAligner(text)
    assert aligner.occurrences("New York Times") == [(5, 21)]
    assert text[5:21] == "New\nYork   Times"


def test_prefers_whole_words_and_places_outside_other_mentions():
    text = "Idaho Falls , Idaho and the USA and US"
    result = align_instances(text, [EntityInstance("LOC", "Idaho Falls"), EntityInstance("LOC", "Idaho"),
                                    EntityInstance("LOC", "US")])
    assert [text[e.start:e.end] + f"@{e.start}" for e in result.entities] == ["Idaho Falls@0", "Idaho@14", "US@36"]


def test_relation_arguments_use_named_entities_and_the_closest_pair():
    text = "Moscow hosts the Bolshoi in Moscow ; Kirov is in Leningrad ."
    instances = [EntityInstance("LOC", "Moscow"), EntityInstance("LOC", "Moscow"), EntityInstance("ORG", "Bolshoi"),
                 RelationInstance("BASED_IN", Mention("Bolshoi", "ORG"), Mention("Moscow", "LOC")),
                 RelationInstance("BASED_IN", Mention("Kirov", "ORG"), Mention("Leningrad", "LOC"))]
    result = align_instances(text, instances)
    first, second = result.relations
    assert (first.head.start, first.tail.start) == (17, 28)  # the nearer Moscow
    assert text[second.head.start:second.head.end] == "Kirov" and second.head.label == "ORG"


def test_event_trigger_and_arguments_near_each_other():
    text = "A bought B. Later C bought D."
    event = EventInstance("BUY", "bought", (("buyer", Mention("C")), ("target", Mention("D"))))
    result = align_instances(text, [event], offset=100)
    (aligned,) = result.events
    assert aligned.trigger == (120, 126)
    assert [(a.start, a.end, a.role) for a in aligned.arguments] == [(118, 119, "buyer"), (127, 128, "target")]


def test_a_string_named_twice_in_one_event_takes_two_places():
    text = "X invested. X and X again."
    event = EventInstance("E", "invested", (("org", Mention("X")), ("org", Mention("X"))))
    (aligned,) = align_instances(text, [event]).events
    assert sorted(a.start for a in aligned.arguments) == [0, 12]


def test_a_triggerless_event_places_its_arguments_near_each_other():
    text = "Acme sold Bolt to Zeta in 1990. In 2001 Volt bought Bolt from Acme."
    event = EventInstance("BUY", "", (("buyer", Mention("Volt")), ("target", Mention("Bolt")),
                                      ("seller", Mention("Acme"))))
    result = align_instances(text, [event], offset=100)
    (aligned,) = result.events
    assert aligned.trigger is None
    assert [(text[a.start - 100:a.end - 100], a.start - 100, a.role) for a in aligned.arguments] == [
        ("Volt", 40, "buyer"), ("Bolt", 52, "target"), ("Acme", 62, "seller")]  # the second sentence's
    assert result.mentions == 3 and result.hallucinated == 0


def test_a_triggerless_event_named_again_takes_the_next_places_and_uses_up_nothing_else():
    text = "Acme bought Bolt. Much later, once more, Acme bought Bolt."
    event = EventInstance("BUY", "", (("buyer", Mention("Acme")), ("target", Mention("Bolt"))))
    result = align_instances(text, [event, event, EntityInstance("ORG", "Acme")])
    assert [[a.start for a in e.arguments] for e in result.events] == [[0, 12], [41, 53]]
    assert [e.start for e in result.entities] == [0]  # events took no occurrence from the entities


def test_a_triggerless_event_with_no_argument_in_the_text_is_dropped():
    text = "Acme bought Bolt."
    result = align_instances(text, [EventInstance("BUY", "", (("buyer", Mention("Volt")),)),
                                    EventInstance("BUY", "", ()),
                                    EventInstance("BUY", "", (("buyer", Mention("Volt")), ("target", Mention("Bolt"))))])
    (aligned,) = result.events
    assert aligned.trigger is None and [(a.start, a.role) for a in aligned.arguments] == [(12, "target")]
    assert result.hallucinated == 2 and result.mentions == 3


def test_a_named_trigger_that_is_not_in_the_text_still_drops_its_event():
    text = "Acme bought Bolt."
    result = align_instances(text, [EventInstance("BUY", "acquired", (("buyer", Mention("Acme")),)),
                                    EventInstance("BUY", " ", (("buyer", Mention("Acme")),))])
    assert result.events == [] and result.hallucinated == 2


def _blank(lang):
    if lang == "ko":
        return spacy.blank("ko", config={"nlp": {"tokenizer": {"@tokenizers": "spacy.Tokenizer.v1"}}})
    if lang == "ja":
        pytest.importorskip("sudachipy")
        pytest.importorskip("sudachidict_core")
    return spacy.blank(lang)


@pytest.mark.parametrize("lang, text, mention, expected", [
    ("en", "Ada Lovelace met Charles Babbage.", "Charles Babbage", "Charles Babbage"),
    ("de", "Angela Merkel besuchte die Münchner Rück in München.", "Münchner Rück", "Münchner Rück"),
    ("ru", "Владимир Путин посетил Москву вчера.", "Москву", "Москву"),
    ("zh", "阿里巴巴总部位于杭州。", "杭州", "杭州"),
    ("ja", "トヨタ自動車は愛知県豊田市に本社を置く。", "自動", "自動車"),  # expands to the whole token
    ("ko", "삼성전자는 서울에 본사를 두고 있다.", "삼성전자", "삼성전자는"),  # Korean particles attach to words
    ("zh", "马云创立了阿里巴巴", "阿里", "阿里"),
])
def test_token_spans_in_many_languages(lang, text, mention, expected):
    nlp = _blank(lang)
    doc = nlp(text)
    (start, end), = StringAligner(text).occurrences(mention)[:1]
    span = token_span(doc, start, end, "X", mode="expand")
    assert span is not None and span.text == expected and span.label_ == "X"


def test_jieba_segmentation_expands_to_words():
    pytest.importorskip("jieba")
    nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    doc = nlp("马云创立了阿里巴巴集团")
    start = doc.text.index("阿里")
    span = token_span(doc, start, start + 2, "ORG", mode="expand")
    assert span is not None and span.text.startswith("阿里") and len(span.text) >= 2
    assert token_span(doc, start, start + 2, "ORG", mode="strict") is None or span.text == "阿里"


def test_strict_mode_refuses_partial_tokens():
    doc = spacy.blank("en")("Ada Lovelaces wrote.")
    assert token_span(doc, 4, 12, "PER", mode="strict") is None
    assert token_span(doc, 4, 12, "PER", mode="expand").text == "Lovelaces"


@pytest.mark.parametrize("text, mention, expected", [
    ("Cafe\u0301 Noir opened.", "Café Noir", "Cafe\u0301 Noir"),  # NFC mention, NFD text
    ("Café Noir opened.", "Cafe\u0301 Noir", "Café Noir"),  # NFD mention, NFC text
    ("Die Straße ist lang.", "STRASSE", "Straße"),  # case folding expands ß
    ("DIE STRASSE IST LANG.", "Straße", "STRASSE"),
    ("The ﬁnance office.", "finance", "ﬁnance"),  # a compatibility ligature
    ("ΟΔΥΣΣΕΥΣ came home.", "Οδυσσευς", "ΟΔΥΣΣΕΥΣ"),  # final sigma
    ("Cafe\u0301\n  Noir opened.", "café noir", "Cafe\u0301\n  Noir"),  # and whitespace and case together
    ("한국 is Korea", "\u1112\u1161\u11ab\u1100\u116e\u11a8", "한국"),  # Hangul written as jamo
])
def test_unicode_forms_match_with_exact_offsets(text, mention, expected):
    result = align_instances(text, [EntityInstance("X", mention)])
    assert result.hallucinated == 0
    (entity,) = result.entities
    assert text[entity.start:entity.end] == expected


@pytest.mark.parametrize("text, mention", [
    ("Die Straße ist lang.", "Stras"),  # half of ß is not a match
    ("Café Noir", "Cafe"),  # e is not é
    ("The ﬁnance desk.", "f"),
])
def test_unicode_matching_never_splits_a_character(text, mention):
    result = align_instances(text, [EntityInstance("X", mention)])
    assert result.entities == [] and result.hallucinated == 1


def test_unicode_forms_on_the_doc():
    nlp = spacy.blank("de")
    doc = nlp("Die Straße in Köln ist lang.")
    (start, end), = StringAligner(doc.text).occurrences("KO\u0308LN")
    assert token_span(doc, start, end, "LOC").text == "Köln"


def _work(instances, text):
    """Python function calls and builtin calls made while aligning: a measure of work that load cannot skew."""
    import sys

    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(profile)
    try:
        align_instances(text, instances)
    finally:
        sys.setprofile(None)
    return calls


def test_alignment_work_grows_near_linearly_with_occurrences():
    def case(n):
        text = " ".join(f"Ada met Bob at site {i} ." for i in range(n))
        instances = ([EntityInstance("PER", "Ada")] * n
                     + [RelationInstance("MET", Mention("Bob"), Mention("Ada"))] * 5
                     + [EventInstance("MEET", "met", (("a", Mention("Bob")), ("b", Mention("site"))))] * 5)
        return _work(instances, text)

    small, large = case(30), case(300)
    assert large < 25 * small  # 10x the occurrences: about 10x the work (quadratic would be 100x)
