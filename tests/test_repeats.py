"""Answers that loop are stopped and closed after the last item within its limit: an item may come back as
often as its mention occurs in the prompt, no more."""
import pytest

from spacy_codeie.models.repeats import RepeatWatch, close_before_repeats
from spacy_codeie.parsing import CodeParser
from spacy_codeie.schema import schema_from_dict

PROMPT = 'Text: "Paris is big. Anna met Bob in Paris."\nresults = ['
SCHEMA = schema_from_dict(entities={"LOC": "a place", "PER": "a person"})


def test_a_looping_answer_is_closed_after_the_last_item_within_its_limit():
    looping = '\n\tLoc("Paris"),\n\tPer("Anna"),\n\tPer("Bob"),\n\tPer("Anna"),\n\tPer("Bob"),\n\tPer("Anna"),\n\tPer'
    text, cut = close_before_repeats(looping, PROMPT, 1)
    assert cut and text == '\n\tLoc("Paris"),\n\tPer("Anna"),\n\tPer("Bob"),\n]'
    parsed = CodeParser(SCHEMA).parse(text)
    assert not parsed.truncated and [i.text for i in parsed.instances] == ["Paris", "Anna", "Bob"]


def test_an_item_may_repeat_as_often_as_its_mention_occurs_in_the_prompt():
    twice = '\n\tLoc("Paris"),\n\tLoc("Paris"),\n\tPer("Anna")\n]'
    assert close_before_repeats(twice, PROMPT, 1) == (twice, False)
    thrice = '\n\tLoc("Paris"),\n\tLoc("Paris"),\n\tLoc("Paris"),\n\tPer("Anna")\n]'
    assert close_before_repeats(thrice, PROMPT, 1) == ('\n\tLoc("Paris"),\n\tLoc("Paris"),\n]', True)


@pytest.mark.parametrize("answer", [
    '\n\tPer("Anna"),\n\tPer("Bob")\n]',  # no repeats
    'Per("Anna"), Per("Bob")]',  # one line
    '\n\tAttack(\n\t\ttrigger="met",\n\t\tattacker=[Per("Anna")],\n\t),\n\tAttack(\n\t\ttrigger="met",\n\t\tplace=[Loc("Paris")],\n\t)\n]',
])
def test_answers_without_a_loop_are_left_alone(answer):
    # the nested lines of multi-line events (`\t),`) repeat, but they are not items of the answer's list
    assert close_before_repeats(answer, PROMPT, 1) == (answer, False)


def test_an_answer_that_opens_its_own_list_and_one_the_style_leaves_free():
    opened = '[Per("Bob"), Per("Bob"), Per("Anna")]'
    assert close_before_repeats(opened, PROMPT, 0) == ('[Per("Bob"),\n]', True)
    assert close_before_repeats(opened, PROMPT, None) == (opened, False)


def test_token_by_token_the_watch_stops_where_the_whole_text_is_cut():
    looping = '\n\tPer("Bob"),\n\tPer("Anna"),\n\tPer("Bob"),\n\tPer("Anna"),\n\tPer("Bob"),\n\tPer("Anna"),'
    watch = RepeatWatch(PROMPT, 1)
    pieces = [looping[i: i + 3] for i in range(0, len(looping), 3)]
    stopped_at = next(i for i, piece in enumerate(pieces) if watch.feed(piece))
    assert watch.repeating and not watch.closed
    assert watch.kept_text() == close_before_repeats(looping, PROMPT, 1)[0] == '\n\tPer("Bob"),\n\tPer("Anna"),\n]'
    assert stopped_at < len(pieces) - 1  # it stopped the row before the loop ran on
    closing = RepeatWatch(PROMPT, 1)
    assert [closing.feed(p) for p in ['\n\tPer("Anna"', ')\n', ']', 'junk']] == [False, False, True, True]
    assert closing.closed and not closing.repeating


def test_a_random_model_stops_looping_in_the_transformers_backend(tiny_model_dir):
    """A tiny random model held to the grammar repeats items until its budget runs out; the watch ends those
    rows early, and what it returns is a closed list with no item over its limit."""
    from collections import Counter

    from spacy_codeie.models.huggingface import HuggingFaceModel
    from spacy_codeie.prompting import KnowCoderPrompt

    prompt_style = KnowCoderPrompt()
    texts = ["Anna met Bob in Paris.", "Grace Hopper joined Remington Rand in New York.", "Bob, Bob and Bob."]
    prompts = [prompt_style.render_prompt(SCHEMA, t) for t in texts]
    model = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=200, batch_size=4, constrained=True)
    answers = model.generate(prompts)
    assert model.stats["repeat_stops"] > 0
    parser = CodeParser(SCHEMA)
    for prompt, answer in zip(prompts, answers):
        parsed = parser.parse(answer)
        counts = Counter((i.label, i.text) for i in parsed.instances)
        assert all(n <= max(1, str(prompt).count(text)) for (_, text), n in counts.items()), answer


def test_characters_split_across_tokens_are_counted_whole():
    """Under a byte-level vocabulary a Chinese character often spans two or three tokens. Fed a byte at a time,
    the watch must read `女人` (twice in the sentence) and let its item come back twice, as the whole text
    does; decoded one token at a time it would be U+FFFD, found nowhere in the prompt."""
    prompt = 'sentence = "女人一定要对自己好一点，别的女人花你的钱"\nresults = ['
    answer = 'PerNam("女人"), PerNom("女人"), PerNom("女人"), PerNom("女人"), PerNom("'
    watch = RepeatWatch(prompt, 1)
    stops = [watch.feed_bytes(bytes([b])) for b in answer.encode("utf-8")]
    expected, cut = close_before_repeats(answer, prompt, 1)
    assert cut and watch.repeating and watch.kept_text() == expected
    assert expected == 'PerNam("女人"), PerNom("女人"), PerNom("女人"),\n]'
    assert stops.index(True) > len('PerNam("女人"), PerNom("女人"), PerNom("女人"), PerNom('.encode("utf-8"))
    byte_by_byte = RepeatWatch(prompt, 1)  # the old way: each byte decoded on its own
    for b in answer.encode("utf-8"):
        byte_by_byte.feed(bytes([b]).decode("utf-8", "replace"))
    assert byte_by_byte.kept_text() != expected  # why feed_bytes exists
