"""`harness train-and-eval`: train one method (or all), evaluate base and trained models, write results/
and regenerate the leaderboard, in one command with one progress bar.

With no other arguments it runs the embedded CPU default: the tiny base model, the
generated arithmetic preference pairs and the local Open LLM tasks with a small --limit.
Judged benchmarks (mtbench, alpacaeval, arenahard) run only when named in --benchmarks; they are
judged when --judge-model (and its API key) is given, else their answers are saved and the scores
recorded as null with the reason.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.commands import registrar

TINY_LIMIT = 32  # documents per task (questions for judged benchmarks) for the tiny default: minutes on 2 CPU cores
TINY_MAX_NEW_TOKENS = 64  # answer length cap for judged benchmarks on the tiny model (a 512-token context)
_RUNTIME_FIELDS = ("resume", "resume_ignore_config", "progress", "stop_after_steps", "output")


def finished_run(output: Path, cfg) -> bool:
    """A completed run with the same configuration is reused, not retrained."""
    try:
        run = json.loads((output / "run.json").read_text())
    except (OSError, ValueError):
        return False
    same = {k: v for k, v in run.get("config", {}).items() if k not in _RUNTIME_FIELDS}
    want = {k: v for k, v in cfg.to_dict().items() if k not in _RUNTIME_FIELDS}
    return bool(run.get("completed")) and same == want and (output / "config.json").exists()


def _train_and_eval(args) -> int:
    from tqdm.auto import tqdm

    import sys

    from align.data import load_preference_data
    from align.trainer import ResumeMismatch, resolve_model
    from harness.cmd_eval import judge_notice, print_unavailable, request_from_args
    from harness.cmd_train import config_from_args
    from harness.evaluation.runner import describe_model, evaluate_model
    from harness.judge import JudgeError
    from harness.leaderboard import InvalidResults, regenerate
    from harness.methods import training_methods

    methods = training_methods()
    selected = sorted(methods) if args.method == "all" else [args.method]
    if args.limit is None and args.model == "tiny" and not args.full:
        args.limit = TINY_LIMIT
    if args.max_new_tokens is None and args.model == "tiny" and not args.full:
        args.max_new_tokens = TINY_MAX_NEW_TOKENS
    benches = [b for b in args.benchmarks.split(",") if b]
    if notice := judge_notice(args, benches):
        print(notice)
    written = []
    root = Path(args.runs_dir)
    stages = (0 if args.no_base else 1) + 2 * len(selected) + 1
    bar = tqdm(total=stages, desc="train-and-eval", unit="stage")
    try:
        if args.data:  # bad data fails here, in seconds, before any model is built or evaluated
            load_preference_data(args.data, skip_invalid=args.skip_invalid)
        base = resolve_model(args.model)
        if not args.no_base:
            bar.set_postfix_str("evaluate base model")
            run = describe_model(base, method="base")
            written += evaluate_model(base, benches, args.results, run=run, request=request_from_args(args, base),
                                      skip_existing=True)
            bar.update(1)
        for method in selected:
            args.output, args.resume = str(root / method), True
            cfg = config_from_args(args, method)
            cfg.progress = False  # this command's bar is the one display
            bar.set_postfix_str(f"train {method}")
            if not finished_run(Path(cfg.output), cfg):
                try:
                    methods[method](cfg)
                except ResumeMismatch as e:  # this command resumes on its own: stale checkpoints mean start afresh
                    print(f"note: {e}; training {method} afresh", file=sys.stderr)
                    cfg.resume = False
                    methods[method](cfg)
            bar.update(1)
            bar.set_postfix_str(f"evaluate {method}")
            run = describe_model(cfg.output, method=method)
            written += evaluate_model(cfg.output, benches, args.results, run=run,
                                      request=request_from_args(args, cfg.output), skip_existing=True)
            bar.update(1)
        bar.set_postfix_str("leaderboard")
        out = regenerate(args.results, args.leaderboards)
        bar.update(1)
    except InvalidResults as e:
        bar.close()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError, ImportError, JudgeError) as e:
        bar.close()
        print(f"error: {e}", file=sys.stderr)
        return 2
    bar.close()
    print_unavailable(written)
    print(f"results in {args.results}/, {len(out['written'])} leaderboard files in {args.leaderboards}/")
    return 0


@registrar
def register(sub) -> None:
    from harness.cmd_eval import add_eval_arguments
    from harness.cmd_train import add_train_arguments
    from harness.methods import training_methods

    p = sub.add_parser("train-and-eval", help="Train, evaluate, write results and the leaderboard in one go.",
                       description=__doc__)
    add_train_arguments(p, sorted(training_methods()) + ["all"])
    add_eval_arguments(p, model=False)
    p.add_argument("--runs-dir", default="runs/train-and-eval", help="Where trained models go, one folder per method.")
    p.add_argument("--results", default="results", help="Results directory (default: results).")
    p.add_argument("--leaderboards", default="leaderboards", help="Leaderboard output directory (default: leaderboards).")
    p.add_argument("--no-base", action="store_true", help="Do not evaluate the untrained base model.")
    p.add_argument("--full", action="store_true", help=f"No default --limit (default {TINY_LIMIT}) or --max-new-tokens "
                                                       f"(default {TINY_MAX_NEW_TOKENS}) for the tiny model.")
    p.set_defaults(func=_train_and_eval)
