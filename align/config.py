"""One training configuration for every method; recipes fill it from YAML files."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

RECIPES_DIR = Path(__file__).parent / "recipes"


@dataclass
class TrainConfig:
    # --- what to train
    method: str = "dpo"
    """Registered loss name (align.losses): dpo, dpop, dgpo. sdpo wraps one of them."""
    model: str = "tiny"
    """Local path or hub id of the starting policy; 'tiny' is the embedded CPU default."""
    data: list[str] = field(default_factory=list)
    """Preference data specs (align.data); empty means the generated arithmetic pairs."""
    output: str = "runs/default"
    """Directory for the final model, metrics.jsonl, run.json and checkpoints/."""
    reference_model: str | None = None
    """Frozen reference for DPO-family losses; default: the starting policy itself."""

    # --- loss hyperparameters (None = the loss's own default, from its paper)
    beta: float | None = None
    """DPO β (Rafailov et al. 2023); Zephyr uses 0.1, Smaug DPOP 0.3, DGPO 2.5."""
    dpop_lambda: float | None = None
    """DPOP λ (Pal et al. 2024, Smaug): weight of the chosen-likelihood penalty; 50."""
    penalty_inside_beta: bool | None = None
    """DPOP: True is the authors' corrected form (λ inside β); False as first printed."""
    length_normalize: bool | None = None
    """DGPO: use per-token mean log-probs (True) or raw summed ones (the ablation)."""
    detach_weight: bool | None = None
    """DGPO: stop the gradient through the weight π_w+π_l (the ablation)."""

    # --- optimisation
    lr: float = 5e-7
    """Peak learning rate (Zephyr DPO: 5e-7)."""
    epochs: int = 1
    max_steps: int = -1
    """Optimizer steps to run; -1 means `epochs` full passes."""
    batch_size: int = 8
    """Pairs per micro-batch per process."""
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    lr_schedule: str = "linear"
    """Decay after warm-up: linear or cosine (to zero), or constant."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42

    # --- sequence lengths (truncation policy in align.encoding)
    max_length: int = 512
    max_prompt_length: int = 256

    # --- runtime
    mixed_precision: str = "auto"
    """auto = bf16 autocast on GPU, fp32 on CPU; or 'no', 'bf16', 'fp16'."""
    gradient_checkpointing: bool = False
    full_logits: bool = False
    """Log-probs from the full [B, T, V] logits instead of chunked over answer tokens (same numbers, more memory)."""
    logging_steps: int = 1
    save_steps: int = 50
    """Checkpoint every N optimizer steps (and at the end)."""
    save_total_limit: int = 2
    resume: bool = False
    skip_invalid: bool = False
    length_groups: int = 2
    """Run each micro-batch as this many length-sorted forwards: less padding, the same loss."""
    ref_batch_size: int = 16
    """Pairs per forward when precomputing reference log-probs."""
    progress: bool = True
    stop_after_steps: int | None = None
    """Testing aid: stop (as if killed) after this many optimizer steps, after checkpointing."""

    def loss_overrides(self) -> dict:
        names = ("beta", "dpop_lambda", "penalty_inside_beta", "length_normalize", "detach_weight")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str) -> dict:
    """A recipe is a flat YAML mapping of TrainConfig fields."""
    path = Path(name_or_path)
    if not path.exists():
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"recipe '{name_or_path}' not found; known: {', '.join(list_recipes())}")
    values = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in values:
        if key not in known:
            raise ValueError(f"{path}: field '{key}': not a TrainConfig field")
    return values


def build_config(recipe: str | None = None, **overrides) -> TrainConfig:
    values = load_recipe(recipe) if recipe else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)
