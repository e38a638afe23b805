"""Draw docs/default_model_curve.png from default_model_curve.json (the recorded dev points of every stage).

    .venv/bin/python docs/results/plot_default_curve.py
"""
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    data = json.loads((HERE / "default_model_curve.json").read_text(encoding="utf8"))
    points = data["points"]
    fig, (loss_ax, f1_ax) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    for key, name in (("dev_loss_a", "dev loss, stages 1-2 split"), ("dev_loss_b", "dev loss, stages 3-5 split")):
        series = [(p["step"], p[key]) for p in points if key in p]
        loss_ax.plot(*zip(*series), marker=".", linewidth=1, label=name)
    f1 = [(p["step"], p["dev_f1_sum"]) for p in points if "dev_f1_sum" in p]
    f1_ax.plot(*zip(*f1), marker="o", linewidth=1, color="tab:green")
    for ax in (loss_ax, f1_ax):
        for step in list(data["stage_starts"].values())[1:]:
            ax.axvline(step, color="grey", linewidth=0.5, linestyle=":")
        ax.grid(alpha=0.3)
    loss_ax.set_ylabel("dev loss")
    loss_ax.legend(fontsize=8)
    loss_ax.set_title("embedded default: dev curve over its training stages (dotted: a new stage)", fontsize=10)
    f1_ax.set_ylabel("sum of 7 dev F1s (%)")
    f1_ax.set_xlabel("optimizer steps since the start")
    fig.tight_layout()
    fig.savefig(HERE.parent / "default_model_curve.png", dpi=110)


if __name__ == "__main__":
    main()
