"""Export a trained LoRA adapter for shipping: the peft files, with weights stored in half precision.

LoRA weights lose nothing that matters in float16 and take half the space; peft casts them back to the base
model's dtype on load.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, Optional, Union

from ..errors import CodeIEError
from ..models.adapter_files import CONFIG, WEIGHTS, read_adapter_folder
from ..models.huggingface import PROMPT_STYLE_FILE


def export_adapter(source: Union[str, Path], target: Union[str, Path], dtype: str = "float16",
                   base_model: Optional[str] = None) -> Dict[str, int]:
    """Copy `source` (a peft adapter folder) to `target` with its weights cast to `dtype`. Returns byte sizes.

    `base_model` replaces the base model path peft recorded (often a local folder) by a name worth shipping.
    """
    import torch
    from safetensors.torch import load_file, save_file

    source, target = Path(source), Path(target)
    config, _ = read_adapter_folder(source)
    cast = getattr(torch, dtype, None)
    if not isinstance(cast, torch.dtype):
        raise CodeIEError(f"dtype={dtype!r} is not a torch dtype; use float16, bfloat16 or float32.")
    target.mkdir(parents=True, exist_ok=True)
    if base_model:
        config["base_model_name_or_path"] = base_model
    (target / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf8")
    tensors = {k: v.to(cast).contiguous() for k, v in load_file(str(source / WEIGHTS)).items()}
    save_file(tensors, str(target / WEIGHTS), metadata={"format": "pt"})
    if (source / PROMPT_STYLE_FILE).is_file():  # the style the adapter was trained with travels with it
        shutil.copyfile(source / PROMPT_STYLE_FILE, target / PROMPT_STYLE_FILE)
    return {"source_bytes": (source / WEIGHTS).stat().st_size, "target_bytes": (target / WEIGHTS).stat().st_size}
