"""The local generation backend: Hugging Face transformers, batched, greedy, stopping when the list closes.

It follows spacy-llm's model contract (`Iterable[Iterable[str]] -> Iterable[Iterable[str]]`, one inner
iterable of prompts per doc) but batches across all prompts of all docs it receives, which spacy-llm's own
Hugging Face models do not.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..errors import ModelLoadError, PromptTooLongError
from .batching import plan_batches, run_with_backoff
from .constrained import KnowCoderConstraint, TokenTable, grammar_for
from .contract import answer_depth, answer_per_doc, cut_at_list_close
from .prefix_cache import PrefixCache, expand_for_batch, layout_rows, prefix_length, shared_prefix_end
from .prompt_tokens import (
    answer_token_budget,
    chat_text,
    encode_segments,
    prompt_segments,
    uses_chat_template,
)
from .repeats import RepeatWatch, close_before_repeats

logger = logging.getLogger("spacy_codeie")



def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", ".", "~"))
        or name.endswith(".gguf")
        or name.count("/") > 1
        or (os.sep != "/" and os.sep in name)
    )


def resolve_source(name: str, gguf_file: Optional[str]) -> Tuple[str, Optional[str], bool]:
    """(what to pass to from_pretrained, gguf file name, is local). Fails early on a missing local path."""
    if not name or not str(name).strip():
        raise ModelLoadError("The model 'name' is empty. Give a local model folder or a Hugging Face hub id.")
    path = Path(str(name)).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name, True
    if path.is_dir():
        if gguf_file and not (path / gguf_file).is_file():
            raise ModelLoadError(f"The GGUF file {gguf_file!r} is not in {str(path)!r}. Check 'gguf_file'.")
        return str(path), gguf_file, True
    if path.exists() or _looks_like_path(str(name)):
        raise ModelLoadError(
            f"The model folder {str(name)!r} does not exist. Give the path of a folder that holds a transformers "
            "model (config.json and weights), a .gguf file, or a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct'."
        )
    return str(name), gguf_file, False


def _pick_device(device: Optional[str]) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device={device!r} was asked for, but torch sees no CUDA GPU. Use 'cpu' or 'auto'.")
    return str(device)


def _pick_dtype(dtype: Optional[str], device: str):
    """'auto': bfloat16 on CUDA, float32 on CPU. 'fast': bfloat16 on CUDA and on CPUs with native bfloat16
    instructions (AVX-512 BF16 or AMX, where it measured 1.8x float32), float32 on other CPUs, which would only
    emulate it."""
    import torch

    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype == "fast":
        return torch.bfloat16 if device.startswith("cuda") or cpu_has_native_bf16() else torch.float32
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ModelLoadError(f"dtype={dtype!r} is not a torch dtype. Use 'auto', 'fast', 'float32', 'bfloat16' or "
                             "'float16'.")
    return value


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bfloat16 natively (x86 flags avx512_bf16 or amx_bf16; read on Linux only)."""
    try:
        flags = Path(cpuinfo).read_text(encoding="utf8", errors="replace")
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


class _ListClosed:
    """Stops each row once the list its answer continues (or opens) closes, or once it loops (`RepeatWatch`);
    rows with depth None run on. Each watch is fed the tokens' bytes (from `table`), so it reads whole characters."""

    def __init__(self, table: TokenTable, prompts: Sequence[str], depths: Sequence[Optional[int]]):
        self.table = table
        self.watches = [RepeatWatch(p, d) if d is not None else None for p, d in zip(prompts, depths)]

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = []
        for row, token_id in enumerate(input_ids[:, -1].tolist()):
            watch = self.watches[row]
            done.append(watch is not None and watch.feed_bytes(self.table.bytes_for(token_id) or b""))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _RowBudget:
    """Stops each row once it has generated its own budget of new tokens."""

    def __init__(self, budgets: Sequence[int], prompt_width: int):
        self.budgets = list(budgets)
        self.width = prompt_width

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        generated = input_ids.shape[1] - self.width
        return torch.tensor([generated >= b for b in self.budgets], dtype=torch.bool, device=input_ids.device)


class HuggingFaceModel:
    """Batched greedy generation with a local or hub transformers model, optionally GGUF and/or LoRA.

    `prefix_cache` reuses the KV cache of each schema's class definitions across docs and batches;
    `constrained` limits generation to valid lists of the prompt's classes and mentions copied from the
    sentence; `max_batch_tokens` caps rows x (prompt + new tokens) per batch, so long prompts go in smaller
    batches; `merge_adapter` folds a LoRA adapter into the weights it adapts, so generation does not pay for
    the adapter's extra matrix products (the adapter can still be saved and swapped). See docs/performance.md.
    """

    def __init__(
        self,
        name: str,
        *,
        gguf_file: Optional[str] = None,
        adapter: Optional[str] = None,
        dtype: Optional[str] = "auto",
        device: Optional[str] = "auto",
        batch_size: int = 8,
        max_new_tokens: int = 512,
        chat_template: Optional[bool] = None,
        progress: bool = False,
        trust_remote_code: bool = False,
        model_kwargs: Optional[Dict[str, Any]] = None,
        prefix_cache: bool = True,
        constrained: bool = True,
        max_batch_tokens: int = 0,
        min_prefix_tokens: int = 32,
        prefix_cache_size: int = 8,
        answer_budget: float = 0.0,
        merge_adapter: bool = False,
    ):
        if batch_size < 1:
            raise ModelLoadError("batch_size must be at least 1.")
        if max_batch_tokens < 0:
            raise ModelLoadError("max_batch_tokens must be 0 (no token limit) or a positive number of tokens.")
        if min_prefix_tokens < 1 or prefix_cache_size < 1:
            raise ModelLoadError("min_prefix_tokens and prefix_cache_size must be at least 1.")
        if max_new_tokens < 1:
            raise ModelLoadError("max_new_tokens must be at least 1.")
        try:
            import torch  # noqa: F401
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as err:  # pragma: no cover - both are install requirements
            raise ModelLoadError(f"The HuggingFace backend needs torch and transformers: {err}") from None
        source, gguf_file, local = resolve_source(name, gguf_file)
        self.gguf_file = gguf_file
        self.name = name
        self.device = _pick_device(device)
        self.dtype = _pick_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.progress = progress
        self.prefix_cache = prefix_cache
        self.constrained = constrained
        if answer_budget < 0:
            raise ModelLoadError("answer_budget must be 0 (off) or a positive number of tokens per sentence token.")
        self.answer_budget = answer_budget
        self.max_batch_tokens = max_batch_tokens
        self.min_prefix_tokens = min_prefix_tokens
        self._row_limit = batch_size  # lowered when a batch runs out of memory
        self._prefix_ids = PrefixCache(self.tokenize_text, max_entries=4 * prefix_cache_size)  # shared text -> ids
        self._prefix_cache = PrefixCache(self._compute_prefix, max_entries=prefix_cache_size)
        self._token_table: Optional[TokenTable] = None
        # One generation at a time: the prefix cache, the row limit, the stats and the tokenizer (a Rust object
        # that refuses to be borrowed twice) are shared, so nlp.pipe from several threads takes turns here.
        self._lock = threading.RLock()
        # Counters for benchmarks and logs: batches, prompt and generated tokens, prompt tokens read from cache.
        self.stats: Counter = Counter()
        offline = local or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        load_kwargs: Dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": offline}
        if gguf_file:
            load_kwargs["gguf_file"] = gguf_file
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **load_kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=self.dtype, **load_kwargs,
                                                         **(model_kwargs or {}))
        except (OSError, ValueError, KeyError) as err:
            raise ModelLoadError(
                f"Could not load the model {name!r}: {err}\nGive a local folder holding a transformers model, or a "
                "hub id that is cached or reachable (offline, download it first and pass its folder)."
            ) from None
        self.adapter: Optional[str] = None
        self.merge_adapter = merge_adapter
        self._style_block: Optional[Dict[str, Any]] = None
        self._missing_adapter: Optional[str] = None
        # transformers' own type of .to() does not accept a device string
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]
        _feed_output_layer_contiguous(self.model)
        if adapter and not Path(str(adapter)).expanduser().exists():
            # Not an error yet: a saved pipeline carries its own copy (codeie/adapter/), which spacy.load puts
            # on after building this model from the config. Without one, the first generation fails.
            self._missing_adapter = str(adapter)
        elif adapter:
            self.load_adapter(adapter)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.chat_template = uses_chat_template(self.tokenizer, chat_template, name)
        self.context_length = _context_length(self.model.config)

    def __getstate__(self) -> Dict[str, Any]:  # a lock cannot be pickled (spawned processes, Ray)
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ---- LoRA adapters -----------------------------------------------------------------------
    @property
    def has_adapter(self) -> bool:
        return self.adapter is not None

    def load_adapter(self, path: Union[str, Path]) -> None:
        """Put a peft LoRA adapter on the base model, replacing one loaded before."""
        with self._lock:
            if self.has_adapter and self.merge_adapter:
                self.model.unmerge_adapter()  # give the base weights back before the old adapter comes off
            base = self.model.unload() if self.has_adapter else self.model
            self.model = _with_adapter(base, str(path)).to(self.device).eval()
            if self.merge_adapter:
                self.model.merge_adapter()
            self.adapter = str(path)
            # kept in memory: the folder may be temporary (from_bytes), and the style travels with the weights
            self._style_block = read_prompt_style_block(path)
            self._missing_adapter = None
            self.clear_prefix_cache()  # cached keys and values came from the old weights

    def _check_adapter(self) -> None:
        if self._missing_adapter is not None:
            raise ModelLoadError(
                f"The adapter folder {self._missing_adapter!r} does not exist. Give the folder a peft LoRA run saved "
                "in the model setting 'adapter', or leave it out; a pipeline saved with nlp.to_disk carries its "
                "adapter and needs no folder."
            )

    def save_adapter(self, path: Union[str, Path]) -> None:
        """Write the loaded adapter (peft format) and the prompt style it declares, e.g. into a saved pipeline
        so that both travel with it."""
        if not self.has_adapter:
            raise ModelLoadError("This model has no adapter to save.")
        self.model.save_pretrained(str(path))
        if self._style_block:
            write_prompt_style(path, self._style_block)

    @property
    def prompt_style(self):
        """The prompt style the loaded adapter was trained with (its `prompt_style.json`), or None."""
        block = self._style_block if self.has_adapter else None
        if not block:
            return None
        from spacy.util import registry

        return registry.resolve({"style": block})["style"]

    # ---- spacy-llm contract -----------------------------------------------------------------
    def __call__(self, prompts: Iterable[Iterable[str]]) -> List[List[str]]:
        return answer_per_doc(self.generate, prompts)

    # ---- generation -------------------------------------------------------------------------
    def format_prompt(self, prompt: str) -> str:
        """The text actually tokenized: the prompt itself, or it wrapped in the tokenizer's chat template."""
        return chat_text(self.tokenizer, prompt) if self.chat_template else prompt

    def encode(self, prompt: str) -> List[int]:
        """The token ids `generate` sends for a prompt. A prompt whose style gives `segments` (the pieces its
        system's training code tokenized one by one) is tokenized piece by piece, after the special tokens the
        tokenizer puts first, so the model sees the token boundaries it was trained on."""
        return self._encode(prompt, None)

    def _segments(self, prompt: str) -> Optional[Sequence[str]]:
        """The pieces to tokenize one by one, or None (the whole prompt in the model's format at once)."""
        return prompt_segments(prompt, self.chat_template)

    def _encode(self, prompt: str, formatted: Optional[str]) -> List[int]:
        segments = self._segments(prompt)
        if segments is None:
            return self.tokenize_text(formatted if formatted is not None else self.format_prompt(prompt))
        return encode_segments(self.tokenizer, segments)

    def tokenize_text(self, text: str) -> List[int]:
        """Token ids of text already in the model's format (see `format_prompt`), special tokens as `encode`
        adds them."""
        return self.tokenizer(text, add_special_tokens=not self.chat_template)["input_ids"]

    @property
    def max_prompt_tokens(self) -> Optional[int]:
        """The longest prompt that leaves the answer `max_new_tokens` of the context (or half of it, whichever is
        less): the codeie component cuts windows to fit it."""
        if not self.context_length:
            return None
        return self.context_length - min(self.max_new_tokens, self.context_length // 2)

    def count_tokens(self, prompts: Sequence[str]) -> List[int]:
        """The length of each prompt in tokens, as `generate` will send it."""
        if not prompts:
            return []
        whole = [i for i, p in enumerate(prompts) if self._segments(p) is None]
        lengths = [0] * len(prompts)
        with self._lock:
            if whole:  # one batched call for the prompts tokenized whole
                formatted = [self.format_prompt(prompts[i]) for i in whole]
                ids = self.tokenizer(formatted, add_special_tokens=not self.chat_template)["input_ids"]
                for i, row in zip(whole, ids):
                    lengths[i] = len(row)
            for i, p in enumerate(prompts):
                if self._segments(p) is not None:
                    lengths[i] = len(self._encode(p, None))
        return lengths

    def _check_fits(self, encoded: Sequence[Sequence[int]]) -> None:
        for ids in encoded:
            if self.context_length and len(ids) >= self.context_length:
                raise PromptTooLongError(
                    f"A prompt of {len(ids)} tokens does not fit the context of {self.context_length} tokens of "
                    f"model {self.name!r}. Lower the codeie settings 'window_size' (characters per window) or "
                    "'max_types_per_prompt' so that each prompt is shorter."
                )

    def _shared_prefix(self, formatted: str, ids: List[int]) -> Tuple[int, ...]:
        """The leading tokens this prompt shares with every prompt of its schema group (may be empty)."""
        if not self.prefix_cache:
            return ()
        end = shared_prefix_end(formatted)
        if not end:
            return ()
        head = formatted[:end]
        prefix_ids = self._prefix_ids.get(head)
        return tuple(ids[: prefix_length(ids, prefix_ids, self.min_prefix_tokens)])

    def _compute_prefix(self, prefix: Tuple[int, ...]):
        import torch

        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([prefix], dtype=torch.long, device=self.device), use_cache=True)
        return out.past_key_values

    def generate(self, prompts: Sequence[str]) -> List[str]:
        """Completions for `prompts`, in their order.

        Prompts are grouped by their shared schema prefix (its KV cache is computed once and reused), then
        length-sorted into batches of at most `batch_size` rows and `max_batch_tokens` padded tokens. A batch
        that runs out of memory is split in halves, and later batches are kept that small.
        """
        if not prompts:
            return []
        with self._lock:
            return self._generate(prompts)

    def _generate(self, prompts: Sequence[str]) -> List[str]:
        self._check_adapter()
        formatted = [self.format_prompt(p) for p in prompts]
        encoded = [self._encode(p, text) for p, text in zip(prompts, formatted)]
        self._check_fits(encoded)
        grammars = [grammar_for(p) if self.constrained and answer_depth(p) is not None else None for p in prompts]
        budgets = [self._answer_budget(p) for p in prompts]
        groups: Dict[Tuple[int, ...], List[int]] = {}
        for i, (text, ids) in enumerate(zip(formatted, encoded)):
            groups.setdefault(self._shared_prefix(text, ids), []).append(i)
        results: List[Optional[str]] = [None] * len(prompts)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(prompts), desc="codeie generate", unit="prompt")
        for prefix, members in groups.items():
            lengths = [len(encoded[i]) for i in members]
            for planned in plan_batches(lengths, self.batch_size, self.max_new_tokens, self.max_batch_tokens):
                rows = [members[j] for j in planned]
                for start in range(0, len(rows), self._row_limit):
                    chunk = rows[start: start + self._row_limit]
                    rows_of = partial(self._generate_rows, prefix, encoded, prompts, grammars, budgets)
                    texts = run_with_backoff(chunk, rows_of, self._shrink_batches)
                    for i, text in zip(chunk, texts):
                        results[i] = text
                    if bar is not None:
                        bar.update(len(chunk))
        if bar is not None:
            bar.close()
        return [r if r is not None else "" for r in results]

    def _generate_rows(self, prefix: Tuple[int, ...], encoded: Sequence[List[int]], prompts: Sequence[str],
                       grammars: Sequence[Any], budgets: Sequence[int], rows: Sequence[int]) -> List[str]:
        """`_generate_batch` over the prompts at indices `rows` (what a batch retried in halves is made of)."""
        return self._generate_batch([encoded[i] for i in rows], [prompts[i] for i in rows], prefix=prefix,
                                    grammars=[grammars[i] for i in rows], budgets=[budgets[i] for i in rows])

    def _answer_budget(self, prompt: str) -> int:
        """New tokens this prompt may take (see `answer_token_budget`)."""
        return answer_token_budget(self.tokenizer, prompt, self.max_new_tokens, self.answer_budget)

    def _shrink_batches(self, rows_that_failed: int) -> None:
        new_limit = max(1, rows_that_failed // 2)
        if new_limit < self._row_limit:
            logger.warning("codeie: a batch of %d prompts ran out of memory; generating at most %d at a time "
                           "from now on. Set a lower 'batch_size' or 'max_batch_tokens' to skip the retries.",
                           rows_that_failed, new_limit)
            self._row_limit = new_limit

    def _generate_batch(self, batch: List[List[int]], prompts: Sequence[str],
                        num_return_sequences: int = 1, *, prefix: Tuple[int, ...] = (),
                        grammars: Optional[Sequence[Any]] = None, budgets: Optional[Sequence[int]] = None,
                        **sampling: Any) -> List[str]:
        import torch
        from transformers import LogitsProcessorList

        pad = self.tokenizer.pad_token_id
        input_ids, attention = layout_rows(prefix, [ids[len(prefix):] for ids in batch], pad)
        width = input_ids.shape[1]
        max_new = self.max_new_tokens
        if self.context_length:
            max_new = max(1, min(max_new, self.context_length - width))
        row_prompts = [p for p in prompts for _ in range(num_return_sequences)]
        rows_in_list = [answer_depth(p) for p in row_prompts]
        stops: List[Any] = [_ListClosed(self.token_table, row_prompts, rows_in_list)]
        if budgets:
            max_new = min(max_new, max(budgets))
            stops.append(_RowBudget([b for b in budgets for _ in range(num_return_sequences)], width))
        extra: Dict[str, Any] = {}
        if grammars and any(g is not None for g in grammars):
            rows = [g for g in grammars for _ in range(num_return_sequences)]
            extra["logits_processor"] = LogitsProcessorList([KnowCoderConstraint(self.token_table, rows, width)])
        with torch.inference_mode():
            if prefix:
                extra["past_key_values"] = expand_for_batch(self._prefix_cache.get(prefix), len(batch))
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                max_new_tokens=max_new,
                do_sample=bool(sampling),
                num_return_sequences=num_return_sequences,
                pad_token_id=pad,
                stopping_criteria=stops,
                **extra,
                **sampling,
            )
        new_tokens = out[:, width:]
        self.stats["batches"] += 1
        self.stats["prompt_tokens"] += int(attention.sum()) * num_return_sequences
        self.stats["cached_prompt_tokens"] += len(prefix) * len(batch)
        self.stats["generated_tokens"] += int((new_tokens != pad).sum())
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [self._finish(t, p, depth) for t, p, depth in zip(texts, row_prompts, rows_in_list)]

    def _finish(self, text: str, prompt: str, depth: Optional[int]) -> str:
        """The answer up to where its list closes, or closed before an item that came back too often."""
        if depth is None:
            return text
        text, repeated = close_before_repeats(cut_at_list_close(text, depth), prompt, depth)
        self.stats["repeat_stops"] += repeated
        return text

    def clear_prefix_cache(self) -> None:
        """Forget the cached schema prefixes (they are rebuilt on demand)."""
        with self._lock:
            self._prefix_cache.clear()

    @property
    def token_table(self) -> TokenTable:
        """The vocabulary as bytes, built on first use by constrained decoding."""
        if self._token_table is None:
            self._token_table = TokenTable(self.tokenizer)
        return self._token_table

    def sample(self, prompts: Sequence[str], n: int, *, temperature: float = 0.8, top_p: float = 0.95,
               seed: int = 0) -> List[List[str]]:
        """`n` sampled completions per prompt (for preference data), in the prompts' order.

        `seed` seeds a copy of torch's random state, so the global one is left as it was."""
        import torch

        if n < 1 or temperature <= 0:
            raise ModelLoadError("Sampling needs n >= 1 and a positive temperature.")
        devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        out: List[List[str]] = []
        with self._lock, torch.random.fork_rng(devices=devices):
            self._check_adapter()
            torch.manual_seed(seed)
            encoded = [self.encode(p) for p in prompts]
            rows = max(1, self.batch_size // n)
            for i in range(0, len(prompts), rows):
                texts = self._generate_batch(encoded[i: i + rows], prompts[i: i + rows], num_return_sequences=n,
                                             temperature=temperature, top_p=top_p)
                out.extend(texts[j: j + n] for j in range(0, len(texts), n))
        return out


def _feed_output_layer_contiguous(model) -> None:
    """Give the output layer a contiguous copy of its input.

    generate() asks for the last position's logits only, so the output layer gets a strided view of the hidden
    states; on a CPU, torch's bfloat16 linear on such a view of a (32, 1, 576) batch against SmolLM2's
    49,152-row output matrix peaked at 1.7 GB more memory than on a contiguous copy of the same few kilobytes
    (torch 2.13). The copy costs rows x hidden size values.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        head.register_forward_pre_hook(_contiguous_input)


def _contiguous_input(module, args):
    """A forward pre-hook; module-level so that the model still pickles (spawned processes, Ray)."""
    return (args[0].contiguous(), *args[1:]) if args else None


def _context_length(config) -> Optional[int]:
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _with_adapter(model, adapter: str):
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelLoadError("Loading a LoRA adapter needs peft: pip install peft") from None
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"The adapter folder {adapter!r} has no adapter_config.json. Give the folder a peft LoRA run saved."
        )
    return PeftModel.from_pretrained(model, str(path))


PROMPT_STYLE_FILE = "prompt_style.json"  # in an adapter folder: the registered prompt style it was trained with


def write_prompt_style(adapter_dir: Union[str, Path], block: Dict[str, Any]) -> None:
    """Record the prompt style (an `@misc` block) an adapter is trained with, beside its weights."""
    import srsly

    srsly.write_json(Path(adapter_dir) / PROMPT_STYLE_FILE, dict(block))


def read_prompt_style_block(adapter_dir: Union[str, Path]) -> Optional[Dict[str, Any]]:
    """The `@misc` block of the prompt style an adapter folder declares, or None if it declares none."""
    import srsly

    path = Path(adapter_dir) / PROMPT_STYLE_FILE
    if not path.is_file():
        return None
    block = srsly.read_json(path)
    if not isinstance(block, dict) or not isinstance(block.get("@misc"), str):
        raise ModelLoadError(f"{path} must hold a registered prompt style, e.g. "
                             '{"@misc": "spacy_codeie.CompactPrompt.v1"}.')
    return block
