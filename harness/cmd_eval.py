"""`harness eval`: evaluate one model on named benchmarks; one result file per benchmark."""
from __future__ import annotations

from harness.commands import registrar


def add_eval_arguments(p, *, model: bool = True, benchmarks_default: str | None = "openllm",
                       benchmarks_help: str = "Comma-separated benchmarks (default: openllm).") -> None:
    if model:
        p.add_argument("--model", required=True, help="Checkpoint to evaluate: a local directory (a trained run's output) or a hub id.")
        p.add_argument("--run-id", help="Name of this run in results/ (default: METHOD-FINGERPRINT).")
        p.add_argument("--output", default="results", help="Results directory (default: results).")
    p.add_argument("--benchmarks", default=benchmarks_default, help=benchmarks_help + " Also: arithmetic (held-out "
                   "arithmetic, exact match), preference_heldout (held-out preference pairs: accuracy and log-prob "
                   "changes against the base).")
    p.add_argument("--tasks", help="Comma-separated subset of the Open LLM tasks, e.g. arc_challenge,gsm8k.")
    p.add_argument("--limit", type=int, help="Documents per task: for smoke runs; results are marked as such.")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm", "openai"], help="Inference backend (default: hf).")
    p.add_argument("--eval-batch-size", type=int, default=8, help="Batch size for the hf backend.")
    p.add_argument("--device", help="hf backend device (default: cuda if available, else cpu).")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per model replica.")
    p.add_argument("--data-parallel-size", type=int, default=1, help="vllm: model replicas.")
    p.add_argument("--chat-template", action="store_true", help="Apply the tokenizer's chat template (off in the v1 leaderboard).")
    p.add_argument("--data-dir", help="Local benchmark data (default: $HARNESS_DATA_DIR when the hub is offline).")
    p.add_argument("--hub", action="store_true", help="Use lm-eval's hub datasets even if a data dir is set.")
    from harness.cmd_judge import add_judge_arguments

    g = p.add_argument_group("judged benchmarks (mtbench, alpacaeval, arenahard)",
                             "Answers are generated with --backend (hf, vllm, or openai at --gen-base-url) and judged by "
                             "--judge-model. Without a judge (or its API key) the answers are saved and the scores are "
                             "recorded as null with the reason. --limit is the number of questions.")
    add_judge_arguments(g)
    g.add_argument("--max-new-tokens", type=int,
                   help="Cap on answer length in tokens (default: each benchmark's own: 1024 / 2048 / 4096).")
    g.add_argument("--gen-base-url", help="OpenAI-compatible endpoint serving --model (with --backend openai).")
    g.add_argument("--gen-api-key-env", help="Environment variable with the generation endpoint's key "
                                             "(default: OPENAI_API_KEY, or none for a local server).")
    g.add_argument("--gen-temperature", metavar="T|BENCH=T,...",
                   help="Answer sampling temperature: one value for every judged benchmark, or per benchmark "
                        "(e.g. alpacaeval=0.5). Default: each benchmark's convention (MT-Bench: FastChat's per "
                        "category; AlpacaEval, Arena-Hard: 0). Recorded in the result's conventions.")
    from harness.evaluation import benchmark_flags

    for name, flags in benchmark_flags().items():  # each benchmark's own flags, from the registry
        flags.add_arguments(p.add_argument_group(flags.title))


def request_from_args(args, model: str):
    from harness.cmd_judge import judge_config_from_args
    from harness.evaluation import EvalRequest
    from harness.evaluation.openllm import default_data_dir

    opts = {}
    if args.backend == "hf":
        opts = {"batch_size": args.eval_batch_size, **({"device": args.device} if args.device else {})}
    elif args.backend == "vllm":
        opts = {"tensor_parallel_size": args.tensor_parallel_size, "data_parallel_size": args.data_parallel_size}
    elif args.backend == "openai":
        opts = {k: v for k, v in (("base_url", args.gen_base_url), ("api_key_env", args.gen_api_key_env)) if v}
    if args.gen_base_url and args.backend != "openai":
        raise ValueError("--gen-base-url is an OpenAI-compatible endpoint: use it with --backend openai")
    # The tiny default always runs on local tasks; other models use the hub unless offline.
    data_dir = None if args.hub else (args.data_dir or default_data_dir(prefer_local=getattr(args, "model", None) == "tiny"))
    tasks = [t for t in (args.tasks or "").split(",") if t] or None
    temps = gen_temperatures(getattr(args, "gen_temperature", None))
    from harness.evaluation import benchmark_flags

    per_benchmark = {name: flags.options(args) for name, flags in benchmark_flags().items()}
    for name, t in temps.items():
        per_benchmark.setdefault(name, {})["gen_temperature"] = t
    options = {"judge": judge_config_from_args(args), "max_new_tokens": args.max_new_tokens,
               "per_benchmark": {b: {k: v for k, v in o.items() if v is not None} for b, o in per_benchmark.items()}}
    return EvalRequest(model=model, backend=args.backend, backend_options=opts, limit=args.limit, tasks=tasks,
                       data_dir=data_dir, chat_template=args.chat_template, options=options)


def gen_temperatures(spec: str | None) -> dict[str, float]:
    """``--gen-temperature``: "0.5" (every judged benchmark) or "alpacaeval=0.5,mtbench=0.7"."""
    from harness.evaluation.judged import JUDGED

    if not spec:
        return {}
    out = {}
    for part in spec.split(","):
        name, _, value = part.rpartition("=")
        targets = [name.strip()] if name else list(JUDGED)
        if name and name.strip() not in JUDGED:
            raise ValueError(f"--gen-temperature: unknown benchmark {name!r}; choose from {', '.join(JUDGED)}")
        try:
            t = float(value)
        except ValueError:
            raise ValueError(f"--gen-temperature: {value!r} is not a number") from None
        if t < 0:
            raise ValueError(f"--gen-temperature: {t} is negative")
        out.update(dict.fromkeys(targets, t))
    return out


def ignored_flags_error(args, benchmarks: list[str]) -> str | None:
    """The error for benchmark flags given to a benchmark that does not run; None when there are none."""
    from harness.evaluation import ignored_flags

    if found := ignored_flags(args, benchmarks):
        return (f"{', '.join(found)} set, but that benchmark is not run (benchmarks: {', '.join(benchmarks)}): "
                "the setting would be ignored")
    return None


def judge_notice(args, benchmarks: list[str]) -> str | None:
    """What keeps the judged benchmarks from being judged, said before anything runs; None when ready."""
    from harness.cmd_judge import judge_config_from_args
    from harness.evaluation.judged import JUDGED

    judged = [b for b in benchmarks if b in JUDGED]
    cfg = judge_config_from_args(args)
    missing = cfg.missing() if cfg is not None else ["a judge model (--judge-model)"]
    if not judged or not missing:
        return None
    return (f"note: {', '.join(judged)} will not be judged: missing {'; '.join(missing)}. "
            "Answers are generated and saved; the scores are recorded as null with this reason.")


def print_unavailable(paths) -> None:
    """One line per null score in the written results, with its reason."""
    from harness.results import read_result

    for p in paths:
        rec = read_result(p)
        for s in rec["scores"]:
            if s["value"] is None:
                print(f"{rec['run']['run_id']}/{rec['benchmark']}: {s['task']} {s['metric']} = null ({s.get('unavailable')})")


def _eval(args) -> int:
    import sys

    from align.hub import check_model_spec

    benches = [b for b in args.benchmarks.split(",") if b]
    if msg := ignored_flags_error(args, benches):
        print(f"error: {msg}", file=sys.stderr)
        return 2
    try:  # a typo fails here, at once, not after loading the evaluation stack; an endpoint's model is its name
        if args.backend != "openai":
            check_model_spec(args.model)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from harness.evaluation.runner import describe_model, evaluate_model, report_incomplete
    from harness.judge import JudgeError
    from harness.judged.common import INCOMPLETE_EXIT

    try:
        request = request_from_args(args, args.model)
        if notice := judge_notice(args, benches):
            print(notice)
        run = describe_model(args.model, run_id=args.run_id)
        paths = evaluate_model(args.model, benches, args.output, run=run, request=request)
    except (KeyError, ValueError, FileNotFoundError, ImportError, JudgeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p}")
    print_unavailable(paths)
    return INCOMPLETE_EXIT if report_incomplete(paths) else 0


@registrar
def register(sub) -> None:
    p = sub.add_parser("eval", help="Evaluate a model (Open LLM Leaderboard v1 through lm-eval, ...).")
    add_eval_arguments(p)
    p.set_defaults(func=_eval)
