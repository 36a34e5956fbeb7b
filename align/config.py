"""One training configuration for every method; recipes fill it from YAML files.

Every field is documented by the string literal right after it: ``field_docs`` reads
those (as TRL's configs do), and ``harness train`` builds its flags and help from them.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

RECIPES_DIR = Path(__file__).parent / "recipes"
# Fields that say how a run is executed, not what it trains: ignored when comparing runs.
RUNTIME_FIELDS = ("resume", "resume_ignore_config", "progress", "stop_after_steps", "output", "report_to")


@dataclass
class TrainConfig:
    # --- what to train
    method: str = "dpo"
    """What is trained: a registered loss (align/losses), or a method wrapping one (sdpo); see align.methods."""
    loss: dict = field(default_factory=dict)
    """The loss and its settings, e.g. {name: simpo, beta: 2.5, gamma: 1.0}. name defaults to the method (sdpo: dpo); settings left out take the loss's own defaults."""
    model: str = "tiny"
    """Local path or hub id of the starting policy; 'tiny' is the embedded CPU default."""
    data: list[str] = field(default_factory=list)
    """Preference data (repeatable): a JSONL/JSON/Parquet file, NAME=FILE to name its source, or a hub dataset id (align.data). Empty: generated arithmetic pairs."""
    output: str = "runs/default"
    """Directory for the final model, metrics.jsonl, run.json and checkpoints/."""
    reference_model: str | None = None
    """Frozen reference for losses that need one; default: the starting policy itself."""
    recipe: str | None = None
    """The recipe this configuration was built from (a packaged name or a file); recorded, not read back."""

    # --- method-specific settings (an error with any other method)
    sdpo_steps: int | None = None
    """sDPO: number of steps T. Several data sources: one step per source. One source: T chunks (default 2)."""
    sdpo_partition: Literal["easy-to-hard", "random", "given"] | None = None
    """sDPO: easy-to-hard (default: chunks ordered by the base model's reward accuracy), random (the paper's ablation) or given (data order)."""

    # --- optimisation
    lr: float = 5e-7
    """Peak learning rate."""
    epochs: int = 1
    """Passes over the data (when max_steps is -1)."""
    max_steps: int = -1
    """Optimizer steps to run; -1 means `epochs` full passes."""
    batch_size: int = 8
    """Pairs per micro-batch per process."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    warmup_ratio: float = 0.1
    """Share of the optimizer steps spent warming the learning rate up linearly."""
    lr_schedule: Literal["linear", "cosine", "constant"] = "linear"
    """Decay after warm-up: linear or cosine (to zero), or constant."""
    weight_decay: float = 0.0
    """AdamW weight decay (matrices only; biases and norms are not decayed)."""
    max_grad_norm: float = 1.0
    """Clip the gradient to this global norm."""
    seed: int = 42
    """Seed for data order and initialisation of anything random."""

    # --- sequence lengths (truncation policy in align.encoding)
    max_length: int = 512
    """Longest prompt+answer in tokens; longer pairs are truncated (see align/encoding.py)."""
    max_prompt_length: int = 256
    """Prompt tokens kept when a pair is too long (the last ones)."""

    # --- parameter-efficient fine-tuning (peft; align.modeling)
    lora_r: int = 0
    """LoRA rank; 0 = full fine-tuning."""
    lora_alpha: float = 16.0
    """LoRA scale numerator: the update is B·A·alpha/r."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch's input."""
    lora_target_modules: list[str] | None = None
    """Module names to adapt; default: every linear layer of attention and MLP (not the output head)."""
    load_in_4bit: bool = False
    """QLoRA: the frozen base in 4-bit NF4 (bitsandbytes, CUDA only); needs lora_r > 0."""
    merge_lora: bool = True
    """Save the merged full model in output (adapter in output/adapter); False: the adapter alone."""

    # --- runtime
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """auto = bf16 autocast on GPU, fp32 on CPU; or 'no', 'bf16', 'fp16'."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on big models."""
    full_logits: bool = False
    """Log-probs from the full [B, T, V] logits instead of chunked over answer tokens (same numbers, more memory)."""
    logging_steps: int = 1
    """Write a metrics.jsonl row every N optimizer steps."""
    save_steps: int = 50
    """Checkpoint every N optimizer steps (and at the end)."""
    save_total_limit: int = 2
    """Checkpoints kept in output/checkpoints."""
    resume: bool = False
    """Continue from the latest checkpoint in the output directory; refused if it was trained with other settings
    or data (see resume_ignore_config)."""
    resume_ignore_config: bool = False
    """Resume even if the checkpoint was trained with another configuration or data (recorded in run.json)."""
    skip_invalid: bool = False
    """Drop malformed pairs (and report how many) instead of stopping."""
    dedupe: bool = False
    """Drop pairs that repeat an earlier pair (same prompt, chosen and rejected); they are counted either way."""
    length_groups: int = 2
    """Run each micro-batch as this many length-sorted forwards: less padding, the same loss."""
    ref_batch_size: int = 16
    """Pairs per forward when precomputing reference log-probs."""
    progress: bool = True
    """Show a progress bar."""
    report_to: str = "none"
    """Experiment trackers, comma-separated: none, tensorboard, wandb, mlflow, trackio (through accelerate)."""
    stop_after_steps: int | None = None
    """Testing aid: stop (as if killed) after this many optimizer steps, after checkpointing."""

    def __post_init__(self):
        from align.methods import check_config

        for f, choices in choice_fields().items():
            value = getattr(self, f)
            if value is not None and value not in choices:
                raise ValueError(f"setting '{f}': must be one of {', '.join(choices)}, got {value!r}")
        self.loss = dict(self.loss or {})
        check_config(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@functools.cache
def field_docs() -> dict[str, str]:
    """Each TrainConfig field's docstring (the string literal after its declaration)."""
    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


@functools.cache
def field_types() -> dict[str, object]:
    return typing.get_type_hints(TrainConfig)


def choice_fields() -> dict[str, tuple]:
    out = {}
    for name, typ in field_types().items():
        args = typing.get_args(typ)
        lit = typ if typing.get_origin(typ) is Literal else next((a for a in args if typing.get_origin(a) is Literal), None)
        if lit is not None:
            out[name] = typing.get_args(lit)
    return out


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str) -> Path:
    """A path contains a slash or ends in .yaml/.yml; anything else is a packaged recipe name, so a file
    called like a packaged recipe in the working directory never shadows it."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"recipe file '{name_or_path}' not found")
        return path
    path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"recipe '{name_or_path}' not found; packaged recipes: {', '.join(list_recipes())} "
                                f"(a file path must contain '/' or end in .yaml)")
    return path


def load_recipe(name_or_path: str) -> dict:
    """A recipe is a YAML mapping of TrainConfig fields; its ``loss`` block names the loss and its settings."""
    path = recipe_path(name_or_path)
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of TrainConfig fields")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in values:
        if key not in known or key == "recipe":
            raise ValueError(f"{path}: field '{key}': not a TrainConfig field")
    loss = values.get("loss") or {}
    if not isinstance(loss, dict):
        raise ValueError(f"{path}: field 'loss': expected a mapping such as {{name: dpo, beta: 0.1}}")
    if loss.get("name"):
        from align.losses import get_loss

        try:
            get_loss(loss["name"]).resolve({k: v for k, v in loss.items() if k != "name"})
        except (KeyError, ValueError) as e:
            raise ValueError(f"{path}: field 'loss': {str(e).strip(chr(34))}") from None
        values.setdefault("method", loss["name"])
    return values


def build_config(recipe: str | None = None, *, loss: dict | None = None, **overrides) -> TrainConfig:
    """The recipe's values, then ``overrides`` (None means not given); ``loss`` settings update the recipe's."""
    values = load_recipe(recipe) if recipe else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["loss"] = {**(values.get("loss") or {}), **(loss or {})}
    if recipe:
        values["recipe"] = str(recipe_path(recipe)) if "/" in recipe or recipe.endswith((".yaml", ".yml")) else recipe
    return TrainConfig(**values)
