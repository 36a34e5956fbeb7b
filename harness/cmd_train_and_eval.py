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
_RUNTIME_FIELDS = ("resume", "progress", "stop_after_steps", "output", "report_to")


def finished_run(output: Path, cfg) -> bool:
    """A completed run with the same configuration is reused, not retrained."""
    try:
        run = json.loads((output / "run.json").read_text())
    except (OSError, ValueError):
        return False
    same = {k: v for k, v in run.get("config", {}).items() if k not in _RUNTIME_FIELDS}
    want = {k: v for k, v in cfg.to_dict().items() if k not in _RUNTIME_FIELDS}
    saved = (output / "config.json").exists() or (output / "adapter_config.json").exists()  # a model or a LoRA adapter
    return bool(run.get("completed")) and same == want and saved


def _train_and_eval(args) -> int:
    """Other libraries' output goes to RUNS_DIR/harness.log (unless --verbose); errors and the summary stay here."""
    import time

    from harness.console import quiet
    from harness.judge import JudgeError
    from harness.leaderboard import InvalidResults

    log = Path(args.runs_dir) / "harness.log"
    start = time.perf_counter()
    summary: list[str] = []
    try:
        with quiet(log, verbose=args.verbose):
            written, out = _phases(args, summary)
    except (InvalidResults, KeyError, ValueError, FileNotFoundError, ImportError, JudgeError) as e:
        print(f"error: {e}")
        return 2
    from harness.cmd_eval import print_unavailable

    print(f"train-and-eval finished in {time.perf_counter() - start:.0f} s")
    for line in summary:
        print(f"  {line}")
    print_unavailable(written)
    print(f"results in {args.results}/, {len(out['written'])} leaderboard files in {args.leaderboards}/")
    if not args.verbose:
        print(f"other libraries' messages: {log}")
    from harness.evaluation.runner import report_incomplete
    from harness.judged.common import INCOMPLETE_EXIT

    return INCOMPLETE_EXIT if report_incomplete(written) else 0


def _phases(args, summary: list[str]):
    """One progress bar per phase: evaluate base, then per method train (the trainer's bars) and evaluate."""
    import time

    from align.trainer import resolve_model
    from harness.cmd_eval import judge_notice
    from harness.cmd_train import config_from_args
    from harness.leaderboard import regenerate
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
    base = resolve_model(args.model)
    if not args.no_base:
        written += _evaluate(args, base, "base", benches, summary)
    for method in selected:
        args.output, args.resume = str(root / method), True
        cfg = config_from_args(args, method)
        t0 = time.perf_counter()
        if finished_run(Path(cfg.output), cfg):
            summary.append(f"train {method}: reused {cfg.output}")
        else:
            methods[method](cfg)  # the trainer's own bars: reference log-probs, then steps
            summary.append(f"train {method}: {time.perf_counter() - t0:.0f} s{_last_metrics(cfg.output)} -> {cfg.output}")
        written += _evaluate(args, cfg.output, method, benches, summary)
    out = regenerate(args.results, args.leaderboards)
    return written, out


def _last_metrics(output: str) -> str:
    lines = [x for x in (Path(output) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    if not lines:
        return ""
    row = json.loads(lines[-1])
    return f", final loss {row['loss']:.4f}, reward accuracy {row['rewards/accuracies']:.2f}"


def _evaluate(args, model: str, method: str, benches: list[str], summary: list[str]) -> list:
    """Evaluate one model, one bar tick per benchmark; earlier results with the same settings are reused."""
    import time

    from tqdm.auto import tqdm

    from harness.cmd_eval import request_from_args
    from harness.console import terminal
    from harness.evaluation.runner import describe_model, evaluate_model

    t0 = time.perf_counter()
    run = describe_model(model, method=method)
    written = []
    for b in tqdm(benches, desc=f"evaluate {method}", unit="benchmark", file=terminal(), disable=args.no_progress):
        written += evaluate_model(model, [b], args.results, run=run, request=request_from_args(args, model),
                                  skip_existing=True)
    summary.append(f"evaluate {method}: {time.perf_counter() - t0:.0f} s -> {args.results}/{run['run_id']}/")
    return written


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
