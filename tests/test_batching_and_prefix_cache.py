"""Token-budget batching, out-of-memory backoff, and schema-prefix KV caching in the transformers backend."""
from __future__ import annotations

import pytest
import torch

from spacy_codeie.models.batching import is_out_of_memory, plan_batches, run_with_backoff
from spacy_codeie.models.huggingface import HuggingFaceModel
from spacy_codeie.models.prefix_cache import prefix_length, shared_prefix_end
from spacy_codeie.prompting import KnowCoderPrompt
from spacy_codeie.schema import schema_from_dict

SCHEMA = schema_from_dict(entities={"PERSON": "a human being", "ORG": "a company, agency or institution"},
                          relations={"WORKS_FOR": {"head": "PERSON", "tail": "ORG"}})
OTHER = schema_from_dict(entities={"CITY": "a town or city"})
TEXTS = ["Ada Lovelace worked for Babbage Labs.", "Grace Hopper joined Remington Rand in 1949, in Philadelphia.",
         "Hi.", "Alan Turing, Bletchley Park.", "München liegt in Bayern.", "Nobody."]


def test_batches_respect_rows_and_token_budget_and_keep_every_prompt():
    lengths = [10, 500, 20, 30, 480, 5, 15]
    batches = plan_batches(lengths, batch_size=3, max_new_tokens=20, max_batch_tokens=1000)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * (longest + 20) <= 1000
    assert [1] in batches and [4, 3] in batches  # the longest goes alone; the next one takes a short partner
    # Without a token budget only the row limit applies; longest first.
    assert plan_batches(lengths, 3, 20) == [[1, 4, 3], [2, 6, 0], [5]]
    # A prompt over the whole budget is still generated, alone.
    assert plan_batches([5000], 8, 10, max_batch_tokens=100) == [[0]]


def _oom_above(limit):
    def run(rows):
        if len(rows) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [f"done {r}" for r in rows]
    return run


def test_backoff_splits_batches_until_they_fit_and_keeps_order():
    splits = []
    out = run_with_backoff(list(range(7)), _oom_above(2), splits.append)
    assert out == [f"done {i}" for i in range(7)]
    assert splits[0] == 7 and all(n > 2 for n in splits)


def test_backoff_gives_up_on_one_row_and_never_hides_other_errors():
    with pytest.raises(torch.OutOfMemoryError):
        run_with_backoff([1], _oom_above(0), lambda n: None)

    def broken(rows):
        raise ValueError("a bug, not memory")

    with pytest.raises(ValueError):
        run_with_backoff([1, 2], broken, lambda n: pytest.fail("must not split on other errors"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_the_model_backs_off_on_out_of_memory_and_stays_smaller(tiny_model_dir, monkeypatch):
    model = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=8, batch_size=4, prefix_cache=False)
    prompts = [KnowCoderPrompt().render_prompt(SCHEMA, t) for t in TEXTS]
    expected = model.generate(prompts)
    real_generate = model.model.generate
    seen = []

    def tight_memory(**kwargs):
        rows = kwargs["input_ids"].shape[0]
        seen.append(rows)
        if rows > 2:
            raise torch.OutOfMemoryError("CUDA out of memory.")
        return real_generate(**kwargs)

    monkeypatch.setattr(model.model, "generate", tight_memory)
    assert model.generate(prompts) == expected
    assert seen[0] == 4 and max(seen[1:]) <= 2
    assert model._row_limit == 2  # later batches start at the size that fitted


def test_prefix_is_the_schema_part_and_survives_tokenization(tiny_model_dir):
    model = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=4)
    prompt = KnowCoderPrompt().render_prompt(SCHEMA, TEXTS[0])
    formatted = model.format_prompt(prompt)
    end = shared_prefix_end(formatted)
    assert formatted[end:].startswith("sentence = ") and "class Person" in formatted[:end]
    ids = model.encode(prompt)
    prefix_ids = model.tokenize_text(formatted[:end])
    n = prefix_length(ids, prefix_ids, minimum=1)
    assert 0 < n < len(ids) and ids[:n] == prefix_ids[:n]
    assert prefix_length([1, 2, 3], [1, 2, 3], minimum=1) == 2  # one token is always left to read
    assert prefix_length([1, 2, 3], [1, 2], minimum=5) == 0  # too short to be worth caching


@pytest.mark.parametrize("chat", [False, True])
def test_outputs_are_identical_with_and_without_the_prefix_cache(tiny_model_dir, tiny_chat_model_dir, chat):
    folder = tiny_chat_model_dir if chat else tiny_model_dir
    style = KnowCoderPrompt()
    prompts = [style.render_prompt(SCHEMA, t) for t in TEXTS] + [style.render_prompt(OTHER, t) for t in TEXTS[:3]]
    plain = HuggingFaceModel(str(folder), max_new_tokens=24, batch_size=4, prefix_cache=False, constrained=False)
    cached = HuggingFaceModel(str(folder), max_new_tokens=24, batch_size=4, prefix_cache=True, constrained=False)
    expected = plain.generate(prompts)
    assert cached.generate(prompts) == expected
    assert cached._prefix_cache.misses == 2  # one entry per schema group
    assert cached._prefix_cache.hits == 1  # SCHEMA's 6 prompts came in two batches of at most 4
    assert cached.generate(prompts[:2]) == expected[:2]  # reused across calls (nlp.pipe batches)
    assert (cached._prefix_cache.misses, cached._prefix_cache.hits) == (2, 2)
    # Constrained decoding on top of the cache gives what it gives without the cache.
    both = HuggingFaceModel(str(folder), max_new_tokens=24, batch_size=4, prefix_cache=True, constrained=True)
    only = HuggingFaceModel(str(folder), max_new_tokens=24, batch_size=4, prefix_cache=False, constrained=True)
    assert both.generate(prompts) == only.generate(prompts)


def test_a_new_adapter_empties_the_prefix_cache(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(str(tmp_path / "adapter"))
    model = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=4)
    model.generate([KnowCoderPrompt().render_prompt(SCHEMA, TEXTS[0])])
    assert len(model._prefix_cache) == 1
    model.load_adapter(tmp_path / "adapter")
    assert len(model._prefix_cache) == 0


def test_bad_speed_settings_are_refused(tiny_model_dir):
    from spacy_codeie.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="max_batch_tokens"):
        HuggingFaceModel(str(tiny_model_dir), max_batch_tokens=-1)


def test_bfloat16_is_the_gpu_default_and_its_path_runs_on_cpu(tiny_model_dir):
    from spacy_codeie.models.huggingface import _pick_dtype

    assert _pick_dtype("auto", "cuda:0") == torch.bfloat16 and _pick_dtype("auto", "cpu") == torch.float32
    # The bf16 weights, prefix cache and constraint together, on the CPU path CI has.
    model = HuggingFaceModel(str(tiny_model_dir), dtype="bfloat16", max_new_tokens=12, batch_size=2)
    assert next(model.model.parameters()).dtype == torch.bfloat16
    prompts = [KnowCoderPrompt().render_prompt(SCHEMA, t) for t in TEXTS[:3]]
    out = model.generate(prompts)
    assert len(out) == 3 and model._prefix_cache.misses == 1 and model._prefix_cache.hits == 1


def test_prefix_cache_size_is_a_config_setting_and_bounds_the_table(tiny_model_dir):
    from spacy_codeie.models.registry import huggingface_model

    model = huggingface_model(str(tiny_model_dir), max_new_tokens=2, prefix_cache_size=1, constrained=False)
    style = KnowCoderPrompt()
    model.generate([style.render_prompt(SCHEMA, TEXTS[0]), style.render_prompt(OTHER, TEXTS[1])])
    assert len(model._prefix_cache) == 1 and model._prefix_cache.misses == 2
