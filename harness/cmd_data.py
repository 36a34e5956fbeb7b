"""`harness data BUILDER`: build a preference JSONL from a raw dataset in the data directory."""
from __future__ import annotations

import json
import os
from pathlib import Path

from harness.commands import registrar

DEFAULT_INPUTS = {
    "gsm8k-corrupt": ["gsm8k/train.jsonl"],
    "mc-pairs": ["mmlu/dev", "mmlu/val"],
    "hh-rlhf": ["hh_rlhf/harmless-base/test.jsonl.gz"],
}
HELP = {
    "gsm8k-corrupt": "GSM8K solution against the same solution with one intermediate calculation result changed "
                     "(MetaMath-style low-edit-distance pairs, DPOP paper).",
    "mc-pairs": "Multiple-choice CSV (question,A,B,C,D,answer; MMLU layout) -> correct option against each wrong one.",
    "hh-rlhf": "Raw Anthropic HH-RLHF dialogues split at the last shared assistant turn.",
}
INPUT_HELP = {
    "gsm8k-corrupt": "GSM8K JSONL file (question, answer with <<a*b=c>> calculator annotations).",
    "mc-pairs": "Header-less CSV file or a directory of them (question,A,B,C,D,answer); repeatable.",
    "hh-rlhf": "HH-RLHF JSONL file, gzipped or not (chosen, rejected full dialogues).",
}
SEED_HELP = {
    "gsm8k-corrupt": "Seed for which intermediate result is changed in each solution, and for the --limit sample.",
    "mc-pairs": "Seed for the --limit sample (the pairs themselves are not random).",
    "hh-rlhf": "Seed for the --limit sample (the split itself is not random).",
}


def _inputs(args) -> list[str]:
    if args.input:
        return args.input
    root = os.environ.get("HARNESS_DATA_DIR")
    if not root:
        raise FileNotFoundError(f"no --input given and HARNESS_DATA_DIR is not set (default input: "
                                f"$HARNESS_DATA_DIR/{DEFAULT_INPUTS[args.builder][0]})")
    return [str(Path(root) / p) for p in DEFAULT_INPUTS[args.builder]]


def _build(args) -> int:
    from align import builders
    from align.data import DataError

    try:
        inputs = _inputs(args)
        kw = {"seed": args.seed, "limit": args.limit}
        if args.builder == "mc-pairs":
            report = builders.mc_pairs(inputs, args.output, with_options=args.with_options, **kw)
        else:
            if len(inputs) != 1:
                raise ValueError(f"{args.builder} takes one --input file")
            report = builders.BUILDERS[args.builder](inputs[0], args.output, **kw)
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}")
        return 2
    print(json.dumps(report.to_dict(), indent=2))
    return 0


@registrar
def register(sub) -> None:
    p = sub.add_parser("data", help="Build preference pairs from a raw dataset (written as validated JSONL).")
    builders = p.add_subparsers(dest="builder", required=True)
    for name, text in HELP.items():
        b = builders.add_parser(name, help=text, description=text)
        b.add_argument("--input", action="append", help=f"{INPUT_HELP[name]} "
                                                        f"Default: $HARNESS_DATA_DIR/{' and '.join(DEFAULT_INPUTS[name])}.")
        b.add_argument("--output", required=True, help="JSONL to write; a NAME.report.json with counts goes next to it.")
        b.add_argument("--seed", type=int, default=0, help=f"{SEED_HELP[name]} Default 0.")
        b.add_argument("--limit", type=int, help="Keep a seeded random sample of this many pairs.")
        if name == "mc-pairs":
            b.add_argument("--with-options", action="store_true", help="List the lettered options in the prompt.")
        b.set_defaults(func=_build)
