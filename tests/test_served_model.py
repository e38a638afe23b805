"""spacy_codeie.OpenAICompatible.v1 against a real OpenAI-compatible server started here: `transformers serve`.

The server runs as a subprocess on a free localhost port and serves the tiny random Llama models of conftest.py
(`tiny_model_dir`, `tiny_chat_model_dir`) from their folders: a request's `model` field is the folder's path, so one
server answers for both. A codeie pipeline runs against it, and what the server generates is compared with what
the same model generates locally, greedily, through spacy_codeie.HuggingFace.v1.

`transformers serve` needs the extras fastapi, uvicorn, openai (and starlette, rich): they are in the `test`
extra of setup.cfg, so a missing one fails these tests instead of skipping them.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import spacy
from spacy_llm.registry import registry as llm_registry

from conftest import PAPER_SCHEMA, sentence_of
from spacy_codeie.errors import GenerationError
from spacy_codeie.models.openai_compatible import OpenAICompatibleModel
from spacy_codeie.models.prompt_tokens import split_knowcoder_prompt

MAX_TOKENS = 24  # few tokens: the model is random, the test is about the plumbing
STARTUP_TIMEOUT = float(os.environ.get("CODEIE_SERVE_STARTUP_TIMEOUT", "240"))  # imports torch, transformers, fastapi
TEXTS = [
    "Ada Lovelace worked for Babbage Labs.",
    "Acme Corp bought Babbage Labs in 1843.",
    "Grace Hopper joined the Navy.",
]
# transformers serve rejects fields it does not know with HTTP 422, and cannot continue a prefilled assistant
# message (it always renders with add_generation_prompt=True): drop the two fields the chat endpoint adds for vLLM.
CHAT_EXTRA_BODY = {"continue_final_message": None, "add_generation_prompt": None}
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1"}


class Served:
    def __init__(self, base_url, models, process, log):
        self.base_url = base_url
        self.models = models  # endpoint -> model folder, as the server knows it
        self.process = process
        self.log = log

    def log_tail(self, chars=3000):
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url, timeout=2.0):
    with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as response:
        return response.status, json.loads(response.read().decode("utf8"))


def _require_server_extras():
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.fail("`transformers serve` needs fastapi, uvicorn, openai and pydantic, and one of them is missing. "
                    "Install the test extras (`pip install -e .[test]`, or `pip install 'transformers[serving]'`).",
                    pytrace=False)


@pytest.fixture(scope="module")
def served(request, tmp_path_factory):
    """`transformers serve` on a free localhost port (CPU, offline), stopped when the module's tests are done."""
    _require_server_extras()
    port = _free_port()
    log = tmp_path_factory.mktemp("transformers-serve") / "server.log"
    env = {**os.environ, **OFFLINE, "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve",
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        # Built while the server starts (both take seconds); the server loads a model at its first request.
        models = {"completions": str(request.getfixturevalue("tiny_model_dir")),
                  "chat": str(request.getfixturevalue("tiny_chat_model_dir"))}
        server = Served(f"http://127.0.0.1:{port}/v1", models, process, log)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"`{' '.join(command)}` exited with code {process.returncode} before it answered "
                            f"/health. Its output:\n{server.log_tail()}", pytrace=False)
            try:
                if _get(f"http://127.0.0.1:{port}/health")[0] == 200:
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`transformers serve` did not answer /health within {STARTUP_TIMEOUT:g}s (raise "
                            f"CODEIE_SERVE_STARTUP_TIMEOUT on a slow machine). Its output:\n{server.log_tail()}",
                            pytrace=False)
            time.sleep(0.25)
        # The server loads a model at its first request: load both now, so that the tests' requests only generate.
        for folder in models.values():
            try:
                _post(server.base_url + "/completions", {"model": folder, "prompt": "x", "max_tokens": 1},
                      timeout=max(deadline - time.monotonic(), 30))
            except OSError as err:  # urllib's HTTPError and URLError, a timeout
                pytest.fail(f"`transformers serve` could not load {folder}: {err}. Its output:\n{server.log_tail()}",
                            pytrace=False)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):  # the local server is never reached through a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def served_pipeline(served, endpoint):
    """A codeie pipeline whose model is the served one; its `_send` records every request and answer."""
    model_config = {"@llm_models": "spacy_codeie.OpenAICompatible.v1", "base_url": served.base_url,
                    "name": served.models[endpoint], "endpoint": endpoint, "max_tokens": MAX_TOKENS,
                    "concurrency": 4, "timeout": 120, "max_retries": 0, "api_key_env": None}
    if endpoint == "chat":
        model_config["extra_body"] = CHAT_EXTRA_BODY
    nlp = spacy.blank("en")
    # two prompts per doc (two groups of two types), so that a doc's answers must stay in its prompts' order
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": model_config, "max_types_per_prompt": 2})
    model = nlp.get_pipe("codeie").model
    assert isinstance(model, OpenAICompatibleModel)
    model.calls = []     # (prompts, completions) of each generate call
    model.exchanges = []  # (url, request body, answer) of each HTTP request
    generate, send = model.generate, model._send

    def recording_generate(prompts):
        completions = generate(prompts)
        model.calls.append((list(prompts), list(completions)))
        return completions

    def recording_send(url, data):
        answer = send(url, data)  # a 4xx answer raises GenerationError here
        model.exchanges.append((url, json.loads(data), answer))
        return answer

    model.generate, model._send = recording_generate, recording_send
    return nlp, model


def local_model(folder):
    """The same model run here with greedy decoding, as close to the server's computation as the backend allows:
    one prompt per batch (no left padding), no schema-prefix cache and no constrained decoding (the server has
    neither), float32 on the CPU like the server, the same number of new tokens."""
    make = llm_registry.llm_models.get("spacy_codeie.HuggingFace.v1")
    return make(name=folder, device="cpu", dtype="float32", batch_size=1, max_new_tokens=MAX_TOKENS,
                prefix_cache=False, constrained=False)


def check_pipeline_run(nlp, model, endpoint):
    docs = list(nlp.pipe(TEXTS, batch_size=2))  # two batches: 4 prompts, then 2
    assert [doc.text for doc in docs] == TEXTS
    assert [len(prompts) for prompts, _ in model.calls] == [4, 2]
    prompts = [p for call_prompts, _ in model.calls for p in call_prompts]
    completions = [c for _, call_completions in model.calls for c in call_completions]
    assert len(completions) == len(prompts) == len(model.exchanges) == 6
    # each doc's prompts, in order, ask about that doc; one answer came back per prompt
    assert [sentence_of(p) for p in prompts] == [text for text in TEXTS for _ in range(2)]
    for doc in docs:
        diag = doc.user_data["codeie_diagnostics"]
        assert diag["windows"] == 1 and diag["prompts"] == 2, diag
        assert diag["skipped_windows"] == 0 and diag["skipped_prompts"] == 0, diag
    # what the backend sent was accepted (a 4xx would have raised) and obeyed
    for url, body, answer in model.exchanges:
        assert url == served_url(model, endpoint)
        assert body["max_tokens"] == MAX_TOKENS and body["temperature"] == 0 and body["stop"] == ["\nInput:"]
        assert answer["usage"]["completion_tokens"] <= MAX_TOKENS
        assert answer["choices"][0]["finish_reason"] in ("stop", "length")
    return prompts, completions


def served_url(model, endpoint):
    return model.base_url + ("/completions" if endpoint == "completions" else "/chat/completions")


def test_completions_endpoint_matches_local_greedy_generation(served):
    nlp, model = served_pipeline(served, "completions")
    prompts, completions = check_pipeline_run(nlp, model, "completions")
    assert sorted(body["prompt"] for _, body, _ in model.exchanges) == sorted(prompts)  # as they were, once each
    assert {answer["model"] for _, _, answer in model.exchanges} == {served.models["completions"]}
    # The server tokenizes the prompt as the local backend does (the tiny tokenizer adds no BOS), runs greedy
    # generation in float32 on the CPU and decodes without special tokens; both sides cut where the list closes.
    # So the texts are equal, token for token.
    local = local_model(served.models["completions"])
    assert local.generate(prompts) == completions
    assert any(completions), "the server generated nothing"
    # the model's folder is its name on the server, and /models lists it once it is loaded
    status, listed = _get(served.base_url + "/models", timeout=10)
    assert status == 200 and served.models["completions"] in {m["id"] for m in listed["data"]}


def test_chat_endpoint_matches_local_greedy_generation_of_what_the_server_renders(served):
    nlp, model = served_pipeline(served, "chat")
    prompts, completions = check_pipeline_run(nlp, model, "chat")
    for (_, body, _) in model.exchanges:
        assert body["messages"][-1] == {"role": "assistant", "content": "results = ["}
        assert "continue_final_message" not in body and "add_generation_prompt" not in body
    local = local_model(served.models["chat"])
    assert local.chat_template
    # Not equal to the local backend as it is: the local backend (like vLLM with continue_final_message) continues
    # the prefilled `results = [` inside the last assistant turn, while transformers serve renders that message
    # as a finished turn and opens a new assistant turn after it (add_generation_prompt=True is fixed in its
    # code). What holds is the strongest equality left: the server's answers are the local backend's greedy
    # answers to the text the server renders, read the same way (cut where the list closes; the backend's
    # "starts over" rule did not apply, as no answer of this random model starts with `results = [` or a fence).
    tokenizer = local.tokenizer

    def as_served(prompt):
        messages, prefill = split_knowcoder_prompt(prompt)
        return tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": prefill}],
                                             tokenize=False, add_generation_prompt=True)

    assert as_served(prompts[0]) != local.format_prompt(prompts[0])
    local.format_prompt = as_served
    expected = local.generate(prompts)
    assert not any(t.lstrip().startswith(("results = [", "```")) for t in expected)
    assert expected == completions
    assert any(completions), "the server generated nothing"


def test_stop_string_is_left_out_of_the_answer(served):
    """transformers serve stops at a stop string but returns it, with the rest of the token that completed it
    (the OpenAI API and vLLM leave it out): the backend cuts the answer before it, as those servers do."""
    folder = served.models["completions"]
    prompt = nlp_prompt(served)
    (full,) = local_model(folder).generate([prompt])
    # a piece of plain letters from the middle of the greedy answer (the server matches stop strings against
    # tokens' text, so a piece of a character that a token only half encodes would never match)
    stop = next((full[i: i + 4] for i in range(4, len(full) - 4) if full[i: i + 4].isascii()
                 and full[i: i + 4].strip() == full[i: i + 4] and full[i: i + 4].isalpha()), None)
    assert stop, f"no plain piece to stop at in {full!r}"
    expected = full[: full.index(stop)]
    model = OpenAICompatibleModel(folder, served.base_url, max_tokens=MAX_TOKENS, stop=[stop], api_key_env=None,
                                  max_retries=0, timeout=120)
    assert model.generate([prompt]) == [expected]
    # the request itself: the server obeyed the stop string (finish_reason "stop")
    raw = _post(served.base_url + "/completions", model.payload(prompt))
    assert raw["choices"][0]["finish_reason"] == "stop"
    assert raw["choices"][0]["text"].startswith(expected)


def test_chat_fields_for_vllm_are_refused_with_the_servers_message(served):
    """Without CHAT_EXTRA_BODY the server answers 422 naming the fields: the backend fails at once (no retries)
    and shows that message, which is what docs/serving.md tells to fix with extra_body."""
    model = OpenAICompatibleModel(served.models["chat"], served.base_url, endpoint="chat", max_tokens=4,
                                  api_key_env=None, max_retries=1, backoff=30.0, timeout=60)
    start = time.monotonic()
    try:
        model.generate([nlp_prompt(served)])
    except GenerationError as err:
        assert "HTTP 422" in str(err) and "continue_final_message" in str(err)
        assert time.monotonic() - start < 15  # not retried: a retry would wait 15 s or more
    else:  # a later transformers that accepts them makes CHAT_EXTRA_BODY unnecessary (and this test says so)
        pytest.fail("transformers serve now accepts continue_final_message: update docs/serving.md and this test")


def test_stop_string_returned_by_a_server_is_cut_without_a_server():
    model = OpenAICompatibleModel("m", "http://127.0.0.1:9/v1", api_key_env=None)
    answer = {"choices": [{"text": '\n\tPerson("Ada"),\nInput:\nBob', "finish_reason": "stop"}]}
    model._send = lambda url, data: answer
    assert model.complete('x = 1\nresults = [') == '\n\tPerson("Ada"),'
    answer["choices"][0]["text"] = '\n\tPerson("Ada")]\nInput:'
    assert model.complete('x = 1\nresults = [') == '\n\tPerson("Ada")]'
    # the stop strings that were sent count: extra_body may replace or drop them
    assert OpenAICompatibleModel("m", "http://h/v1", extra_body={"stop": ["Bob"]})._stop_sent() == ["Bob"]
    assert OpenAICompatibleModel("m", "http://h/v1", extra_body={"stop": None})._stop_sent() == []
    no_stop = OpenAICompatibleModel("m", "http://127.0.0.1:9/v1", api_key_env=None, extra_body={"stop": None})
    no_stop._send = lambda url, data: answer
    assert no_stop.complete("say it") == '\n\tPerson("Ada")]\nInput:'


def nlp_prompt(served):
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": {
        "@llm_models": "spacy_codeie.OpenAICompatible.v1", "base_url": served.base_url, "name": "unused"}})
    _, prompts, _ = nlp.get_pipe("codeie").prompts_for(nlp.make_doc(TEXTS[0]))
    return prompts[0]


def _post(url, body, timeout=120.0):
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf8"),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode("utf8"))

