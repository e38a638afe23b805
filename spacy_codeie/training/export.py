"""Export a trained LoRA adapter for shipping: the peft files, with weights stored in half precision.

LoRA weights lose nothing that matters in float16 and take half the space; peft casts them back to the base
model's dtype on load.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Union

from ..errors import CodeIEError

WEIGHTS = "adapter_model.safetensors"


def export_adapter(source: Union[str, Path], target: Union[str, Path], dtype: str = "float16") -> Dict[str, int]:
    """Copy `source` (a peft adapter folder) to `target` with its weights cast to `dtype`. Returns byte sizes."""
    import torch
    from safetensors.torch import load_file, save_file

    source, target = Path(source), Path(target)
    if not (source / "adapter_config.json").is_file() or not (source / WEIGHTS).is_file():
        raise CodeIEError(f"{str(source)!r} is not a peft adapter folder (adapter_config.json, {WEIGHTS}).")
    cast = getattr(torch, dtype, None)
    if not isinstance(cast, torch.dtype):
        raise CodeIEError(f"dtype={dtype!r} is not a torch dtype; use float16, bfloat16 or float32.")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "adapter_config.json", target / "adapter_config.json")
    tensors = {k: v.to(cast).contiguous() for k, v in load_file(str(source / WEIGHTS)).items()}
    save_file(tensors, str(target / WEIGHTS), metadata={"format": "pt"})
    return {"source_bytes": (source / WEIGHTS).stat().st_size, "target_bytes": (target / WEIGHTS).stat().st_size}
