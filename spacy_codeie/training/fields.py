"""Settings dataclasses from config sections, with unknown keys reported instead of ignored."""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Dict, Type, TypeVar, cast

from ..errors import CodeIEError

T = TypeVar("T")


def from_section(cls: Type[T], data: Dict[str, Any], where: str, **fixed: Any) -> T:
    """`cls(**fixed, **data)`, after checking that every key of `data` is a field of `cls`."""
    known = {f.name for f in fields(cast(Any, cls))} - set(fixed)
    unknown = set(data) - known
    if unknown:
        raise CodeIEError(f"{where} has unknown settings {sorted(unknown)}. Known: {sorted(known)}.")
    return cls(**fixed, **data)
