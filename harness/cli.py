"""The `harness` command line. Each subcommand lives in its own small function."""
from __future__ import annotations

import argparse
import sys


def _make_tiny_model(args: argparse.Namespace) -> int:
    from align.tiny import make_tiny_model

    texts = None
    if args.text:
        texts = [line for f in args.text for line in open(f, encoding="utf-8").read().split("\n\n") if line.strip()]
    path = make_tiny_model(args.output, texts, pretrain_steps=args.steps, seed=args.seed)
    print(f"tiny model written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Train preference-optimisation variants and evaluate them.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-tiny-model", help="Build the small local Llama used as the CPU default and in CI.")
    p.add_argument("--output", required=True, help="Directory to write the model and tokenizer into.")
    p.add_argument("--text", action="append", help="Text file(s) to pre-train on (paragraphs split by blank lines). Default: generated arithmetic dialogues.")
    p.add_argument("--steps", type=int, default=300, help="Pre-training steps (default 300: about 3-4 minutes on 2 idle CPU cores, "
                                                         "longer when they are shared).")
    p.add_argument("--seed", type=int, default=0, help="Seed for the generated corpus, the initial weights and the "
                                                       "pre-training batches (default 0; the same seed gives the same weights).")
    p.set_defaults(func=_make_tiny_model)

    _register_optional(sub)
    return parser


def _register_optional(sub) -> None:
    """Subcommands defined in other modules register themselves here."""
    from harness import commands

    for register in commands.REGISTRARS:
        register(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
