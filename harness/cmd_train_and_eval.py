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


def finished_run(output: Path, cfg) -> bool:
    """A completed run with the same configuration is reused, not retrained."""
    try:
        run = json.loads((output / "run.json").read_text())
    except (OSError, ValueError):
        return False
    from align.config import RUNTIME_FIELDS

    same = {k: v for k, v in run.get("config", {}).items() if k not in RUNTIME_FIELDS}
    want = {k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_FIELDS}
    saved = (output / "config.json").exists() or (output / "adapter_config.json").exists()  # a model or a LoRA adapter
    return bool(run.get("completed")) and same == want and saved


def selected_methods(spec: str) -> list[str]:
    """``all``, one method, or a comma-separated list; unknown names are an error."""
    from align.methods import methods

    known = list(methods())
    if spec == "all":
        return known
    chosen = [m.strip() for m in spec.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in known]
    if unknown or not chosen:
        raise ValueError(f"--method: unknown method(s) {', '.join(unknown) or spec!r}; registered: {', '.join(known)} (or all)")
    return list(dict.fromkeys(chosen))


def method_only_flags(args, selected: list[str]) -> dict[str, tuple[str, ...]]:
    """For each selected method, the method-specific flags given on the command line that belong to another
    method; a flag no selected method takes is an error (never silently dropped)."""
    from align.methods import get_method, methods

    owners = {f: m.name for m in methods().values() for f in m.config_fields}
    given = [f for f in owners if getattr(args, f, None) is not None]
    if args.inner_loss:
        given.append("inner_loss")
        owners["inner_loss"] = next(m.name for m in methods().values() if m.wraps_loss)
    for f in given:
        if owners[f] not in selected:
            raise ValueError(f"--{f.replace('_', '-')} applies to method '{owners[f]}', which is not selected")
    return {m: tuple(f for f in given if f != "inner_loss" and owners[f] != m) for m in selected} | {
        "_inner": tuple(m for m in selected if not get_method(m).wraps_loss)}


def _train_and_eval(args) -> int:
    """Other libraries' output goes to RUNS_DIR/harness.log (unless --verbose); errors and the summary stay here."""
    import sys
    import time

    from harness.console import quiet
    from harness.judge import JudgeError
    from harness.leaderboard import InvalidResults

    log = Path(args.runs_dir) / "harness.log"
    start = time.perf_counter()
    summary: list[str] = []
    run_ids: list[str] = []
    if args.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return 2
    try:
        with quiet(log, verbose=args.verbose):
            written, out = _phases(args, summary, run_ids)
    except (InvalidResults, KeyError, ValueError, FileNotFoundError, ImportError, JudgeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from harness.cmd_eval import print_unavailable
    from harness.evaluation.runner import report_incomplete
    from harness.judged.common import INCOMPLETE_EXIT

    print(f"train-and-eval finished in {time.perf_counter() - start:.0f} s")
    for line in summary:
        print(f"  {line}")
    print_unavailable(written)
    print_summary(out, run_ids, args.results, args.leaderboards)
    if not args.verbose:
        print(f"other libraries' messages: {log}")
    return INCOMPLETE_EXIT if report_incomplete(written) else 0


def training_jobs(args, root: Path) -> list:
    """Every training run (method x seed), built up front so a bad setting stops the command before any work."""
    import dataclasses

    from harness.cmd_train import config_from_args

    selected = selected_methods(args.method)
    drops = method_only_flags(args, selected)
    jobs = []
    for method in selected:
        inner = args.inner_loss
        if method in drops["_inner"]:
            args.inner_loss = None  # --sdpo-loss is the wrapper's; the other methods train their own loss
        cfg = config_from_args(args, method, drop=drops[method], output=str(root / method), resume=True)
        args.inner_loss = inner
        for k in range(args.seeds):
            seed = cfg.seed + k
            out = root / method if args.seeds == 1 else root / f"{method}-seed{seed}"
            jobs.append(dataclasses.replace(cfg, seed=seed, output=str(out)))
    return jobs


def _phases(args, summary: list[str], run_ids: list[str]):
    """One progress bar per phase: evaluate base, then per run train (the trainer's bars) and evaluate."""
    import dataclasses
    import sys
    import time

    from align.data import load_preference_data
    from align.methods import get_method
    from align.trainer import ResumeMismatch, resolve_model
    from harness.cmd_eval import ignored_flags_error, judge_notice, request_from_args
    from harness.leaderboard import regenerate

    args.model = args.model or "tiny"
    tiny = args.model == "tiny" and not args.full
    limits: dict = {}  # benchmark -> limit, where it differs from --limit
    task_limits = None
    if args.limit is None and tiny:
        args.limit = TINY_LIMIT
        limits = {b: None for b in TINY_FULL}
        task_limits = TINY_TASK_LIMITS
    if args.benchmarks is None:
        args.benchmarks = "openllm" if args.data else DEFAULT_BENCHMARKS
    if args.max_new_tokens is None and tiny:
        args.max_new_tokens = TINY_MAX_NEW_TOKENS
    benches = [b for b in args.benchmarks.split(",") if b]
    if msg := ignored_flags_error(args, benches):
        raise ValueError(msg)
    data_dir = request_from_args(args, args.model).data_dir
    if data_dir and not Path(data_dir).is_dir():  # said now, not after the tiny model is built and trained
        raise FileNotFoundError(f"data directory {data_dir} not found (set HARNESS_DATA_DIR)")
    root = Path(args.runs_dir)
    jobs = training_jobs(args, root)
    if notice := judge_notice(args, benches):
        print(notice)
    written = []
    if args.data:  # bad data fails here, in seconds, before any model is built or evaluated
        load_preference_data(args.data, skip_invalid=args.skip_invalid)
    base = resolve_model(args.model)
    evaluate = dict(benches=benches, summary=summary, run_ids=run_ids, limits=limits, task_limits=task_limits)
    if not args.no_base:
        written += _evaluate(args, base, "base", **evaluate)
    for cfg in jobs:
        label = cfg.method if args.seeds == 1 else f"{cfg.method} seed {cfg.seed}"
        t0 = time.perf_counter()
        if finished_run(Path(cfg.output), cfg):
            summary.append(f"train {label}: reused {cfg.output}")
        else:
            try:
                get_method(cfg.method).train(cfg)  # the trainer's own bars: reference log-probs, then steps
            except ResumeMismatch as e:  # this command resumes on its own: stale checkpoints mean start afresh
                print(f"note: {e}; training {label} afresh", file=sys.stderr)
                get_method(cfg.method).train(dataclasses.replace(cfg, resume=False))
            summary.append(f"train {label}: {time.perf_counter() - t0:.0f} s{_last_metrics(cfg.output)} -> {cfg.output}")
        written += _evaluate(args, cfg.output, cfg.method, seed=cfg.seed if args.seeds > 1 else None, **evaluate)
    out = regenerate(args.results, args.leaderboards)
    return written, out


def _last_metrics(output: str) -> str:
    path = Path(output) / "metrics.jsonl"
    lines = [x for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
    if not lines:
        return ""
    row = json.loads(lines[-1])
    return f", final loss {row['loss']:.4f}, reward accuracy {row['rewards/accuracies']:.2f}"


def _evaluate(args, model: str, method: str, *, benches: list[str], summary: list[str], run_ids: list[str],
              limits: dict, task_limits: dict | None, seed: int | None = None) -> list[Path]:
    """Evaluate one model, one bar tick per benchmark; earlier results with the same settings are reused.
    Benchmarks in ``limits`` run with their own limit instead of --limit, Open LLM tasks in ``task_limits`` with theirs."""
    import time

    from tqdm.auto import tqdm

    from harness.cmd_eval import request_from_args
    from harness.console import terminal
    from harness.evaluation.runner import describe_model, evaluate_model

    t0 = time.perf_counter()
    run = describe_model(model, method=method)
    if seed is not None:  # distinct ids even if two seeds ever gave identical weights
        run["run_id"] = f"{method}-seed{seed}-{run['model_fingerprint'][:12]}"
    written = []
    label = method if seed is None else f"{method} seed {seed}"
    for b in tqdm(benches, desc=f"evaluate {label}", unit="benchmark", file=terminal(), disable=args.progress is False):
        request = request_from_args(args, model)
        if task_limits:
            request.options["task_limits"] = dict(task_limits)
        if b in limits:
            request.limit = limits[b]
        written += evaluate_model(model, [b], args.results, run=run, request=request, skip_existing=True)
    run_ids.append(run["run_id"])
    summary.append(f"evaluate {label}: {time.perf_counter() - t0:.0f} s -> {args.results}/{run['run_id']}/")
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
    from align.methods import methods

    p = sub.add_parser("train-and-eval", help="Train, evaluate, write results and the leaderboard in one go.",
                       description=__doc__, add_help=False)
    add_train_arguments(p, list(methods()) + ["all"], method_choices=False)
    p.add_argument("--seeds", type=int, default=1,
                   help="Train each method with this many seeds (seed, seed+1, ...): one run directory and result per "
                        "seed, grouped in the tables (default 1).")
    add_eval_arguments(p, model=False, benchmarks_default=None,
                       benchmarks_help=f"Comma-separated benchmarks (default: {DEFAULT_BENCHMARKS} with the default "
                                       "preference data, else openllm).")
    p.add_argument("--runs-dir", default="runs/train-and-eval",
                   help="Where trained models go, one folder per method (per method and seed with --seeds).")
    p.add_argument("--results", default="results", help="Results directory (default: results).")
    p.add_argument("--leaderboards", default="leaderboards", help="Leaderboard output directory (default: leaderboards).")
    p.add_argument("--no-base", action="store_true", help="Do not evaluate the untrained base model.")
    p.add_argument("--full", action="store_true", help=f"No default --limit (default {TINY_LIMIT}, MMLU {TINY_TASK_LIMITS['mmlu']} per subject; "
                                                       f"{' and '.join(TINY_FULL)} always run in full) or "
                                                       f"--max-new-tokens (default {TINY_MAX_NEW_TOKENS}) for the tiny model.")
    p.set_defaults(func=_train_and_eval)
