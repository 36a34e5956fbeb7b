"""`harness train-and-eval`: train one method (or all), evaluate base and trained models, write results/
and regenerate the leaderboard, in one command with one progress bar.

With no other arguments it runs the embedded CPU default: the tiny base model, the
generated arithmetic preference pairs, the local Open LLM tasks with a small --limit, the
held-out arithmetic task and the held-out preference pairs (both in full). At the end it
prints the method comparison tables of the runs it evaluated and where the files are.
Judged benchmarks (mtbench, alpacaeval, arenahard) run only when named in --benchmarks; they are
judged when --judge-model (and its API key) is given, else their answers are saved and the scores
recorded as null with the reason.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.commands import registrar

TINY_LIMIT = 32  # documents per task (questions for judged benchmarks) for the tiny default: minutes on 2 CPU cores
# Open LLM tasks with their own limit in the tiny default: MMLU's is per subject (57 of them), the bulk of the time.
TINY_TASK_LIMITS = {"mmlu": 8}
# Benchmarks the tiny default runs in full (seconds each): the ones it can move, sized to show a difference.
TINY_FULL = ("arithmetic", "preference_heldout")
DEFAULT_BENCHMARKS = "openllm,arithmetic,preference_heldout"  # with the default (arithmetic) preference data
PRINTED_TABLES = ("method_comparison/", "heldout/")
TINY_MAX_NEW_TOKENS = 64  # answer length cap for judged benchmarks on the tiny model (a 512-token context)
_RUNTIME_FIELDS = ("resume", "progress", "stop_after_steps", "output")


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

    from align.trainer import resolve_model
    from harness.cmd_eval import judge_notice, print_unavailable
    from harness.cmd_train import config_from_args
    from harness.evaluation.runner import describe_model
    from harness.judge import JudgeError
    from harness.leaderboard import InvalidResults, regenerate
    from harness.methods import training_methods

    methods = training_methods()
    selected = sorted(methods) if args.method == "all" else [args.method]
    full = {}  # benchmark -> limit, where it differs from --limit
    task_limits = None
    if args.limit is None and args.model == "tiny" and not args.full:
        args.limit = TINY_LIMIT
        full = {b: None for b in TINY_FULL}
        task_limits = TINY_TASK_LIMITS
    if args.benchmarks is None:
        args.benchmarks = "openllm" if args.data else DEFAULT_BENCHMARKS
    if args.max_new_tokens is None and args.model == "tiny" and not args.full:
        args.max_new_tokens = TINY_MAX_NEW_TOKENS
    benches = [b for b in args.benchmarks.split(",") if b]
    if notice := judge_notice(args, benches):
        print(notice)
    written, run_ids = [], []
    root = Path(args.runs_dir)
    stages = (0 if args.no_base else 1) + 2 * len(selected) + 1
    bar = tqdm(total=stages, desc="train-and-eval", unit="stage")
    try:
        base = resolve_model(args.model)
        if not args.no_base:
            bar.set_postfix_str("evaluate base model")
            run = describe_model(base, method="base")
            written += _evaluate(base, benches, args, run, full, task_limits)
            run_ids.append(run["run_id"])
            bar.update(1)
        for method in selected:
            args.output, args.resume = str(root / method), True
            cfg = config_from_args(args, method)
            cfg.progress = False  # this command's bar is the one display
            bar.set_postfix_str(f"train {method}")
            if not finished_run(Path(cfg.output), cfg):
                methods[method](cfg)
            bar.update(1)
            bar.set_postfix_str(f"evaluate {method}")
            run = describe_model(cfg.output, method=method)
            written += _evaluate(cfg.output, benches, args, run, full, task_limits)
            run_ids.append(run["run_id"])
            bar.update(1)
        bar.set_postfix_str("leaderboard")
        out = regenerate(args.results, args.leaderboards)
        bar.update(1)
    except InvalidResults as e:
        bar.close()
        print(f"error: {e}")
        return 2
    except (KeyError, ValueError, FileNotFoundError, ImportError, JudgeError) as e:
        bar.close()
        print(f"error: {e}")
        return 2
    bar.close()
    print_unavailable(written)
    print_summary(out, run_ids, args.results, args.leaderboards)
    return 0


def _evaluate(model: str, benches: list[str], args, run: dict, limits: dict, task_limits: dict | None) -> list[Path]:
    """Evaluate ``model``; benchmarks in ``limits`` run with their own limit instead of --limit, Open LLM tasks
    in ``task_limits`` with theirs."""
    from harness.cmd_eval import request_from_args
    from harness.evaluation.runner import evaluate_model

    written = []
    for group in ([b for b in benches if b not in limits], [b for b in benches if b in limits]):
        if not group:
            continue
        request = request_from_args(args, model)
        if task_limits:
            request.options["task_limits"] = dict(task_limits)
        if group[0] in limits:
            request.limit = limits[group[0]]
        written += evaluate_model(model, group, args.results, run=run, request=request, skip_existing=True)
    return written


def print_summary(out: dict, run_ids: list[str], results: str, leaderboards: str) -> None:
    """The comparison tables holding this invocation's runs, then where every file is."""
    from harness.leaderboard.render import markdown

    shown = []
    for table in out.get("tables", []):
        if table.name.startswith(PRINTED_TABLES) and set(table.run_ids) & set(run_ids):
            print()
            print(markdown(table), end="")
            shown.append(table.name)
    print()
    print(f"results: {results}/ ({', '.join(f'{r}/' for r in run_ids)})")
    print(f"leaderboards: {len(out['written'])} files in {leaderboards}/"
          + (f"; the tables above: {', '.join(f'{leaderboards}/{n}.md' for n in shown)}" if shown else ""))
    if out.get("removed"):
        print(f"removed {len(out['removed'])} stale table files of replaced runs")


@registrar
def register(sub) -> None:
    from harness.cmd_eval import add_eval_arguments
    from harness.cmd_train import add_train_arguments
    from harness.methods import training_methods

    p = sub.add_parser("train-and-eval", help="Train, evaluate, write results and the leaderboard in one go.",
                       description=__doc__)
    add_train_arguments(p, sorted(training_methods()) + ["all"])
    add_eval_arguments(p, model=False, benchmarks_default=None,
                       benchmarks_help=f"Comma-separated benchmarks (default: {DEFAULT_BENCHMARKS} with the default "
                                       "preference data, else openllm).")
    p.add_argument("--runs-dir", default="runs/train-and-eval", help="Where trained models go, one folder per method.")
    p.add_argument("--results", default="results", help="Results directory (default: results).")
    p.add_argument("--leaderboards", default="leaderboards", help="Leaderboard output directory (default: leaderboards).")
    p.add_argument("--no-base", action="store_true", help="Do not evaluate the untrained base model.")
    p.add_argument("--full", action="store_true", help=f"No default --limit (default {TINY_LIMIT}, MMLU {TINY_TASK_LIMITS['mmlu']} per subject; "
                                                       f"{' and '.join(TINY_FULL)} always run in full) or "
                                                       f"--max-new-tokens (default {TINY_MAX_NEW_TOKENS}) for the tiny model.")
    p.set_defaults(func=_train_and_eval)
