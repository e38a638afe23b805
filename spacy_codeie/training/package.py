"""The package step: a self-contained spaCy pipeline folder (schema inline, adapter inside) and `spacy package`.

The saved config names the base model the way the recipe does (a package, local folder or hub id) with no
adapter path; the adapter is written into the pipeline's codeie folder and put back on load, so the folder
or wheel works on any machine that can load the base model.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..errors import CodeIEError
from ..models.contract import CarriesAdapter
from ..schema.loaders import schema_from_json

PIPELINE_DEFAULTS: Dict[str, Any] = {"name": "codeie_pipeline", "version": "0.0.1", "lang": "xx", "schema": None,
                     "description": "", "requirements": []}


def build_pipeline(package_cfg: Dict[str, Any], model: Dict[str, Any], adapter: Optional[Union[str, Path]]):
    """A blank pipeline with a codeie component for the packaged schema, with the adapter on its model."""
    from ..readers import blank_pipeline

    unknown = set(package_cfg) - set(PIPELINE_DEFAULTS)
    if unknown:
        raise CodeIEError(f"[package] has unknown settings {sorted(unknown)}. Known: {sorted(PIPELINE_DEFAULTS)}.")
    cfg = {**PIPELINE_DEFAULTS, **package_cfg}
    if not cfg["schema"]:
        raise CodeIEError("[package] needs a 'schema' (a .json or .py schema file) for the packaged pipeline.")
    path = Path(cfg["schema"])
    if path.suffix == ".py":
        from ..schema.loaders import schema_from_file

        schema = schema_from_file(path)
    else:
        schema = schema_from_json(path)
    model_cfg = {k: v for k, v in model.items() if k != "adapter"}
    nlp = blank_pipeline(cfg["lang"])
    component = nlp.add_pipe("codeie", config={
        "schema": {"@misc": "spacy_codeie.schema_from_dict.v1", **schema.to_dict()},
        "model": model_cfg,
    })
    if adapter:
        backend = getattr(component, "model", None)
        if not isinstance(backend, CarriesAdapter):
            raise CodeIEError(f"The model {model.get('@llm_models')!r} cannot carry a LoRA adapter.")
        backend.load_adapter(adapter)
    nlp.meta.update({"name": cfg["name"], "version": cfg["version"], "description": cfg["description"],
                     "requirements": list(cfg["requirements"])})
    return nlp


def package_pipeline(package_cfg: Dict[str, Any], model: Dict[str, Any], adapter: Optional[Union[str, Path]],
                     output: Union[str, Path], build: Optional[str] = "sdist") -> Dict[str, str]:
    """Write `<output>/pipeline` and, unless build is None, `spacy package` it into `<output>/dist`."""
    output = Path(output)
    nlp = build_pipeline(package_cfg, model, adapter)
    pipeline_dir = output / "pipeline"
    output.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(pipeline_dir)
    result = {"pipeline": str(pipeline_dir)}
    if build:
        dist = output / "dist"
        dist.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "spacy", "package", str(pipeline_dir), str(dist), "--build", build, "--force"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise CodeIEError(f"`spacy package` failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        result["dist"] = str(dist)
    return result
