"""Experiment trackers (TensorBoard, Weights & Biases, MLflow, Trackio) through accelerate.

They receive the run configuration once and, at every logging step, the same row that goes to
``metrics.jsonl``. TensorBoard writes into ``<output>/tracking/``; the others go where their own
settings (environment variables such as WANDB_PROJECT, MLFLOW_TRACKING_URI) send them.
"""
from __future__ import annotations

from pathlib import Path

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}  # name -> pip package
PROJECT = "pref-harness"


def parse_report_to(value: str | None) -> list[str]:
    """``"tensorboard,wandb"`` -> ["tensorboard", "wandb"]; "none" -> []. Unknown or uninstalled: ValueError."""
    from accelerate.utils import imports

    names = [n.strip().lower() for n in (value or "none").split(",") if n.strip()]
    if names == ["none"] or not names:
        return []
    unknown = [n for n in names if n not in TRACKERS]
    if unknown or "none" in names:
        raise ValueError(f"report_to: unknown tracker(s) {', '.join(unknown) or 'none (with others)'}; "
                         f"choose none or any of {', '.join(TRACKERS)}, comma-separated")
    for n in names:
        if not getattr(imports, f"is_{n}_available")():
            raise ValueError(f"report_to: {n} is not installed (pip install {TRACKERS[n]})")
    return list(dict.fromkeys(names))


def tracking_dir(output: str | Path) -> Path:
    return Path(output) / "tracking"


def flat_config(config: dict) -> dict:
    """Tracker-safe hyperparameters: scalars kept, lists joined, None as 'none'."""
    out = {}
    for k, v in config.items():
        if isinstance(v, (list, tuple)):
            v = ",".join(str(x) for x in v)
        elif v is None:
            v = "none"
        elif not isinstance(v, (bool, int, float, str)):
            v = str(v)
        out[k] = v
    return out


def start(acc, config: dict, run_name: str, resumed_step: int = 0) -> None:
    """Open the accelerator's trackers; a resumed TensorBoard run drops events after the checkpoint."""
    init_kwargs = {"wandb": {"name": run_name}, "mlflow": {"run_name": run_name}}
    if resumed_step:
        init_kwargs["tensorboard"] = {"purge_step": resumed_step + 1}
    acc.init_trackers(PROJECT, config=flat_config(config), init_kwargs=init_kwargs)
