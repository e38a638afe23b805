import pickle

import pytest
import spacy

from conftest import PAPER_SCHEMA
from spacy_codeie.errors import ModelLoadError, PromptTooLongError
from spacy_codeie.models.contract import cut_at_list_close
from spacy_codeie.models.huggingface import HuggingFaceModel, _ListClosed
from spacy_codeie.models.prompt_tokens import split_knowcoder_prompt
from spacy_codeie.prompting import KnowCoderPrompt


@pytest.fixture(scope="module")
def prompts():
    from spacy_codeie.schema import schema_from_mapping

    schema = schema_from_mapping({k: v for k, v in PAPER_SCHEMA.items() if k != "@misc"})
    style = KnowCoderPrompt()
    texts = ["Ada.", "Ada Lovelace worked for Babbage Labs in London for many years.", "Acme bought Babbage Labs.",
             "Short one.", "北京大学 is in 北京."]
    return [style.render_prompt(schema, t) for t in texts]


def test_batched_generation_equals_one_by_one_in_input_order(tiny_model_dir, prompts):
    batched = HuggingFaceModel(str(tiny_model_dir), batch_size=4, max_new_tokens=12)
    single = HuggingFaceModel(str(tiny_model_dir), batch_size=1, max_new_tokens=12)
    assert batched.generate(prompts) == single.generate(prompts)
    assert batched.generate(prompts[::-1]) == single.generate(prompts)[::-1]


def test_spacy_llm_contract_one_list_per_doc(tiny_model_dir, prompts):
    model = HuggingFaceModel(str(tiny_model_dir), batch_size=3, max_new_tokens=4)
    out = model([prompts[:2], [], prompts[2:]])
    assert [len(x) for x in out] == [2, 0, 3]
    assert all(isinstance(t, str) for doc in out for t in doc)


def test_component_with_a_real_local_model(tiny_model_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": {
        "@llm_models": "spacy_codeie.HuggingFace.v1", "name": str(tiny_model_dir), "max_new_tokens": 8}})
    docs = list(nlp.pipe(["Ada worked for Acme.", "", "Babbage Labs."]))
    assert [d.text for d in docs] == ["Ada worked for Acme.", "", "Babbage Labs."]
    assert docs[0].user_data["codeie_diagnostics"]["prompts"] == 1


def test_stops_when_the_list_closes(tiny_model_dir):
    model = HuggingFaceModel(str(tiny_model_dir))
    tok = model.tokenizer
    criteria = _ListClosed(model.token_table, ["", ""], [1, None])
    text = 'Acquisition(trigger="x", buyer=[Org("a]b")]),\n]'
    ids = tok(text, add_special_tokens=False)["input_ids"]
    import torch

    seen = []
    for n in range(1, len(ids) + 1):
        row = torch.tensor([ids[:n], ids[:n]])
        seen.append(criteria(row, None).tolist())
    assert seen[-1] == [True, False]
    assert all(not flags[0] for flags in seen[:-1])
    assert cut_at_list_close(text + '\nprint("more")') == text


def test_an_answer_that_opens_its_own_list_stops_where_it_closes(tiny_model_dir):
    model = HuggingFaceModel(str(tiny_model_dir))
    tok = model.tokenizer
    text = 'results = [\n\tEducation(trigger = "x", student = [Entity("a]b")])\n]'
    criteria = _ListClosed(model.token_table, [""], [0])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    import torch

    seen = [criteria(torch.tensor([ids[:n]]), None).tolist()[0] for n in range(1, len(ids) + 1)]
    assert seen[-1] and not any(seen[:-1])
    assert cut_at_list_close(text + "\nInput:\nmore", 0) == text


def test_a_prompt_in_segments_is_tokenized_piece_by_piece(tiny_model_dir):
    from spacy_codeie.prompting.prompt import Prompt

    model = HuggingFaceModel(str(tiny_model_dir))
    tok = model.tokenizer
    pieces = ("You extract.", "\n", "Input:\nsentence = \"Ada\"\nOutput:\n")
    prompt = Prompt("".join(pieces), segments=pieces)
    first = tok("", add_special_tokens=True)["input_ids"]
    expected = first + [i for p in pieces for i in tok(p, add_special_tokens=False)["input_ids"]]
    assert model.encode(prompt) == expected
    assert model.count_tokens([prompt, "".join(pieces)]) == [len(expected), len(model.encode("".join(pieces)))]
    with pytest.raises(ValueError):
        Prompt("abc", segments=("ab",))


def test_knowcoder_v2_prompts_decode_to_knowcoders_answer_shapes(tiny_model_dir):
    from spacy_codeie.instances import EventInstance
    from spacy_codeie.prompting import KnowCoderTaskPrompt
    from spacy_codeie.schema import schema_from_mapping

    schema = schema_from_mapping({k: v for k, v in PAPER_SCHEMA.items() if k != "@misc"})
    style = KnowCoderTaskPrompt()
    text = "Acme bought Babbage Labs, where Ada worked."
    groups = [schema.subset(schema.entities), schema.subset(schema.relations), schema.subset(schema.events)]
    prompts = [style.prompt_for(g, text) for g in groups]
    prompts.append(style.argument_prompt(groups[2], text, [EventInstance("ACQUISITION", "bought")]))
    parsers = [style.parser(g) for g in groups] + [style.parser(groups[2])]
    model = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=48)
    for answer, parser in zip(model.generate(prompts), parsers):
        assert answer.startswith("results = [")
        parsed = parser.parse(answer)
        # every item is one of the task's shapes; only an item cut by max_new_tokens may be unreadable
        assert parsed.unknown_class == parsed.unknown_role == parsed.bad_arguments == 0, answer
        assert parsed.unparseable <= int(parsed.truncated), answer


def test_chat_template_wraps_system_user_and_prefill(tiny_chat_model_dir):
    model = HuggingFaceModel(str(tiny_chat_model_dir), max_new_tokens=4)
    assert model.chat_template
    text = model.format_prompt("SYSTEM\nInput:\nclass A: pass\nOutput:\nresults = [")
    assert text == "<s>system\nSYSTEM</s>\n<s>user\nclass A: pass</s>\n<s>assistant\nresults = ["
    assert split_knowcoder_prompt("no markers") == ([{"role": "user", "content": "no markers"}], "")
    messages, prefill = split_knowcoder_prompt("S\nInput:\nq1\nOutput:\nresults = [a]\nInput:\nq2\nOutput:\nresults = [")
    assert messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "q1"},
                        {"role": "assistant", "content": "results = [a]"}, {"role": "user", "content": "q2"}]
    assert prefill == "results = ["
    plain = HuggingFaceModel(str(tiny_chat_model_dir), chat_template=False)
    assert plain.format_prompt("x") == "x"


def test_chat_template_asked_for_but_missing(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="no chat template"):
        HuggingFaceModel(str(tiny_model_dir), chat_template=True)


def test_prompt_longer_than_context_is_an_error_not_a_truncation(tiny_model_dir, prompts):
    model = HuggingFaceModel(str(tiny_model_dir), model_kwargs={"max_position_embeddings": 64})
    with pytest.raises(PromptTooLongError, match="window_size"):
        model.generate(prompts[:1])


def test_lora_adapter_is_loaded(tiny_model_dir, tmp_path, prompts):
    _lora(tiny_model_dir, tmp_path / "adapter")
    plain = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=8)
    adapted = HuggingFaceModel(str(tiny_model_dir), adapter=str(tmp_path / "adapter"), max_new_tokens=8)
    assert type(adapted.model).__name__.startswith("Peft")
    assert adapted.generate(prompts) != plain.generate(prompts)
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        HuggingFaceModel(str(tiny_model_dir), adapter=str(tmp_path))


@pytest.mark.parametrize("name, message", [
    ("/no/such/folder", "does not exist"),
    ("./models/missing", "does not exist"),
    ("", "empty"),
])
def test_missing_model_path_fails_at_add_pipe(name, message):
    nlp = spacy.blank("en")
    with pytest.raises(ModelLoadError, match=message):
        nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA,
                                       "model": {"@llm_models": "spacy_codeie.HuggingFace.v1", "name": name}})


def test_uncached_hub_id_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="Could not load the model"):
        HuggingFaceModel("nobody-here/no-such-model-xyz")


@pytest.mark.parametrize("kwargs, message", [({"device": "cuda:0"}, "no CUDA"), ({"dtype": "float99"}, "not a torch dtype"),
                                             ({"batch_size": 0}, "batch_size"), ({"max_new_tokens": 0}, "max_new_tokens")])
def test_bad_backend_settings(tiny_model_dir, kwargs, message):
    import torch

    if kwargs.get("device") and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ModelLoadError, match=message):
        HuggingFaceModel(str(tiny_model_dir), **kwargs)


def test_cpu_defaults_and_progress_bar(tiny_model_dir, prompts, capsys):
    import torch

    model = HuggingFaceModel(str(tiny_model_dir), progress=True, max_new_tokens=2)
    if not torch.cuda.is_available():
        assert model.device == "cpu" and model.dtype == torch.float32
    model.generate(prompts)
    assert "codeie generate" in capsys.readouterr().err


def test_windows_fit_the_models_context_in_tokens(tiny_model_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": {
        "@llm_models": "spacy_codeie.HuggingFace.v1", "name": str(tiny_model_dir), "max_new_tokens": 4,
        "model_kwargs": {"max_position_embeddings": 1024}}})
    model = nlp.get_pipe("codeie").model
    assert model.max_prompt_tokens < 1024
    docs = list(nlp.pipe(["Ada worked for Acme.", "😀" * 999]))  # 999 characters, about 4,000 tokens
    assert docs[0].user_data["codeie_diagnostics"]["windows"] == 1
    emoji = docs[1].user_data["codeie_diagnostics"]


    assert emoji["windows"] > 1 and emoji["skipped_windows"] == 0


def _lora(tiny_model_dir, folder):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(folder)
    return folder


def test_a_merged_adapter_computes_what_the_adapter_does_and_can_be_swapped_and_saved(tiny_model_dir, tmp_path,
                                                                                      prompts):
    import torch
    from peft.tuners.lora import LoraLayer
    from safetensors.torch import load_file

    first = _lora(tiny_model_dir, tmp_path / "first")
    second = _lora(tiny_model_dir, tmp_path / "second")
    ids = torch.tensor([HuggingFaceModel(str(tiny_model_dir)).encode(prompts[1])])

    def logits(backend):
        with torch.inference_mode():
            return backend.model(input_ids=ids).logits

    def merged_flags(backend):
        return {layer.merged for layer in backend.model.modules() if isinstance(layer, LoraLayer)}

    merged = HuggingFaceModel(str(tiny_model_dir), adapter=str(first), merge_adapter=True, max_new_tokens=8)
    assert merged_flags(merged) == {True}
    assert torch.allclose(logits(merged), logits(HuggingFaceModel(str(tiny_model_dir), adapter=str(first))),
                          atol=1e-4)
    merged.load_adapter(second)  # the first adapter's deltas must leave the base weights
    assert merged_flags(merged) == {True}
    assert torch.allclose(logits(merged), logits(HuggingFaceModel(str(tiny_model_dir), adapter=str(second))),
                          atol=1e-4)
    merged.save_adapter(tmp_path / "saved")
    saved, original = (load_file(str(f / "adapter_model.safetensors")) for f in (tmp_path / "saved", second))
    assert saved.keys() == original.keys()
    assert all(torch.equal(saved[k], original[k]) for k in saved)


def test_the_adapter_travels_with_the_pipeline(tiny_model_dir, tmp_path, prompts):
    import shutil

    adapter = _lora(tiny_model_dir, tmp_path / "adapter")
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": {
        "@llm_models": "spacy_codeie.HuggingFace.v1", "name": str(tiny_model_dir), "max_new_tokens": 8,
        "adapter": str(adapter)}})
    expected = nlp.get_pipe("codeie").model.generate(prompts)
    data = nlp.to_bytes()
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(adapter)  # only the base model must stay reachable
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("codeie").model.generate(prompts) == expected
    from_bytes = spacy.blank("en").from_config(nlp.config).from_bytes(data)
    assert from_bytes.get_pipe("codeie").model.generate(prompts) == expected


def test_a_missing_adapter_folder_is_an_error_on_first_use(tiny_model_dir, tmp_path, prompts):
    model = HuggingFaceModel(str(tiny_model_dir), adapter=str(tmp_path / "gone"))
    with pytest.raises(ModelLoadError, match="gone"):
        model.generate(prompts)


def test_generation_from_two_threads_is_serialized(tiny_model_dir, prompts, monkeypatch):
    import threading
    import time

    model = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=4, batch_size=1)
    inside, most = [0], [0]
    original = model._generate_batch

    def counted(*args, **kwargs):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.01)
        try:
            return original(*args, **kwargs)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(model, "_generate_batch", counted)
    expected = model.generate(prompts)
    results = [None, None]

    def run(i):
        results[i] = model.generate(prompts)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected, expected] and most[0] == 1


def test_sampling_leaves_the_global_torch_seed_alone(tiny_model_dir, prompts):
    import torch

    model = HuggingFaceModel(str(tiny_model_dir), max_new_tokens=4)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = model.sample(prompts[:1], 2, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.sample(prompts[:1], 2, seed=7) == first
    assert pickle.loads(pickle.dumps(model)).sample(prompts[:1], 2, seed=7) == first  # spawned processes


@pytest.mark.parametrize("flags, native", [("fpu avx512f avx512_bf16 vnni", True), ("fpu amx_bf16 amx_tile", True),
                                           ("fpu avx512f avx512bw avx512_vnni", False)])
def test_dtype_fast_is_bfloat16_only_where_the_cpu_computes_it(tmp_path, monkeypatch, flags, native):
    import torch

    from spacy_codeie.models import huggingface

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert huggingface.cpu_has_native_bf16(str(cpuinfo)) is native
    assert huggingface.cpu_has_native_bf16(str(tmp_path / "missing")) is False  # not Linux: no claim
    monkeypatch.setattr(huggingface, "cpu_has_native_bf16", lambda: native)
    assert huggingface._pick_dtype("fast", "cpu") == (torch.bfloat16 if native else torch.float32)
    assert huggingface._pick_dtype("fast", "cuda:0") == torch.bfloat16
    assert huggingface._pick_dtype("auto", "cpu") == torch.float32
    with pytest.raises(ModelLoadError, match="'fast'"):
        huggingface._pick_dtype("fastest", "cpu")


def test_the_output_layer_gets_contiguous_hidden_states(tiny_model_dir, prompts):
    """generate() asks for the last position only; a strided view there cost torch 1.7 GB in bfloat16 on a CPU."""
    model = HuggingFaceModel(str(tiny_model_dir), batch_size=4, max_new_tokens=3, dtype="bfloat16")
    seen = []
    model.model.get_output_embeddings().register_forward_pre_hook(
        lambda module, args: seen.append(args[0].is_contiguous()))
    model.generate(prompts[:4])
    assert seen and all(seen)
