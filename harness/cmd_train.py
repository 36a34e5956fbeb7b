"""`harness train`: one preference-optimisation run.

Flags are generated from TrainConfig's field docs (align/config.py); a loss's settings are
given with --loss-arg NAME=VALUE and listed, with their docs and defaults, by
`harness train --method M --help`.
"""
from __future__ import annotations

import argparse
import os
import sys
import types
import typing

from harness.commands import registrar

# Fields with a hand-written flag, or none: what to train, where, and testing aids.
SPECIAL_FIELDS = ("method", "loss", "output", "recipe", "stop_after_steps")
# Shortcuts for common loss settings; they go through the same check as --loss-arg.
LOSS_ARG_ALIASES = {"--beta": ("beta", "β of the loss (same as --loss-arg beta=V)"),
                    "--dpop-lambda": ("dpop_lambda", "DPOP λ (same as --loss-arg dpop_lambda=V)")}


def _flag_type(typ):
    """(argparse kwargs) for a TrainConfig field type."""
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if typing.get_origin(typ) in (typing.Union, types.UnionType) and len(args) == 1:  # X | None
        typ = args[0]
    origin = typing.get_origin(typ)
    if typ is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        return {"choices": typing.get_args(typ)}
    if origin is list:
        return {"action": "append", "metavar": "SPEC"}
    return {"type": typ}


def add_config_arguments(p: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """One flag per TrainConfig field, help from the field's docstring; unset flags leave recipe values alone."""
    import dataclasses

    from align.config import TrainConfig, field_docs, field_types

    docs, types = field_docs(), field_types()
    g = p.add_argument_group("training settings (default: the recipe's value, else the one shown)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in SPECIAL_FIELDS or f.name in exclude:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        g.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                       help=f"{docs[f.name]} (default: {default})".replace("%", "%%"), **_flag_type(types[f.name]))


class _Help(argparse.Action):
    """--help that also lists the settings of the --method given before it (all losses otherwise)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        print("\n" + loss_help(getattr(namespace, "method", None)))
        parser.exit()


def loss_help(method: str | None) -> str:
    from align.losses import LOSSES, format_settings
    from align.methods import methods

    known = methods()
    chosen = [m for m in (method or "").split(",") if m in known]
    names = sorted({known[m].name for m in chosen if not known[m].wraps_loss})
    wrapper = any(known[m].wraps_loss for m in chosen)
    if not chosen or wrapper or method == "all":
        names = sorted(LOSSES)
    head = f"Loss settings for {method} (--loss-arg NAME=VALUE):" if chosen else "Loss settings (--loss-arg NAME=VALUE):"
    return head + "\n" + "\n".join(format_settings(LOSSES[n]) for n in names)


def add_train_arguments(p: argparse.ArgumentParser, methods: list[str], *, method_choices: bool = True,
                        exclude: tuple[str, ...] = ()) -> None:
    p.add_argument("-h", "--help", action=_Help, help="Show this help (with --method M first: M's loss settings).")
    p.add_argument("--method", required=True, choices=methods if method_choices else None,
                   help="What to train: " + ", ".join(methods) + ".")
    p.add_argument("--recipe", help="A packaged recipe name (align/recipes) or a YAML file path (containing '/' or "
                                    "ending in .yaml). Default: 'tiny' for the tiny model, else the method's paper recipe.")
    p.add_argument("--loss-arg", action="append", default=[], metavar="NAME=VALUE",
                   help="A setting of the method's loss (repeatable); see the list below. A setting the loss does not "
                        "take is an error (with several methods: any of their losses).")
    for flag, (_, text) in LOSS_ARG_ALIASES.items():
        p.add_argument(flag, type=float, help=text)
    p.add_argument("--sdpo-loss", dest="inner_loss", metavar="LOSS",
                   help="sDPO: the loss of every step (default dpo); the same as the loss block's name.")
    p.add_argument("--no-merge", dest="merge_lora", action="store_false", default=None,
                   help="LoRA: save the adapter alone in --output (same as --no-merge-lora).")
    p.add_argument("--verbose", action="store_true",
                   help="Show other libraries' progress bars, warnings and logs on the terminal "
                        "(default: they go to harness.log in the run directory).")
    add_config_arguments(p, exclude)


def loss_args(args) -> dict:
    out = {}
    for item in args.loss_arg:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--loss-arg '{item}': expected NAME=VALUE")
        out[name.strip().replace("-", "_")] = value.strip()
    for flag, (name, _) in LOSS_ARG_ALIASES.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            out[name] = value
    if args.inner_loss:
        out["name"] = args.inner_loss
    return out


def default_recipe(args, method: str) -> str | None:
    from align.losses import get_loss
    from align.methods import get_method

    if (args.model or "tiny") == "tiny":
        return "tiny"
    m = get_method(method)
    if m.wraps_loss and args.inner_loss and args.inner_loss != m.default_loss:
        return get_loss(args.inner_loss).recipe  # the inner loss's own paper settings
    return m.recipe


def config_from_args(args, method: str, drop: tuple[str, ...] = (), **extra):
    """The TrainConfig of ``method`` from the recipe and the flags; ``drop``: flags meant for other methods."""
    import dataclasses

    from align.config import TrainConfig, build_config

    recipe = args.recipe or default_recipe(args, method)
    names = {f.name for f in dataclasses.fields(TrainConfig)} - set(SPECIAL_FIELDS) - set(drop)
    overrides = {n: getattr(args, n, None) for n in names}
    overrides["output"] = getattr(args, "output", None)
    overrides.update(extra)
    cfg = build_config(recipe, method=method, loss=loss_args(args), **overrides)
    if int(os.environ.get("RANK", "0")) == 0 and cfg.progress:
        print(f"recipe: {cfg.recipe or 'none (TrainConfig defaults)'}", file=sys.stderr)
    return cfg


def _train(args) -> int:
    import time
    from pathlib import Path

    from align.data import DataError
    from align.methods import get_method
    from harness.console import quiet

    log = Path(args.output) / "harness.log"
    start = time.perf_counter()
    try:
        with quiet(log, verbose=args.verbose):
            cfg = config_from_args(args, args.method)
            method = get_method(cfg.method)
            result = method.train(cfg)
    except (DataError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        if method.report:
            print(method.report(cfg, result))
        elif result["completed"]:
            print(train_summary(result, cfg.output, time.perf_counter() - start))
        else:
            print(f"stopped after {result['steps']} of {result['total_steps']} steps; continue with --resume")
        if not args.verbose:
            print(f"other libraries' messages: {log}")
    return 0


def train_summary(run: dict, output: str, seconds: float) -> str:
    """The closing lines of a training run: budget, last logged metrics, where the model went."""
    import json
    from pathlib import Path

    rows = [json.loads(x) for x in (Path(output) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    last = rows[-1] if rows else {}
    lora = run.get("lora")
    where = f"model written to {output}"
    if lora:
        merged = run["config"].get("merge_lora", True)
        where = (f"merged model written to {output} (LoRA adapter in {output}/adapter)" if merged
                 else f"LoRA adapter written to {output} (base: {run['model_path']})")
        where += f"; {lora['trainable_params']:,} of {lora['total_params']:,} parameters trained"
    return (f"{run['loss']['name']}: {run['steps']} steps in {seconds:.1f} s; final loss {last.get('loss', float('nan')):.4f}, "
            f"reward accuracy {last.get('rewards/accuracies', float('nan')):.2f}, margin {last.get('rewards/margins', float('nan')):.3f}\n"
            f"{where}")
    return 0


@registrar
def register(sub) -> None:
    from align.methods import methods

    p = sub.add_parser("train", help="Train one preference-optimisation method.", add_help=False,
                       description="Train a model with one registered method on preference pairs. "
                                   "`harness train --method M --help` lists M's loss settings.")
    add_train_arguments(p, list(methods()))
    p.add_argument("--output", required=True, help="Directory for the final model, metrics.jsonl, run.json and checkpoints.")
    p.set_defaults(func=_train)
