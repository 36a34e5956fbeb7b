"""`harness judge`: judge saved answers (MT-Bench, AlpacaEval 2, Arena-Hard) with an OpenAI-compatible judge."""
from __future__ import annotations

from harness.commands import registrar


def add_judge_arguments(p) -> None:
    """Judge flags, shared with commands that generate and then judge."""
    p.add_argument("--judge-model", help="Judge model name at the endpoint (e.g. gpt-4-1106-preview).")
    p.add_argument("--judge-base-url", help="OpenAI-compatible endpoint (default: the OpenAI API).")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY",
                   help="Name of the environment variable that holds the judge's API key (default OPENAI_API_KEY).")
    p.add_argument("--judge-concurrency", type=int, default=32, help="Judge requests in flight at once (default 32).")
    p.add_argument("--judge-max-retries", type=int, default=6, help="Retries per request on 429/5xx/timeouts (default 6).")


def judge_config_from_args(args):
    from harness.judge import JudgeConfig

    if not getattr(args, "judge_model", None):
        return None
    return JudgeConfig(model=args.judge_model, base_url=args.judge_base_url, api_key_env=args.judge_api_key_env,
                       concurrency=args.judge_concurrency, max_retries=args.judge_max_retries)


def _judge(args) -> int:
    from harness.judge import JudgeError
    from harness.judged import run_judged_benchmark
    from harness.judged.data import DataError
    from harness.results import ResultError

    cfg = judge_config_from_args(args)
    options = {"answers_path": args.answers, "data_dir": args.data_dir}
    if args.benchmark == "mtbench":
        options.update(mode=args.mode, baseline_answers=args.baseline_answers)
    if args.benchmark == "arenahard":
        options.update(version=args.arena_version, baseline_answers=args.baseline_answers)
    run = {"run_id": args.run_id, "method": args.method, "model": args.run_id} if args.run_id else None
    try:
        rec = run_judged_benchmark(args.benchmark, None, cfg, args.out, args.limit, run=run,
                                   results_dir=args.results, **options)
    except (JudgeError, DataError, ResultError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}")
        return 2
    for s in rec["scores"]:
        extra = f" ± {s['stderr']:.3f}" if s.get("stderr") is not None else ""
        extra += f" CI95 [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]" if s.get("ci95") else ""
        value = "n/a (" + s["unavailable"] + ")" if s["value"] is None else f"{s['value']:.3f}"
        print(f"{s['task']:<24} {s['metric']:<28} {value}{extra}")
    return 0 if rec.get("judge", {}).get("configured") else 3


@registrar
def register(sub) -> None:
    p = sub.add_parser("judge", help="Judge saved answers on MT-Bench, AlpacaEval 2 or Arena-Hard.",
                       description="Score answers already generated (FastChat model_answer JSONL for MT-Bench, "
                                   "alpaca_eval model_outputs.json, arena-hard model_answer JSONL) with an LLM judge.")
    p.add_argument("--benchmark", required=True, choices=["mtbench", "alpacaeval", "arenahard"])
    p.add_argument("--answers", required=True, help="The model's answers file, in the benchmark's own format.")
    add_judge_arguments(p)
    p.add_argument("--out", default="judged", help="Directory for judgments, cache and plots (default ./judged).")
    p.add_argument("--results", help="Results directory (default: --out).")
    p.add_argument("--run-id", help="Run id for the result file (default: the model name in the answers).")
    p.add_argument("--method", default="base", help="Training method recorded in the result (default base).")
    p.add_argument("--data-dir", help="Benchmark data directory (default $HARNESS_DATA_DIR).")
    p.add_argument("--limit", type=int, help="Only the first N questions.")
    p.add_argument("--mode", choices=["single", "pairwise"], default="single", help="MT-Bench grading mode.")
    p.add_argument("--baseline-answers", help="MT-Bench pairwise baseline / Arena-Hard baseline answers file.")
    p.add_argument("--arena-version", choices=["v0.1", "v2.0"], default="v0.1")
    p.set_defaults(func=_judge)
