"""A local backend on llama.cpp (`llama-cpp-python`): GGUF weights, greedy, many answers decoded at once.

The prompt is formatted and tokenized by the same transformers tokenizer (read from the GGUF file) as the
HuggingFace backend, so both send the model the same token ids; llama.cpp only runs the network. A LoRA
adapter is merged into a cached copy of the GGUF file (see gguf_merge.py), so it costs nothing per token.

Prompts are sorted so that those sharing a prefix (a schema's class definitions) run together. The prefix is
decoded once, as sequence 0 of llama.cpp's key-value cache; each prompt of the batch then becomes a sequence
that shares the prefix's cells, and their sentences and answers are decoded side by side, one token per
sequence per step.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import ModelLoadError, PromptTooLongError
from .constrained import DONE, TokenTable, grammar_for
from .contract import answer_depth, answer_per_doc, cut_at_list_close
from .gguf_merge import WeightType, merged_gguf
from .huggingface import read_prompt_style_block
from .prompt_tokens import (
    answer_token_budget,
    chat_text,
    encode_segments,
    prompt_segments,
    uses_chat_template,
)
from .repeats import RepeatWatch, close_before_repeats

logger = logging.getLogger("spacy_codeie")

_PREFIX_SEQ = 0  # the sequence that holds the shared prefix; prompts are sequences 1..batch_size


class LlamaCppModel:
    """Greedy completions with llama.cpp, stopping where each answer's list closes (and sampled ones, for
    preference data).

    `batch_size` prompts are decoded side by side; `n_ctx` is the key-value cache all of them share (a batch
    that would not fit is split). `constrained` keeps answers to valid lists of the prompt's classes and
    mentions copied from the sentence (the HuggingFace backend's grammar); `answer_budget` sizes each answer's
    token budget from its sentence.
    """

    def __init__(
        self,
        path: str,
        *,
        adapter: Optional[str] = None,
        weights: WeightType = "q8_0",
        batch_size: int = 32,
        n_threads: int = 0,
        n_ctx: int = 8192,
        max_new_tokens: int = 512,
        answer_budget: float = 0.0,
        constrained: bool = True,
        chat_template: Optional[bool] = None,
        progress: bool = False,
        cache_dir: Optional[str] = None,
    ):
        # what a copy in another process is rebuilt from (the llama.cpp objects themselves do not pickle)
        self._settings = dict(adapter=adapter, weights=weights, batch_size=batch_size, n_threads=n_threads,
                              n_ctx=n_ctx, max_new_tokens=max_new_tokens, answer_budget=answer_budget,
                              constrained=constrained, chat_template=chat_template, progress=progress,
                              cache_dir=cache_dir)
        if max_new_tokens < 1 or batch_size < 1:
            raise ModelLoadError("max_new_tokens and batch_size must be at least 1.")
        if answer_budget < 0:
            raise ModelLoadError("answer_budget must be 0 (off) or a positive number of tokens per sentence token.")
        if n_threads < 0 or n_ctx < 256:
            raise ModelLoadError("n_threads must be 0 (all usable cores) or more, and n_ctx at least 256 tokens.")
        try:
            from llama_cpp import _internals, llama_context_default_params, llama_model_default_params
            from llama_cpp._logger import set_verbose
        except ImportError:
            raise ModelLoadError(
                "The LlamaCpp backend needs llama-cpp-python: pip install llama-cpp-python (it compiles llama.cpp; "
                "a few minutes). Or use spacy_codeie.HuggingFace.v1, which reads the same GGUF files."
            ) from None
        from transformers import AutoTokenizer

        base = Path(str(path)).expanduser()
        if not base.is_file() or base.suffix != ".gguf":
            raise ModelLoadError(f"The LlamaCpp backend needs the path of a .gguf file; {str(path)!r} is not one.")
        self.name = str(path)
        self.adapter = str(adapter) if adapter else None
        self._style_block: Optional[Dict[str, Any]] = None
        if adapter:
            if not Path(str(adapter)).expanduser().is_dir():
                raise ModelLoadError(f"The adapter folder {str(adapter)!r} does not exist.")
            self._style_block = read_prompt_style_block(adapter)
            self.model_path = merged_gguf(base, adapter, weights=weights, cache_dir=cache_dir)
        else:
            self.model_path = base
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.answer_budget = answer_budget
        self.constrained = constrained
        self.progress = progress
        self.tokenizer = AutoTokenizer.from_pretrained(str(base.parent), gguf_file=base.name, local_files_only=True)
        self.chat_template = uses_chat_template(self.tokenizer, chat_template, str(path))
        set_verbose(False)  # llama.cpp's load report goes to stderr otherwise
        try:
            self._model = _internals.LlamaModel(path_model=str(self.model_path), params=llama_model_default_params(),
                                                verbose=False)
        except ValueError as err:
            raise ModelLoadError(f"llama.cpp could not load {str(self.model_path)!r}: {err}") from None
        threads = n_threads or _usable_cores()
        params = llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = min(512, n_ctx)
        params.n_seq_max = batch_size + 1  # the prefix, and one sequence per prompt
        params.kv_unified = True  # the prompts' sequences share the prefix's cells, not copies of them
        params.n_threads = params.n_threads_batch = threads
        self._ctx = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        self._batch = _internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.n_batch = int(params.n_batch)
        self._sequences = batch_size  # prompt sequences the context was made for
        self.n_ctx = int(self._ctx.n_ctx())
        self.context_length = int(self._model.n_ctx_train()) or self.n_ctx
        self._vocab = int(self._model.n_vocab())
        self._prefix: List[int] = []  # the tokens sequence 0 holds now
        self._stop_ids = {i for i in (self.tokenizer.eos_token_id, self._model.token_eos()) if i is not None and i >= 0}
        self._token_table: Optional[TokenTable] = None
        self._lock = threading.RLock()  # one llama.cpp context: generations take turns
        # Counters for benchmarks and logs, named as the HuggingFace backend names them.
        self.stats: Counter = Counter()

    def __getstate__(self) -> Dict[str, Any]:
        return {"name": self.name, "settings": self._settings}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["name"], **state["settings"])  # type: ignore[misc]

    def close(self) -> None:
        """Free llama.cpp's context and model now rather than when the object is collected."""
        self._ctx.close()
        self._model.close()

    # ---- what the component asks of a backend --------------------------------------------------
    def __call__(self, prompts: Iterable[Iterable[str]]) -> List[List[str]]:
        return answer_per_doc(self.generate, prompts)

    @property
    def prompt_style(self):
        """The prompt style the merged adapter was trained with (its `prompt_style.json`), or None."""
        if not self._style_block:
            return None
        from spacy.util import registry

        return registry.resolve({"style": self._style_block})["style"]

    @property
    def max_prompt_tokens(self) -> Optional[int]:
        """The longest prompt that leaves an answer room in the cache and in the model's context."""
        room = min(self.context_length, self.n_ctx)
        return room - min(self.max_new_tokens, room // 2)

    def count_tokens(self, prompts: Sequence[str]) -> List[int]:
        return [len(self.encode(p)) for p in prompts]

    def format_prompt(self, prompt: str) -> str:
        return chat_text(self.tokenizer, prompt) if self.chat_template else prompt

    def encode(self, prompt: str) -> List[int]:
        """The token ids sent for a prompt: the same as the HuggingFace backend sends for it."""
        segments = prompt_segments(prompt, self.chat_template)
        if segments is not None:
            return encode_segments(self.tokenizer, segments)
        return self.tokenizer(self.format_prompt(prompt), add_special_tokens=not self.chat_template)["input_ids"]

    # ---- generation -----------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str]) -> List[str]:
        """Completions for `prompts`, in their order."""
        return self._complete(prompts, None)

    def sample(self, prompts: Sequence[str], n: int, *, temperature: float = 0.8, top_p: float = 0.95,
               seed: int = 0) -> List[List[str]]:
        """`n` sampled completions per prompt (for preference data), in the prompts' order; the same seed
        gives the same samples. The grammar, the repeat stop and the answer budget hold as in `generate`."""
        import numpy as np

        if n < 1 or temperature <= 0 or not 0 < top_p <= 1:
            raise ModelLoadError("Sampling needs n >= 1, a positive temperature and 0 < top_p <= 1.")
        copies = [p for p in prompts for _ in range(n)]
        texts = self._complete(copies, NucleusSampler(np.random.default_rng(seed), temperature, top_p))
        return [texts[i: i + n] for i in range(0, len(texts), n)]

    def _complete(self, prompts: Sequence[str], sampler: Optional["NucleusSampler"]) -> List[str]:
        if not prompts:
            return []
        with self._lock:
            rows = [_Row(p, self.encode(p), sampler) for p in prompts]
            for row in rows:
                row.budget = answer_token_budget(self.tokenizer, row.prompt, self.max_new_tokens, self.answer_budget)
                if len(row.ids) + 1 > min(self.context_length, self.n_ctx):
                    raise PromptTooLongError(
                        f"A prompt of {len(row.ids)} tokens does not fit llama.cpp's context of "
                        f"{min(self.context_length, self.n_ctx)} tokens. Raise 'n_ctx', or lower the codeie "
                        "settings 'window_size' or 'max_types_per_prompt' so that each prompt is shorter."
                    )
                row.budget = max(1, min(row.budget, min(self.context_length, self.n_ctx) - len(row.ids)))
            bar = None
            if self.progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(prompts), desc="codeie generate", unit="prompt")
            ordered = sorted(rows, key=lambda r: r.ids)  # prompts sharing a prefix run together
            for group in self._plan(ordered):
                self._run(group)
                if bar is not None:
                    bar.update(len(group))
            if bar is not None:
                bar.close()
            texts = [row.text(self.tokenizer) for row in rows]
            self.stats["repeat_stops"] += sum(row.repeated for row in rows)
            return texts

    def _plan(self, rows: List["_Row"]) -> Iterable[List["_Row"]]:
        """Batches of at most `batch_size` consecutive rows whose prefix, sentences and answer budgets fit
        the cache together."""
        group: List[_Row] = []
        for row in rows:
            candidate = group + [row]
            if len(candidate) > min(self.batch_size, self._sequences) or (group and _cells(candidate) > self.n_ctx):
                yield group
                candidate = [row]
            group = candidate
        if group:
            yield group

    def _run(self, rows: List["_Row"]) -> None:
        prefix = _common_prefix_all([r.ids for r in rows])
        prefix = prefix[: min(len(r.ids) for r in rows) - 1]  # every row keeps a token of its own
        kept = _common_prefix(self._prefix, prefix)
        memory = self._ctx.memory
        from llama_cpp import llama_memory_seq_cp, llama_memory_seq_rm

        for seq in range(1, self._sequences + 1):
            llama_memory_seq_rm(memory, seq, -1, -1)
        if not llama_memory_seq_rm(memory, _PREFIX_SEQ, kept, -1):
            kept = 0
            llama_memory_seq_rm(memory, _PREFIX_SEQ, -1, -1)
        self._prefix = []  # unknown until the decode below has run
        self._decode([(_PREFIX_SEQ, kept + i, token, None) for i, token in enumerate(prefix[kept:])])
        self._prefix = list(prefix)
        for seq in range(1, len(rows) + 1):
            llama_memory_seq_cp(memory, _PREFIX_SEQ, seq, -1, -1)
        for row in rows:
            row.start(self.constrained)
            self.stats["prompt_tokens"] += len(row.ids)
            self.stats["cached_prompt_tokens"] += len(prefix)
        own = [(seq, len(prefix) + i, token, row if i == len(row.ids) - len(prefix) - 1 else None)
               for seq, row in enumerate(rows, start=1) for i, token in enumerate(row.ids[len(prefix):])]
        self._decode(own)
        while True:
            live = [(seq, row) for seq, row in enumerate(rows, start=1) if not row.done]
            if not live:
                break
            self._decode([(seq, len(row.ids) + len(row.answer) - 1, row.answer[-1], row) for seq, row in live])
        self.stats["batches"] += 1
        self.stats["generated_tokens"] += sum(len(r.answer) for r in rows)

    def _decode(self, tokens: List[Tuple[int, int, int, Optional["_Row"]]]) -> None:
        """Run (sequence, position, token, row) entries through the model, `n_batch` at a time; each row given
        picks its next token from the logits of its entry."""
        import numpy as np

        batch = self._batch.batch
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start: start + self.n_batch]
            for i, (seq, pos, token, row) in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = row is not None
            batch.n_tokens = len(chunk)
            self._ctx.decode(self._batch)
            for i, (_, _, _, row) in enumerate(chunk):
                if row is not None:
                    logits = np.ctypeslib.as_array(self._ctx.get_logits_ith(i), shape=(self._vocab,))
                    self._pick(row, logits)

    def _pick(self, row: "_Row", logits) -> None:
        """Append the row's next token (greedy or sampled, within its grammar), or mark it done."""
        import numpy as np

        if row.grammar is not None:
            if row.state is None or row.state == DONE:
                row.done = True
                return
            allowed = row.masks.get(row.state)
            if allowed is None:
                ids = [i for i in self.token_table.allowed(row.grammar, row.state) if i < self._vocab]
                allowed = row.masks[row.state] = np.array(ids or sorted(self._stop_ids), dtype=np.int64)
            token = int(allowed[row.choose(logits[allowed])])
        else:
            token = int(row.choose(logits))
        if token in self._stop_ids:
            row.done = True
            return
        row.answer.append(token)
        data = self.token_table.bytes_for(token)
        if row.grammar is not None:
            row.state = row.grammar.advance(row.state, data) if data else None
        if row.watch is not None:
            row.done = row.watch.feed_bytes(data or b"")
        if len(row.answer) >= row.budget:
            row.done = True

    @property
    def token_table(self) -> TokenTable:
        if self._token_table is None:
            self._token_table = TokenTable(self.tokenizer)
        return self._token_table


class NucleusSampler:
    """Temperature and nucleus (top-p) sampling from a seeded generator, shared by the rows of one call."""

    def __init__(self, rng, temperature: float, top_p: float):
        self.rng = rng
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, logits) -> int:
        """The index of a token drawn from `logits` (one candidate per entry)."""
        import numpy as np

        scaled = np.asarray(logits, dtype=np.float64) / self.temperature
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, self.top_p)) + 1]  # the smallest set reaching top_p
        kept = probs[keep] / probs[keep].sum()
        return int(keep[self.rng.choice(len(keep), p=kept)])


class _Row:
    """One prompt's answer in the making."""

    def __init__(self, prompt: str, ids: List[int], sampler: Optional[NucleusSampler] = None):
        self.prompt = prompt
        self.ids = ids
        self.sampler = sampler
        self.budget = 1
        self.answer: List[int] = []
        self.done = False
        self.depth = answer_depth(prompt)
        self.grammar: Any = None
        self.state: Any = None
        self.watch: Optional[RepeatWatch] = None
        self.repeated = False
        self.masks: Dict[object, Any] = {}

    def start(self, constrained: bool) -> None:
        self.grammar = grammar_for(self.prompt) if constrained and self.depth is not None else None
        self.state = self.grammar.initial if self.grammar is not None else None
        self.watch = RepeatWatch(self.prompt, self.depth) if self.depth is not None else None

    def choose(self, logits) -> int:
        """The index of the next token among `logits`: the best, or a sampled one."""
        import numpy as np

        return int(np.argmax(logits)) if self.sampler is None else self.sampler(logits)

    def text(self, tokenizer) -> str:
        text = tokenizer.decode(self.answer, skip_special_tokens=True)
        if self.depth is None:
            return text
        text, self.repeated = close_before_repeats(cut_at_list_close(text, self.depth), self.prompt, self.depth)
        return text


def _cells(rows: List[_Row]) -> int:
    """Cache cells a batch needs: the shared prefix once, each row's own tokens and answer budget."""
    shared = len(_common_prefix_all([r.ids for r in rows]))
    return shared + sum(len(r.ids) - shared + r.budget for r in rows)


def _common_prefix_all(sequences: List[List[int]]) -> List[int]:
    first, last = min(sequences), max(sequences)
    return first[: _common_prefix(first, last)]


def _common_prefix(cached: Sequence[int], ids: Sequence[int]) -> int:
    n = 0
    for a, b in zip(cached, ids):
        if a != b:
            break
        n += 1
    return n


def _usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit), not all the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
