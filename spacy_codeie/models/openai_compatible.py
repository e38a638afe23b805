"""A client for OpenAI-compatible completion servers: vLLM, SGLang, TGI, llama.cpp's server, ...

It follows spacy-llm's model contract like HuggingFaceModel (one list of prompts per doc in, one list of
completions per doc out, in order) and sends all prompts of all docs it receives at once, `concurrency` requests
in flight, so a server that batches continuously (vLLM, SGLang) stays busy. Only the standard library is used.

Each completion is cut where the `results = [` list it continues closes, like the local backend. Failed
requests are retried with exponential backoff; a request that still fails raises an error that says what to
do: a failed request never turns into an empty completion.
"""
from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from spacy_llm.registry import registry as llm_registry

from ..about import __version__
from ..errors import GenerationError, ModelLoadError, PromptTooLongError
from ..parsing import list_body
from ..prompting.knowcoder import COMPLETION_PREFIX, INPUT_MARKER
from .contract import answer_depth, answer_per_doc, cut_at_list_close, list_closes
from .prompt_tokens import split_knowcoder_prompt

logger = logging.getLogger(__name__)

ENDPOINTS = {"completions": "/completions", "chat": "/chat/completions"}
# "\nInput:" starts the next few-shot turn: a model that runs on past its answer stops there.
DEFAULT_STOP = ("\n" + INPUT_MARKER.rstrip("\n"),)
# Request fields the backend owns; extra_body may set any other field, override max_tokens, stop, ..., or drop one
# with null.
RESERVED_FIELDS = frozenset({"model", "prompt", "messages"})
MAX_BACKOFF = 60.0  # the longest wait between two attempts, without a Retry-After header
MAX_RETRY_AFTER = 300.0  # the longest Retry-After that is honoured
_CONTEXT_ERROR = re.compile(r"context length|context window|maximum context|max_model_len|too long|too many tokens",
                            re.I)


class _Retryable(Exception):
    """A failure worth another attempt: no connection, a timeout, HTTP 429 or 5xx."""

    def __init__(self, kind: str, detail: str, status: Optional[int] = None, retry_after: Optional[float] = None):
        super().__init__(detail)
        self.kind = kind  # "connection", "timeout" or "http"
        self.detail = detail
        self.status = status
        self.retry_after = retry_after


class _Cancelled(Exception):
    """Another prompt of the same call failed; stop retrying this one."""


class OpenAICompatibleModel:
    """Greedy completions from an OpenAI-compatible server's /completions (or /chat/completions) endpoint."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        max_tokens: int = 512,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        api_key_env: Optional[str] = "OPENAI_API_KEY",
        endpoint: str = "completions",
        stop: Optional[Sequence[str]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        progress: bool = False,
    ):
        if not isinstance(name, str) or not name.strip():
            raise ModelLoadError(
                "The model 'name' is empty. Give the model name the server serves: for vLLM the --served-model-name "
                "(by default the model path it was started with) or the name of a --lora-modules adapter."
            )
        self.name = name
        self.base_url = _check_base_url(base_url)
        _check_int("max_tokens", max_tokens, 1)
        _check_int("concurrency", concurrency, 1)
        _check_int("max_retries", max_retries, 0)
        _check_number("timeout", timeout, positive=True)
        _check_number("backoff", backoff, positive=False)
        if endpoint not in ENDPOINTS:
            raise ModelLoadError(f"endpoint={endpoint!r} is not supported. Use 'completions' (recommended) or 'chat'.")
        if stop is None:
            stop = DEFAULT_STOP
        if isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop):
            raise ModelLoadError(f"stop={stop!r} must be a list of non-empty strings, e.g. ['\\nInput:'].")
        extra_body = dict(extra_body or {})
        reserved = sorted(RESERVED_FIELDS & set(extra_body))
        if reserved:
            raise ModelLoadError(
                f"extra_body may not set {reserved}: the backend fills them in. Use 'name' for the model."
            )
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env.strip()):
            raise ModelLoadError("api_key_env must name an environment variable (or be null to send no key).")
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.endpoint = endpoint
        self.stop = list(stop)
        self.extra_body = extra_body
        self.progress = progress
        self.api_key_env = api_key_env
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"spacy-codeie/{__version__}",
        }
        key = os.environ.get(api_key_env, "").strip() if api_key_env else ""
        self._has_key = bool(key)
        if key:
            self._headers["Authorization"] = f"Bearer {key}"

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r}, endpoint={self.endpoint!r})"

    @property
    def url(self) -> str:
        return self.base_url + ENDPOINTS[self.endpoint]

    # ---- spacy-llm contract -----------------------------------------------------------------
    def __call__(self, prompts: Iterable[Iterable[str]]) -> List[List[str]]:
        return answer_per_doc(self.generate, prompts)

    # ---- generation -------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str]) -> List[str]:
        """Completions for `prompts`, in their order, `concurrency` requests at a time."""
        prompts = list(prompts)
        if not prompts:
            return []
        results: List[Optional[str]] = [None] * len(prompts)
        cancel = threading.Event()
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(prompts), desc="codeie generate", unit="prompt")
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts)), thread_name_prefix="codeie-http")
        try:
            futures = {pool.submit(self.complete, prompt, cancel): i for i, prompt in enumerate(prompts)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if bar is not None:
                    bar.update(1)
        except BaseException:
            cancel.set()  # the other requests stop at their next retry
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # pragma: no cover - every future either returned a string or raised
            raise GenerationError(f"No completion came back for prompts {missing}.")
        return [r for r in results if r is not None]

    def payload(self, prompt: str) -> Dict[str, Any]:
        """The JSON body sent for one prompt."""
        body: Dict[str, Any] = {"model": self.name}
        if self.endpoint == "chat":
            messages, prefill = split_knowcoder_prompt(prompt)
            if prefill:  # continue the assistant's answer from `results = [`
                messages = messages + [{"role": "assistant", "content": prefill}]
                body.update(continue_final_message=True, add_generation_prompt=False)
            body["messages"] = messages
        else:
            body["prompt"] = prompt
        body.update(max_tokens=self.max_tokens, temperature=0, stop=list(self.stop))
        body.update(self.extra_body)
        return {key: value for key, value in body.items() if value is not None}  # null in extra_body drops a field

    def complete(self, prompt: str, cancel: Optional[threading.Event] = None) -> str:
        """The completion of one prompt, cut where its `results = [` list closes."""
        answer = self._post(ENDPOINTS[self.endpoint], self.payload(prompt), cancel or threading.Event())
        text, finish = self._text_of(answer)
        if self.endpoint == "chat":
            text = _without_restated_prefix(text)
        depth = answer_depth(prompt)
        if depth is None:
            return text
        cut = cut_at_list_close(text, depth)
        if finish == "length" and not list_closes(cut, depth):
            logger.info("A completion reached max_tokens=%d before its list closed; the parser keeps what came.",
                        self.max_tokens)
        return cut

    # ---- HTTP ---------------------------------------------------------------------------------
    def _post(self, path: str, payload: Dict[str, Any], cancel: threading.Event) -> Any:
        url = self.base_url + path
        data = json.dumps(payload).encode("utf8")
        last: Optional[_Retryable] = None
        for attempt in range(self.max_retries + 1):
            if cancel.is_set():
                raise _Cancelled()
            try:
                return self._send(url, data)
            except _Retryable as err:
                last = err
            if attempt == self.max_retries:
                break
            delay = self._delay(attempt, last.retry_after)
            logger.warning("%s: %s; retry %d of %d in %.2fs", url, last.detail, attempt + 1, self.max_retries, delay)
            if cancel.wait(delay):
                raise _Cancelled()
        assert last is not None
        raise GenerationError(self._gave_up(url, last))

    def _send(self, url: str, data: bytes) -> Any:
        request = urllib.request.Request(url, data=data, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = _error_detail(_read_body(err))
            if err.code in (408, 429) or 500 <= err.code < 600:
                raise _Retryable("http", f"HTTP {err.code} {detail}".rstrip(), err.code,
                                 _retry_after(err.headers.get("Retry-After") if err.headers else None)) from None
            raise self._refused(url, err.code, detail) from None
        except urllib.error.URLError as err:
            if isinstance(err.reason, (socket.timeout, TimeoutError)):
                raise _Retryable("timeout", f"no answer within {self.timeout:g}s") from None
            if isinstance(err.reason, ssl.SSLError):
                raise GenerationError(f"The TLS connection to {url} failed: {err.reason}. Check base_url.") from None
            raise _Retryable("connection", f"cannot connect ({err.reason})") from None
        except (socket.timeout, TimeoutError):
            raise _Retryable("timeout", f"no answer within {self.timeout:g}s") from None
        except (ConnectionError, http.client.HTTPException, OSError) as err:
            raise _Retryable("connection", f"connection lost ({type(err).__name__}: {err})") from None
        try:
            return json.loads(raw.decode("utf8"))
        except (UnicodeDecodeError, ValueError):
            raise GenerationError(
                f"The server at {url} answered with something that is not JSON: {_excerpt(raw)!r}. Check that "
                "base_url is the root of an OpenAI-compatible API (e.g. http://localhost:8000/v1)."
            ) from None

    def _delay(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        delay = min(self.backoff * 2 ** attempt, MAX_BACKOFF)
        return delay * (0.5 + random.random() / 2)  # jitter, so parallel requests do not retry in lockstep

    def _text_of(self, answer: Any) -> Tuple[str, Optional[str]]:
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError):
            text = None
            choice = None
        if not isinstance(text, str):
            raise GenerationError(
                f"The server at {self.url} answered JSON without a completion "
                f"({'choices[0].message.content' if self.endpoint == 'chat' else 'choices[0].text'} is missing): "
                f"{_excerpt(json.dumps(answer))}. Is it an OpenAI-compatible {self.endpoint} endpoint?"
            )
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        return _before_stop(text, self._stop_sent()), finish

    def _stop_sent(self) -> List[str]:
        """The stop strings each request carries: `stop`, or what extra_body puts in its place."""
        stop = self.extra_body.get("stop", self.stop)
        if isinstance(stop, str):
            return [stop]
        return [s for s in stop or () if isinstance(s, str) and s]

    # ---- errors -------------------------------------------------------------------------------
    def _refused(self, url: str, status: int, detail: str) -> Exception:
        said = f" The server said: {detail}" if detail else ""
        if status in (401, 403):
            if self._has_key:
                hint = (f"An API key was sent from the environment variable {self.api_key_env}; check that it is the "
                        "key this server expects.")
            elif self.api_key_env:
                hint = (f"No API key was sent: set the environment variable {self.api_key_env} to the server's key "
                        "(or name another variable with the model setting 'api_key_env').")
            else:
                hint = "No API key was sent: set 'api_key_env' to the environment variable that holds the key."
            return GenerationError(f"The server at {url} refused the request (HTTP {status}). {hint}{said}")
        if status == 404:
            served = self._served_models()
            names = f" It serves: {', '.join(served)}." if served else ""
            return GenerationError(
                f"The server answered HTTP 404 for {url} with model {self.name!r}. Either base_url is wrong (it is "
                f"the API root, such as http://localhost:8000/v1, and the server must offer {ENDPOINTS[self.endpoint]}"
                f") or 'name' is not a model it serves (for vLLM: the --served-model-name or a --lora-modules "
                f"name).{names}{said}"
            )
        if status in (400, 413, 422) and _CONTEXT_ERROR.search(detail):
            return PromptTooLongError(
                f"The server at {url} rejected a prompt as too long for the model (HTTP {status}).{said} Lower the "
                "codeie settings 'window_size' or 'max_types_per_prompt', or this model's 'max_tokens'."
            )
        return GenerationError(
            f"The server at {url} rejected the request (HTTP {status}).{said} Check the model settings "
            "('name', 'max_tokens', 'stop', 'extra_body')."
        )

    def _gave_up(self, url: str, last: _Retryable) -> str:
        attempts = f"{self.max_retries + 1} attempt{'s' if self.max_retries else ''}"
        if last.kind == "connection":
            return (f"Could not reach the server at {url} ({last.detail}) after {attempts}. The server must be "
                    f"running and reachable at base_url={self.base_url!r} (e.g. started with `vllm serve MODEL`); "
                    "raise 'max_retries' or 'backoff' to wait longer for one that is starting.")
        if last.kind == "timeout":
            return (f"The server at {url} gave no answer within timeout={self.timeout:g}s, {attempts}. Raise "
                    "'timeout' (a generation under load can take long), or lower 'concurrency' or 'max_tokens'.")
        return (f"The server at {url} still answered {last.detail} after {attempts}: it is overloaded or failing. "
                "Check its log, lower 'concurrency', or raise 'max_retries' or 'backoff'.")

    def _served_models(self) -> List[str]:
        """The model ids GET {base_url}/models lists (one short try; empty when that fails)."""
        request = urllib.request.Request(self.base_url + "/models", headers=self._headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=min(self.timeout, 5.0)) as response:
                data = json.loads(response.read().decode("utf8"))
            return [str(m["id"]) for m in data["data"] if isinstance(m, dict) and "id" in m][:20]
        except Exception:  # best effort, only to improve an error message
            return []


def _check_base_url(base_url: Any) -> str:
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url.strip()):
        raise ModelLoadError(
            f"base_url={base_url!r} is not an http(s) URL. Give the root of the server's OpenAI-compatible API, "
            "e.g. 'http://localhost:8000/v1' (vLLM), 'http://localhost:30000/v1' (SGLang)."
        )
    url = base_url.strip().rstrip("/")
    for path in sorted(ENDPOINTS.values(), key=len, reverse=True):
        if url.endswith(path):
            raise ModelLoadError(
                f"base_url={base_url!r} should be the API root without {path!r}, e.g. {url[: -len(path)]!r}; "
                "the endpoint is chosen with 'endpoint'."
            )
    return url


def _check_int(setting: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelLoadError(f"{setting}={value!r} must be a whole number of at least {minimum}.")


def _check_number(setting: str, value: Any, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if not ok or value < 0 or (positive and value == 0):
        raise ModelLoadError(f"{setting}={value!r} must be a {'positive' if positive else 'non-negative'} number "
                             "of seconds.")


def _read_body(err: urllib.error.HTTPError) -> bytes:
    try:
        return err.read() or b""
    except Exception:
        return b""


def _excerpt(raw: Any, limit: int = 300) -> str:
    text = raw.decode("utf8", "replace") if isinstance(raw, bytes) else str(raw)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _error_detail(raw: bytes) -> str:
    """The message of an error answer: OpenAI's {"error": {"message"}}, vLLM's {"message"}, TGI's {"error"}."""
    try:
        data = json.loads(raw.decode("utf8"))
    except (UnicodeDecodeError, ValueError):
        return _excerpt(raw)
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            value = data.get(key)
            if isinstance(value, dict) and "message" in value:
                value = value["message"]
            if value:
                return _excerpt(value)
    return _excerpt(raw)


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _before_stop(text: str, stop: Sequence[str]) -> str:
    """`text` up to the first stop string in it. The OpenAI API and vLLM leave the stop string out of the answer,
    so for them this changes nothing; `transformers serve` returns it (with the rest of its token)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def _without_restated_prefix(text: str) -> str:
    """A chat answer that starts over (a code fence, `results = [`) instead of continuing the prefill."""
    head = text.lstrip()
    if head.startswith("```") or head.startswith(COMPLETION_PREFIX):
        return list_body(text)
    return text


@llm_registry.llm_models("spacy_codeie.OpenAICompatible.v1")
def openai_compatible_model(
    name: str,
    base_url: str,
    max_tokens: int = 512,
    concurrency: int = 8,
    timeout: float = 120.0,
    max_retries: int = 5,
    backoff: float = 1.0,
    api_key_env: Optional[str] = "OPENAI_API_KEY",
    endpoint: str = "completions",
    stop: Optional[List[str]] = None,
    extra_body: Optional[Dict[str, Any]] = None,
    progress: bool = False,
) -> OpenAICompatibleModel:
    """A model served by vLLM, SGLang, TGI or any server with an OpenAI-compatible completions API."""
    return OpenAICompatibleModel(
        name,
        base_url,
        max_tokens=max_tokens,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        backoff=backoff,
        api_key_env=api_key_env,
        endpoint=endpoint,
        stop=stop,
        extra_body=extra_body,
        progress=progress,
    )
