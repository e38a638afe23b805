"""A GGUF file with a peft LoRA adapter folded into its weights, for runtimes that read GGUF (llama.cpp).

llama.cpp can apply a LoRA at run time, but then every layer pays for the adapter's extra matrix products; a
merged file runs at the base model's speed. The merge reads and writes numbers only (`gguf`, `safetensors`):
nothing in either file is executed.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Dict, Literal, Optional, Tuple, Union

from ..errors import ModelLoadError
from .adapter_files import read_adapter_folder

WeightType = Literal["q8_0", "f16", "bf16", "f32"]

# Bump when the bytes a merge writes change, so that cached files made by older code are not reused.
MERGE_FORMAT = 1

# peft module names of a Llama- or Gemma-3-architecture model -> the tensor names llama.cpp's converter gives them.
_LLAMA_TENSORS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
# The GGUF architectures a merge supports -> whether llama.cpp's converter reorders the rows of q and k for its
# rotary layout (Llama's interleaved halves); Gemma 3 keeps the Hugging Face row order.
MERGEABLE_ARCHITECTURES = {"llama": True, "gemma3": False}
_ADAPTER_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])(?:\.default)?\.weight$")


def merged_gguf(base: Union[str, Path], adapter: Union[str, Path], *, weights: WeightType = "q8_0",
                cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """The path of `base` with `adapter` merged, written once into `cache_dir` and reused while neither the
    base file nor the adapter's weights change."""
    base, adapter = Path(base).expanduser(), Path(adapter).expanduser()
    if not base.is_file():
        raise ModelLoadError(f"The GGUF file {str(base)!r} does not exist.")
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = folder / f"{base.stem}-{_merge_key(base, adapter, weights)}.{weights}.gguf"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.part")
        try:
            merge_lora_into_gguf(base, adapter, partial, weights=weights)
            partial.replace(target)  # atomic: a reader never sees half a file
        finally:
            partial.unlink(missing_ok=True)
    return target


def default_cache_dir() -> Path:
    """$SPACY_CODEIE_CACHE, else $XDG_CACHE_HOME/spacy_codeie, else ~/.cache/spacy_codeie; merged files go in
    its `gguf/` folder."""
    root = os.environ.get("SPACY_CODEIE_CACHE")
    if root:
        return Path(root).expanduser() / "gguf"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "spacy_codeie" / "gguf"


def _merge_key(base: Path, adapter: Path, weights: str) -> str:
    digest = hashlib.sha256(f"{MERGE_FORMAT}:{weights}:".encode())
    for path in (base, adapter / "adapter_config.json", adapter / "adapter_model.safetensors"):
        if not path.is_file():
            raise ModelLoadError(f"{str(path)!r} is missing: the adapter folder must be a peft LoRA run saved "
                                 "(adapter_config.json and adapter_model.safetensors).")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def merge_lora_into_gguf(base: Union[str, Path], adapter: Union[str, Path], out: Union[str, Path], *,
                         weights: WeightType = "q8_0") -> None:
    """Write `out`: `base` (a Llama- or Gemma-3-architecture GGUF) with the LoRA update scale * B @ A added to
    each weight the adapter targets, stored as `weights`. Tensors the adapter does not touch keep their bytes;
    metadata (tokenizer, chat template) is copied."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType
    from gguf.quants import dequantize, quantize

    storage = {"q8_0": (GGMLQuantizationType.Q8_0, LlamaFileType.MOSTLY_Q8_0),
               "f16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
               "bf16": (GGMLQuantizationType.BF16, LlamaFileType.MOSTLY_BF16),
               "f32": (GGMLQuantizationType.F32, LlamaFileType.ALL_F32)}
    if weights not in storage:
        raise ModelLoadError(f"weights={weights!r}: use one of {sorted(storage)}.")
    qtype, file_type = storage[weights]
    reader = GGUFReader(str(base))
    fields = reader.fields
    arch = fields["general.architecture"].contents() if "general.architecture" in fields else None
    if arch not in MERGEABLE_ARCHITECTURES:
        raise ModelLoadError(f"Merging an adapter into a GGUF file supports the 'llama' (SmolLM2, Llama) and "
                             f"'gemma3' architectures; {str(base)!r} is {arch!r}. Merge with peft and convert the "
                             "result instead.")
    reorder_rotary = MERGEABLE_ARCHITECTURES[arch]
    heads = int(fields[f"{arch}.attention.head_count"].contents())
    kv_heads = int(fields[f"{arch}.attention.head_count_kv"].contents()) if f"{arch}.attention.head_count_kv" \
        in fields else heads
    updates = lora_updates(adapter)
    writer = GGUFWriter(str(out), arch)
    for name, field in fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value: Any = field.contents()
        if name == "general.file_type":
            value = int(file_type)
        sub_type = field.types[-1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(name, value, field.types[0], sub_type=sub_type)
    used = set()
    for tensor in reader.tensors:
        update = updates.get(tensor.name)
        if update is None:
            writer.add_tensor(tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type)
            continue
        used.add(tensor.name)
        matrix = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if matrix.shape != update.shape:
            raise ModelLoadError(f"The adapter's update for {tensor.name} has shape {update.shape}, the base weight "
                                 f"{matrix.shape}: the adapter was trained on another base model.")
        if reorder_rotary and tensor.name.endswith(("attn_q.weight", "attn_k.weight")):
            # llama.cpp's converter reorders the rows of q and k for its rotary embedding layout
            update = _rotary_rows(update, heads if "attn_q" in tensor.name else kv_heads)
        merged = matrix + update
        if qtype == GGMLQuantizationType.F32:
            writer.add_tensor(tensor.name, merged)
        elif qtype == GGMLQuantizationType.F16:
            writer.add_tensor(tensor.name, merged.astype(np.float16))
        else:
            data = quantize(merged, qtype)
            writer.add_tensor(tensor.name, data, raw_shape=data.shape, raw_dtype=qtype)
    missing = sorted(set(updates) - used)
    if missing:
        raise ModelLoadError(f"The adapter adapts weights the GGUF file does not have ({', '.join(missing[:3])}): "
                             "it was trained on another base model.")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def lora_updates(adapter: Union[str, Path]) -> Dict[str, Any]:
    """GGUF tensor name -> the dense update scale * B @ A (rows out, columns in) of a peft LoRA folder."""
    import numpy as np
    from safetensors.numpy import load_file

    folder = Path(adapter).expanduser()
    config, weights_path = read_adapter_folder(folder)
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora") or config.get("rank_pattern") \
            or config.get("alpha_pattern") or config.get("modules_to_save"):
        raise ModelLoadError(f"{str(folder)!r}: only plain LoRA adapters (one rank and alpha, no DoRA, no extra "
                             "saved modules) can be merged into a GGUF file.")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / (rank ** 0.5) if config.get("use_rslora") else alpha / rank
    pairs: Dict[Tuple[int, str], Dict[str, Any]] = {}
    for key, value in load_file(str(weights_path)).items():
        found = _ADAPTER_KEY.search(key)
        if not found or found.group(2) not in _LLAMA_TENSORS:
            raise ModelLoadError(f"The adapter weight {key!r} is not one a Llama or Gemma 3 GGUF file has a place for.")
        pairs.setdefault((int(found.group(1)), found.group(2)), {})[found.group(3)] = value.astype(np.float32)
    updates = {}
    for (layer, module), pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise ModelLoadError(f"The adapter has only one of lora_A and lora_B for layer {layer} {module}.")
        updates[f"blk.{layer}.{_LLAMA_TENSORS[module]}.weight"] = scale * (pair["B"] @ pair["A"])
    return updates


def _rotary_rows(matrix, heads: int):
    """The rows of a q or k projection in the order llama.cpp's converter stores them: within each head, the
    two rotary halves interleaved."""
    rows = matrix.shape[0]
    return matrix.reshape(heads, 2, rows // heads // 2, *matrix.shape[1:]).swapaxes(1, 2).reshape(matrix.shape)
