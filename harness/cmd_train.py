"""`harness train`: one preference-optimisation run."""
from __future__ import annotations

import argparse
import os
import sys

from harness.commands import registrar

OVERRIDES = [
    ("--beta", float, "β: how far the policy may move from the reference (DPO 0.1, DPOP 0.3, DGPO 2.5 by default)."),
    ("--dpop-lambda", float, "DPOP λ: weight of the penalty on the chosen answer falling below the reference (default 50)."),
    ("--lr", float, "Peak learning rate."),
    ("--epochs", int, "Passes over the data."),
    ("--max-steps", int, "Stop after this many optimizer steps (overrides --epochs)."),
    ("--batch-size", int, "Pairs per micro-batch on each device."),
    ("--grad-accum", int, "Micro-batches per optimizer step."),
    ("--max-length", int, "Longest prompt+answer in tokens; longer pairs are truncated (see align/encoding.py)."),
    ("--max-prompt-length", int, "Prompt tokens kept when a pair is too long (the last ones)."),
    ("--seed", int, "Seed for data order and initialisation of anything random."),
    ("--save-steps", int, "Checkpoint every N optimizer steps."),
]


def add_train_arguments(p: argparse.ArgumentParser, methods: list[str]) -> None:
    p.add_argument("--method", required=True, choices=methods, help="Which preference loss to train with.")
    p.add_argument("--model", default="tiny", help="Starting model: a local directory or a hub id. Default: the embedded tiny model.")
    p.add_argument("--data", action="append", default=[], metavar="SPEC",
                   help="Preference data: a JSONL/JSON/Parquet file, NAME=FILE to name its source, or a hub dataset id. "
                        "Repeat for several. Default: generated arithmetic pairs.")
    p.add_argument("--recipe", help="A recipe name (align/recipes) or YAML file with paper hyperparameters. "
                                    "Default: 'tiny' for the tiny model, else the method's paper recipe.")
    p.add_argument("--reference-model", help="Frozen reference model (default: the starting model).")
    for flag, typ, text in OVERRIDES:
        p.add_argument(flag, type=typ, help=text)
    p.add_argument("--skip-invalid", action="store_true", help="Drop malformed pairs (and report how many) instead of stopping.")
    p.add_argument("--gradient-checkpointing", action="store_true", help="Trade compute for memory on big models.")
    p.add_argument("--full-logits", action="store_true",
                   help="Log-probs from the full [B, T, V] logits (today's path, for comparison); default: chunked.")
    p.add_argument("--no-progress", action="store_true", help="No progress bar.")


PAPER_RECIPES = {"dpo": "zephyr-dpo", "dpop": "smaug-dpop", "dgpo": "dgpo", "sdpo": "sdpo"}


def config_from_args(args, method: str):
    from align.config import build_config

    recipe = args.recipe or ("tiny" if args.model == "tiny" else PAPER_RECIPES.get(method))
    names = (flag.lstrip("-").replace("-", "_") for flag, _, _ in OVERRIDES)
    overrides = {name: getattr(args, name) for name in names}
    return build_config(
        recipe, method=method, model=args.model, data=args.data or None, output=args.output,
        reference_model=args.reference_model, resume=args.resume or None, skip_invalid=args.skip_invalid or None,
        gradient_checkpointing=args.gradient_checkpointing or None, full_logits=args.full_logits or None, progress=not args.no_progress, **overrides,
    )


def _train(args) -> int:
    from align.data import DataError
    from align.trainer import train

    try:
        if args.method == "sdpo":
            return _train_sdpo(args)
        cfg = config_from_args(args, args.method)
        run = train(cfg)
    except (DataError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        if run["completed"]:
            print(f"model written to {cfg.output} ({run['steps']} steps)")
        else:
            print(f"stopped after {run['steps']} of {run['total_steps']} steps; continue with --resume")
    return 0


def _train_sdpo(args) -> int:
    from align.sdpo import format_gamma_table, train_sdpo

    # The sDPO recipe is DPO-based; another inner loss keeps its own paper recipe.
    method = "sdpo" if args.sdpo_loss == "dpo" else args.sdpo_loss
    cfg = config_from_args(args, method)
    state = train_sdpo(cfg, loss=args.sdpo_loss, steps=args.sdpo_steps, partition=args.sdpo_partition)
    if not state["completed"]:
        print(f"sDPO stopped before the end; continue with --resume ({cfg.output}/sdpo.json)")
        return 0
    print(format_gamma_table(state))
    print(f"sDPO: {len(state['chunks'])} steps; final model written to {cfg.output} (steps in {cfg.output}/step-*)")
    return 0


@registrar
def register(sub) -> None:
    from align.losses import LOSSES

    p = sub.add_parser("train", help="Train one preference-optimisation method.",
                       description="Train a model with DPO, DPOP or DGPO on preference pairs, or stepwise (sDPO) with one of them.")
    add_train_arguments(p, sorted(LOSSES) + ["sdpo"])
    g = p.add_argument_group("sDPO (--method sdpo)")
    g.add_argument("--sdpo-loss", default="dpo", choices=sorted(LOSSES), help="Loss of every sDPO step (default dpo).")
    g.add_argument("--sdpo-steps", type=int, help="Number of steps T. Several data sources: one step per source. "
                                                  "One source: T chunks (default 2).")
    g.add_argument("--sdpo-partition", default="easy-to-hard", choices=["easy-to-hard", "random", "given"],
                   help="easy-to-hard: chunks ordered by the base model's reward accuracy (the paper's default); "
                        "random: the paper's ablation; given: the order the data was supplied in.")
    p.add_argument("--output", required=True, help="Directory for the final model, metrics.jsonl, run.json and checkpoints.")
    p.add_argument("--resume", action="store_true", help="Continue from the latest checkpoint in --output.")
    p.set_defaults(func=_train)
