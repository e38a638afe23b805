"""The training recipe config (.cfg, confection): sections -> typed settings, with command-line overrides.

One file holds a whole recipe ([paths], [data], [augment], [xling], [model], [lora], [sft], [dpo], [evaluate]),
so a run is reproducible from the config alone; `--sft.learning_rate 1e-4` style overrides change a value
for one run, as with `spacy train`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Type, TypeVar, Union

from confection import Config

from ..errors import CodeIEError
from .augment import AugmentSettings
from .fields import from_section
from .records import DatasetSpec

T = TypeVar("T")


def load_config(path: Union[str, Path], overrides: Optional[Dict[str, Any]] = None) -> Config:
    path = Path(path)
    if not path.is_file():
        raise CodeIEError(f"The recipe config {str(path)!r} does not exist.")
    return Config().from_disk(path, overrides=overrides or {}, interpolate=True)


def section(config: Config, name: str) -> Dict[str, Any]:
    value = config.get(name)
    if value is None:
        raise CodeIEError(f"The recipe config has no [{name}] section.")
    return dict(value)


def settings(cls: Type[T], config: Config, name: str) -> T:
    """A settings dataclass from a section; unknown keys are an error, missing ones take the defaults."""
    return from_section(cls, dict(config.get(name) or {}), f"[{name}]")


@dataclass(frozen=True)
class DataSettings:
    """[data]'s own values; its blocks (datasets, prompt, conversations) are read by the functions for them."""

    seed: int = 0  # draws the training views: renames, splits, negative types, groupings, order
    dev_seed: Optional[int] = None  # draws the held-out dev split; None: `seed`
    window_size: int = 1000

    def __post_init__(self) -> None:
        given = {"seed": self.seed, "window_size": self.window_size}
        if self.dev_seed is not None:
            given["dev_seed"] = self.dev_seed
        for name, value in given.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise CodeIEError(f"[data] {name} must be a whole number, not {value!r}.")
        if self.window_size < 1:
            raise CodeIEError(f"[data] window_size must be at least 1 character, not {self.window_size}.")

    @property
    def split_seed(self) -> int:
        return self.seed if self.dev_seed is None else self.dev_seed


_DATA_BLOCKS = ("datasets", "prompt", "conversations")


def data_settings(config: Config) -> DataSettings:
    """[data]'s own values; a key that is neither one of them nor one of its blocks is an error, not ignored."""
    data = section(config, "data")
    return from_section(DataSettings, {k: v for k, v in data.items() if k not in _DATA_BLOCKS}, "[data]")


def datasets(config: Config) -> List[DatasetSpec]:
    data = section(config, "data")
    specs = data.get("datasets") or {}
    if not specs:
        raise CodeIEError("[data.datasets] lists no dataset. Add a [data.datasets.NAME] block with path and schema.")
    return [DatasetSpec.from_dict(name, dict(spec)) for name, spec in specs.items()]


def augment_settings(config: Config) -> AugmentSettings:
    return settings(AugmentSettings, config, "augment")


def model_block(config: Config, name: str = "model") -> Dict[str, Any]:
    """The [model] block as written (an @llm_models function and its arguments)."""
    block = section(config, name)
    if "@llm_models" not in block:
        raise CodeIEError(f"[{name}] needs '@llm_models', e.g. \"spacy_codeie.HuggingFace.v1\" with its 'name'.")
    return block


def resolve_model(block: Dict[str, Any]):
    from spacy.util import registry

    return registry.resolve({"model": block})["model"]


def prompt_style(config: Config):
    """The [data.prompt] block (an @misc prompt style) resolved; KnowCoderPrompt.v1 when there is none."""
    from spacy.util import registry

    from ..prompting.knowcoder import KnowCoderPrompt

    block = (config.get("data") or {}).get("prompt")
    if not block:
        return KnowCoderPrompt()
    return registry.resolve({"prompt": dict(block)})["prompt"]
