"""The two files of a saved peft adapter, checked and read in one place (merging, exporting, continuing)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Tuple, Union

from ..errors import ModelLoadError

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


def read_adapter_folder(folder: Union[str, Path], what: str = "") -> Tuple[Dict[str, Any], Path]:
    """(the adapter's config, the path of its weights); `what` names the setting the folder came from."""
    folder = Path(folder).expanduser()
    config_path, weights = folder / CONFIG, folder / WEIGHTS
    if not config_path.is_file() or not weights.is_file():
        raise ModelLoadError(f"{what + ' ' if what else ''}{str(folder)!r} is not a peft adapter folder ({CONFIG} "
                             f"and {WEIGHTS}).")
    return json.loads(config_path.read_text(encoding="utf8")), weights
