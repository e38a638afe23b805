"""answer_budget: each prompt's token budget is sized from its sentence, so a looping row stops early."""
import pytest

from spacy_codeie.errors import ModelLoadError
from spacy_codeie.models import HuggingFaceModel
from spacy_codeie.prompting import CompactPrompt
from spacy_codeie.schema import schema_from_dict


def test_each_row_stops_at_its_own_budget(tiny_model_dir):
    schema = schema_from_dict(entities={"PER": "person"})
    style = CompactPrompt()
    short, long = "Ada.", " ".join(["Ada met Bob and Carl in Dover."] * 4)
    prompts = [style.prompt_for(schema, short), style.prompt_for(schema, long)]
    # an unconstrained random model rarely closes its list: it runs to its budget
    model = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=200, answer_budget=0.5, constrained=False,
                             batch_size=2)
    budgets = [model._answer_budget(p) for p in prompts]
    sentence_tokens = [len(model.tokenizer(p.sentence_literal, add_special_tokens=False)["input_ids"]) for p in prompts]
    assert budgets == [int(16 + 0.5 * n) for n in sentence_tokens] and budgets[0] < budgets[1] < 200
    for prompt, budget in zip(prompts, budgets):  # one row at a time: the counter then is that row's length
        before = model.stats["generated_tokens"]
        model.generate([prompt])
        assert 0 < model.stats["generated_tokens"] - before <= budget
    before = model.stats["generated_tokens"]
    model.generate(prompts)  # batched: each row still stops at its own budget
    assert model.stats["generated_tokens"] - before <= sum(budgets)
    unbounded = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=200, constrained=False)
    assert [unbounded._answer_budget(p) for p in prompts] == [200, 200]


def test_a_negative_budget_is_refused(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="answer_budget"):
        HuggingFaceModel(str(tiny_model_dir), answer_budget=-1)
