"""PNG plots for training and evaluation (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from ..errors import CodeIEError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CodeIEError("Plots need matplotlib: pip install 'spacy-codeie[train]'") from None
    return plt


def plot_loss(points: Sequence[Tuple[float, float]], path: Union[str, Path], title: str = "training loss",
              dev: Sequence[Tuple[float, float]] = ()) -> Path:
    """Training loss per logged step; the dev loss at each checkpoint beside it when there is one."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", linewidth=1, label="training")
    if dev:
        ax.plot([p[0] for p in dev], [p[1] for p in dev], marker="o", linewidth=1.5, label="dev")
        ax.legend(fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (completion tokens)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def plot_scores(table: Dict[str, Dict[str, float]], metrics: List[str], path: Union[str, Path],
                title: str = "strict F1") -> Path:
    """Grouped bars: one group per dataset, one bar per metric (missing metrics are left out)."""
    plt = _pyplot()
    names = list(table)
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(names) + 2), 3.8))
    width = 0.8 / max(1, len(metrics))
    for k, metric in enumerate(metrics):
        xs = [i + k * width for i, n in enumerate(names) if table[n].get(metric) is not None]
        ys = [100 * table[n][metric] for n in names if table[n].get(metric) is not None]
        ax.bar(xs, ys, width=width, label=metric)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
    ax.set_xticklabels(names, rotation=20, fontsize=8)
    ax.set_ylabel("F1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path)


def _save(plt, fig, path: Union[str, Path]) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
