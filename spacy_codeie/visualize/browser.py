"""Headless Chromium from the standard library: screenshots of pages and their DOM after scripts ran.

Used by the tests and by `examples/visualize_screenshots.py`; nothing here is needed to render or open a page.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Union

from .views import VisualizeError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


class BrowserNotFoundError(VisualizeError):
    """No Chromium (or Chrome) binary was found."""


def find_chromium() -> Optional[str]:
    """The browser to drive: $CODEIE_CHROMIUM, else the first of CANDIDATES on PATH."""
    configured = os.environ.get("CODEIE_CHROMIUM")
    if configured:
        return configured if shutil.which(configured) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _command(binary: str, width: int, height: int, extra: Sequence[str], profile: str) -> List[str]:
    cmd = [binary, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--mute-audio",
           "--force-device-scale-factor=1", f"--window-size={width},{height}", f"--user-data-dir={profile}",
           "--virtual-time-budget=15000", "--run-all-compositor-stages-before-draw"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    return cmd + list(extra)


def _run(extra: Sequence[str], target: Union[str, Path], width: int, height: int, timeout: float) -> str:
    binary = find_chromium()
    if binary is None:
        raise BrowserNotFoundError("No Chromium found: install it (Debian: apt-get install chromium) or set "
                                   "CODEIE_CHROMIUM to the browser's path.")
    url = Path(target).resolve().as_uri() if not str(target).startswith(("file:", "http:", "https:")) else str(target)
    with tempfile.TemporaryDirectory(prefix="codeie-chromium-") as profile:
        done = subprocess.run(_command(binary, width, height, extra, profile) + [url], capture_output=True,
                              text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise VisualizeError(f"Chromium exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def screenshot(page: Union[str, Path], png: Union[str, Path], *, width: int = 1200, height: int = 900,
               timeout: float = 120) -> Path:
    """A PNG of the page's first `width` x `height` pixels, after its scripts ran."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={png}"], page, width, height, timeout)
    if not png.is_file():
        raise VisualizeError(f"Chromium wrote no screenshot to {png}.")
    return png


def dump_dom(page: Union[str, Path], *, width: int = 1200, height: int = 900, timeout: float = 120) -> str:
    """The page's DOM as HTML once its scripts ran (what they drew included)."""
    return _run(["--dump-dom"], page, width, height, timeout)
