"""spacy_codeie.OpenAICompatible.v1 against a real local HTTP server that answers from a script."""
import json
import socket
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import spacy
from spacy_llm.registry import registry as llm_registry

from conftest import PAPER_SCHEMA, sentence_of
from spacy_codeie.errors import GenerationError, ModelLoadError, PromptTooLongError
from spacy_codeie.models.openai_compatible import OpenAICompatibleModel, _retry_after
from spacy_codeie.prompting import KnowCoderPrompt
from spacy_codeie.schema import schema_from_mapping

KEY_ENV = "CODEIE_TEST_API_KEY"
TEXT = "Ada Lovelace worked for Babbage Labs, which Acme Corp bought in 1843."
ANSWER = ('\n\tPerson("Ada Lovelace"),\n\tOrg("Babbage Labs"),\n\tOrg("Acme Corp"),\n'
          '\tWorksFor(Person("Ada Lovelace"), Org("Babbage Labs")),\n'
          '\tAcquisition(trigger="bought", buyer=[Org("Acme Corp")], target=[Org("Babbage Labs")])\n]')


class Script:
    """What the fake server answers, and what it saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.answers = {}            # sentence -> completion text
        self.default = "]"
        self.models = {"codeie"}
        self.failures = []           # (status, headers, body) answered to the next requests, in order
        self.always = None           # (status, headers, body) answered to every request
        self.raw = None              # bytes answered with 200 instead of a completion
        self.delay = 0.0             # seconds every answer takes
        self.slow = 0                # the first `slow` requests take `slow_seconds`
        self.slow_seconds = 1.0
        self.key = None              # the Bearer token the server requires
        self.requests = []           # (path, headers, body) of every POST
        self.in_flight = 0
        self.max_in_flight = 0

    def answer(self, sentence):
        return self.answers.get(sentence, self.default)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def _json(self, status, data, headers=None):
        payload = data if isinstance(data, bytes) else json.dumps(data).encode("utf8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": m} for m in sorted(self.server.script.models)]})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self):
        script = self.server.script
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with script.lock:
            script.requests.append((self.path, dict(self.headers), body))
            script.in_flight += 1
            script.max_in_flight = max(script.max_in_flight, script.in_flight)
            failure = script.failures.pop(0) if script.failures else script.always
            slow = len(script.requests) <= script.slow
        try:
            if slow:
                time.sleep(script.slow_seconds)
            time.sleep(script.delay)
            if failure is not None:
                status, headers, data = failure
                return self._json(status, data, headers)
            if script.key and self.headers.get("Authorization") != f"Bearer {script.key}":
                return self._json(401, {"error": {"message": "invalid api key"}})
            if self.path not in ("/v1/completions", "/v1/chat/completions"):
                return self._json(404, {"detail": "Not Found"})
            if body.get("model") not in script.models:
                return self._json(404, {"object": "error", "message": f"The model `{body.get('model')}` does not exist."})
            if script.raw is not None:
                return self._json(200, script.raw)
            if self.path == "/v1/chat/completions":
                messages = body["messages"]
                assert messages[-1] == {"role": "assistant", "content": "results = ["}
                assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
                text = script.answer(sentence_of(messages[-2]["content"]))
            else:
                text = script.answer(sentence_of(body["prompt"]))
            finish = "length"
            for stop in body.get("stop") or []:  # like a real server: the stop string is not returned
                if stop in text:
                    text, finish = text[: text.index(stop)], "stop"
            if self.path == "/v1/chat/completions":
                choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text, "finish_reason": finish}
            self._json(200, {"object": "text_completion", "model": body["model"], "choices": [choice]})
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (timeout tests)
            pass
        finally:
            with script.lock:
                script.in_flight -= 1


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@pytest.fixture
def server():
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.script = Script()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.script.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield httpd.script
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):  # the local server is never reached through a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def make(script, **settings):
    settings = {"name": "codeie", "backoff": 0.001, "timeout": 5.0, "api_key_env": KEY_ENV, **settings}
    name = settings.pop("name")
    return OpenAICompatibleModel(name, script.base_url, **settings)


STYLE = KnowCoderPrompt()
SCHEMA = schema_from_mapping({k: v for k, v in PAPER_SCHEMA.items() if k != "@misc"})


def prompt(sentence):
    return STYLE.render_prompt(SCHEMA, sentence)


def test_answers_keep_doc_and_prompt_order_and_run_concurrently(server):
    sentences = [f"Person {i} works." for i in range(7)]
    server.answers = {s: f'Person("Person {i}")]' for i, s in enumerate(sentences)}
    server.delay = 0.1
    model = make(server, concurrency=4, progress=True)
    docs = [[prompt(s) for s in sentences[:2]], [], [prompt(s) for s in sentences[2:]]]
    out = model(docs)
    assert out == [[f'Person("Person {i}")]' for i in range(2)], [],
                   [f'Person("Person {i}")]' for i in range(2, 7)]]
    assert 1 < server.max_in_flight <= 4
    assert len(server.requests) == 7
    path, _, body = server.requests[0]
    assert path == "/v1/completions"
    assert body["model"] == "codeie" and body["temperature"] == 0 and body["max_tokens"] == 512
    assert "\nInput:" in body["stop"] and body["prompt"].endswith("results = [")
    assert model.generate([]) == [] and model([]) == [] and len(server.requests) == 7


def test_retries_on_503_and_429_then_succeeds(server):
    server.answers = {"Ada.": 'Person("Ada")]', "Acme.": 'Org("Acme")]'}
    server.failures = [(503, {}, {"error": "overloaded"}), (503, {}, {"error": "overloaded"}),
                       (429, {"Retry-After": "0"}, {"error": "slow down"})]
    model = make(server, max_retries=4, concurrency=2)
    assert model.generate([prompt("Ada."), prompt("Acme.")]) == ['Person("Ada")]', 'Org("Acme")]']
    assert len(server.requests) == 5  # 3 failed + 2 good
    assert server.failures == []


def test_retry_after_is_honoured_instead_of_backoff(server):
    server.answers = {"Ada.": 'Person("Ada")]'}
    server.failures = [(429, {"Retry-After": "0"}, {"error": "slow down"})] * 2
    model = make(server, backoff=30.0, max_retries=2)  # backoff alone would wait 15s or more
    start = time.monotonic()
    assert model.generate([prompt("Ada.")]) == ['Person("Ada")]']
    assert time.monotonic() - start < 5 and len(server.requests) == 3


def test_backoff_grows_exponentially_with_jitter(server):
    model = make(server, backoff=0.5)
    for attempt in range(4):
        delays = [model._delay(attempt, None) for _ in range(50)]
        assert all(0.25 * 2 ** attempt <= d <= 0.5 * 2 ** attempt for d in delays)
        assert len(set(delays)) > 1
    assert model._delay(10, None) <= 60.0
    assert model._delay(0, 2.5) == 2.5
    assert _retry_after("3") == 3.0 and _retry_after(None) is None and _retry_after("soon") is None
    assert 5 < _retry_after(formatdate(time.time() + 10, usegmt=True)) <= 10


def test_gives_up_after_max_retries_with_a_clear_error(server):
    server.always = (503, {}, {"error": {"message": "engine overloaded"}})
    model = make(server, max_retries=2)
    with pytest.raises(GenerationError, match=r"HTTP 503 engine overloaded after 3 attempts") as err:
        model([[prompt("Ada.")], [prompt("Acme.")]])
    assert server.base_url in str(err.value) and "max_retries" in str(err.value)
    assert 3 <= len(server.requests) <= 6  # the second prompt stops once the first has failed


def test_unreachable_server_names_the_url(server):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    model = OpenAICompatibleModel("codeie", f"http://127.0.0.1:{port}/v1", max_retries=1, backoff=0.001)
    with pytest.raises(GenerationError, match=r"Could not reach the server at http://127\.0\.0\.1:\d+/v1/completions"
                       r".*after 2 attempts.*must be running"):
        model.generate([prompt("Ada.")])


def test_401_names_the_env_var_and_is_not_retried(server):
    server.key = "sekret"
    model = make(server, max_retries=3)
    with pytest.raises(GenerationError, match=f"HTTP 401.*set the environment variable {KEY_ENV}.*invalid api key"):
        model.generate([prompt("Ada.")])
    assert len(server.requests) == 1


def test_authorization_header_only_when_the_env_var_is_set(server, monkeypatch):
    server.answers = {"Ada.": 'Person("Ada")]'}
    make(server).generate([prompt("Ada.")])
    assert "Authorization" not in server.requests[-1][1]
    monkeypatch.setenv(KEY_ENV, "sekret")
    server.key = "sekret"
    model = make(server)
    assert model.generate([prompt("Ada.")]) == ['Person("Ada")]']
    assert server.requests[-1][1]["Authorization"] == "Bearer sekret"
    assert "sekret" not in repr(model) and "sekret" not in str(vars(model).get("api_key_env"))
    monkeypatch.setenv(KEY_ENV, "wrong")
    with pytest.raises(GenerationError, match=f"from the environment variable {KEY_ENV}") as err:
        make(server).generate([prompt("Ada.")])
    assert "wrong" not in str(err.value)


def test_timeout_is_retried_then_reported(server):
    server.answers = {"Ada.": 'Person("Ada")]'}
    server.slow, server.slow_seconds = 1, 1.0
    model = make(server, timeout=0.3, max_retries=2)
    assert model.generate([prompt("Ada.")]) == ['Person("Ada")]']
    assert len(server.requests) == 2  # the slow one, then the retry
    server.slow, server.requests = 100, []
    with pytest.raises(GenerationError, match=r"no answer within timeout=0\.3s, 2 attempts.*Raise 'timeout'"):
        make(server, timeout=0.3, max_retries=1).generate([prompt("Ada.")])
    assert len(server.requests) == 2


def test_404_wrong_model_or_base_url(server):
    with pytest.raises(GenerationError, match=r"HTTP 404.*model 'base'.*It serves: codeie\..*does not exist"):
        make(server, name="base").generate([prompt("Ada.")])
    root = server.base_url[: -len("/v1")]
    with pytest.raises(GenerationError, match=r"HTTP 404 for http://127\.0\.0\.1:\d+/completions.*base_url is wrong"):
        OpenAICompatibleModel("codeie", root, backoff=0.001).generate([prompt("Ada.")])


def test_malformed_answers_are_errors_not_empty_strings(server):
    server.raw = b"<html>proxy error</html>"
    with pytest.raises(GenerationError, match=r"not JSON: '<html>proxy error</html>'"):
        make(server).generate([prompt("Ada.")])
    server.raw = json.dumps({"choices": []}).encode()
    with pytest.raises(GenerationError, match=r"without a completion \(choices\[0\]\.text is missing\)"):
        make(server).generate([prompt("Ada.")])


def test_context_overflow_is_a_prompt_too_long_error(server):
    message = "This model's maximum context length is 2048 tokens. However, you requested 2600 tokens."
    server.always = (400, {}, {"object": "error", "message": message})
    with pytest.raises(PromptTooLongError, match="maximum context length.*window_size"):
        make(server).generate([prompt("Ada.")])
    assert len(server.requests) == 1


def test_text_after_the_list_closes_is_cut(server, caplog):
    server.answers = {
        "Ada.": 'Person("Ada ] Jr.")]\nprint("more")\nresults = [',
        "Acme.": 'Org("Acme")' + "\nInput:\nsentence = \"next\"\n",   # stopped by the server before the list closed
        "Bob.": 'Person("Bob"), Org("Ac',                               # hit max_tokens
    }
    with caplog.at_level("INFO", logger="spacy_codeie.models.openai_compatible"):
        out = make(server).generate([prompt("Ada."), prompt("Acme."), prompt("Bob.")])
    assert out == ['Person("Ada ] Jr.")]', 'Org("Acme")', 'Person("Bob"), Org("Ac']
    assert [r.getMessage() for r in caplog.records] == [  # only the cut "Bob." answer ran out of tokens
        "A completion reached max_tokens=512 before its list closed; the parser keeps what came."]


def test_extra_body_adds_and_overrides_fields(server):
    model = make(server, extra_body={"top_k": 1, "stop": ["\n\n"], "max_tokens": 64})
    model.generate([prompt("Ada.")])
    body = server.requests[-1][2]
    assert body["top_k"] == 1 and body["stop"] == ["\n\n"] and body["max_tokens"] == 64
    chat = make(server, endpoint="chat", extra_body={"add_generation_prompt": None, "stop": None})
    body = chat.payload(prompt("Ada."))
    assert "stop" not in body and "add_generation_prompt" not in body and body["continue_final_message"] is True
    assert body["messages"][-1] == {"role": "assistant", "content": "results = ["}


@pytest.mark.parametrize("settings,message", [
    ({"concurrency": 0}, "concurrency=0 must be a whole number of at least 1"),
    ({"max_tokens": -1}, "max_tokens=-1"),
    ({"max_retries": -1}, "max_retries=-1"),
    ({"timeout": 0}, "timeout=0 must be a positive number"),
    ({"backoff": -1.0}, "backoff=-1.0 must be a non-negative number"),
    ({"endpoint": "generate"}, "endpoint='generate' is not supported"),
    ({"extra_body": {"prompt": "x"}}, r"extra_body may not set \['prompt'\]"),
    ({"stop": "\nInput:"}, "must be a list of non-empty strings"),
    ({"name": " "}, "The model 'name' is empty"),
    ({"base_url": "localhost:8000/v1"}, "is not an http"),
    ({"base_url": "http://localhost:8000/v1/completions"}, "without '/completions'"),
    ({"base_url": "http://localhost:8000/v1/chat/completions"}, "without '/chat/completions'"),
])
def test_settings_are_validated(settings, message):
    factory = llm_registry.llm_models.get("spacy_codeie.OpenAICompatible.v1")
    config = {"name": "codeie", "base_url": "http://localhost:8000/v1", **settings}
    with pytest.raises(ModelLoadError, match=message):
        factory(**config)


def test_end_to_end_codeie_pipeline(server):
    server.answers = {TEXT: ANSWER + '\nprint("done")', "Babbage Labs.": 'Org("Babbage Labs")]'}
    nlp = spacy.blank("en")
    nlp.add_pipe("codeie", config={"schema": PAPER_SCHEMA, "model": {
        "@llm_models": "spacy_codeie.OpenAICompatible.v1", "base_url": server.base_url, "name": "codeie",
        "backoff": 0.001, "api_key_env": KEY_ENV}})
    doc, empty, other = nlp.pipe([TEXT, "", "Babbage Labs."])
    assert [(e.text, e.label_) for e in doc.ents] == [("Ada Lovelace", "PERSON"), ("Babbage Labs", "ORG"),
                                                      ("Acme Corp", "ORG")]
    (rel,) = doc._.relations
    assert (rel.head.text, rel.tail.text, rel.label) == ("Ada Lovelace", "Babbage Labs", "WORKS_FOR")
    (event,) = doc._.events
    assert (event.trigger.text, event.label) == ("bought", "ACQUISITION")
    assert doc.user_data["codeie_diagnostics"]["hallucinated"] == 0
    assert empty.ents == () and [(e.text, e.label_) for e in other.ents] == [("Babbage Labs", "ORG")]
    assert len(server.requests) == 2  # the empty doc sends nothing


def test_chat_endpoint_continues_the_prefill(server):
    server.answers = {TEXT: ANSWER, "Ada.": '```python\nresults = [\n\tPerson("Ada")\n]\n```'}
    model = make(server, endpoint="chat")
    out = model.generate([prompt(TEXT), prompt("Ada.")])
    assert out == [ANSWER, '\n\tPerson("Ada")\n]']
    path, _, body = server.requests[0]
    assert path == "/v1/chat/completions" and body["messages"][0]["role"] == "system"
