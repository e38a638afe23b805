"""Stable colours per label: the same label gets the same colour in every page, run and process."""
from __future__ import annotations

import re
import zlib
from typing import Mapping, Optional

from .views import VisualizeError

# Light colours that keep dark text readable; a label's colour is its CRC-32 modulo the palette size.
PALETTE = (
    "#7aecec", "#bfeeb7", "#feca74", "#ff9561", "#aa9cfc", "#c887fb", "#9cc9cc", "#ffeb80",
    "#ff8197", "#f0d0ff", "#bfe1d9", "#e4e7d2", "#d9c2a6", "#a8d0ff", "#ffc6e6", "#c3f27c",
)
# The usual NER labels get distinct colours (close to displaCy's); other labels are hashed into PALETTE.
KNOWN = {
    "PER": "#aa9cfc", "PERSON": "#aa9cfc", "Peop": "#aa9cfc", "ORG": "#7aecec", "Org": "#7aecec",
    "LOC": "#feca74", "GPE": "#feca74", "Loc": "#feca74", "MISC": "#e4e7d2", "Other": "#e4e7d2",
    "DATE": "#bfe1d9", "TIME": "#bfe1d9", "NORP": "#c887fb", "FAC": "#9cc9cc", "PRODUCT": "#bfeeb7",
    "EVENT": "#ffeb80", "MONEY": "#e4e7d2",
}
FALLBACK = "#ddd"
_SAFE_CSS_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]+|(rgb|rgba|hsl|hsla)\([0-9.,%\s/]+\))$")


def label_color(label: str, overrides: Optional[Mapping[str, str]] = None) -> str:
    """The colour of `label`: from `overrides` (like displacy's `colors` option), else KNOWN, else the palette."""
    if overrides and label in overrides:
        color = str(overrides[label])
        if not _SAFE_CSS_COLOR.match(color.strip()):
            raise VisualizeError(f"The colour {color!r} for label {label!r} is not a CSS colour this view accepts; "
                                 f"use a hex code ('#7aecec'), a name ('gold') or rgb()/hsl().")
        return color.strip()
    if not label:
        return FALLBACK
    if label in KNOWN:
        return KNOWN[label]
    return PALETTE[zlib.crc32(label.encode("utf8")) % len(PALETTE)]
