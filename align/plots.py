"""PNG plots of training curves (people look at curves rather than read JSONL)."""
from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_training_curves(metrics_path, png_path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    steps = [r["step"] for r in rows]
    panels = [
        ("loss", ["loss"]),
        ("log-prob (summed)", ["logps/chosen", "logps/rejected"]),
        ("implicit reward", ["rewards/chosen", "rewards/rejected", "rewards/margins"]),
        ("reward accuracy", ["rewards/accuracies"]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (name, keys) in zip(axes, panels):
        for k in keys:
            ax.plot(steps, [r[k] for r in rows], label=k.split("/")[-1])
        ax.set_title(name)
        ax.set_xlabel("step")
        if len(keys) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return Path(png_path)
