"""`harness eval`: evaluate one model on named benchmarks; one result file per benchmark."""
from __future__ import annotations

from harness.commands import registrar


def add_eval_arguments(p, *, model: bool = True) -> None:
    if model:
        p.add_argument("--model", required=True, help="Checkpoint to evaluate: a local directory (a trained run's output) or a hub id.")
        p.add_argument("--run-id", help="Name of this run in results/ (default: METHOD-FINGERPRINT).")
        p.add_argument("--output", default="results", help="Results directory (default: results).")
    p.add_argument("--benchmarks", default="openllm", help="Comma-separated benchmarks (default: openllm).")
    p.add_argument("--tasks", help="Comma-separated subset of a benchmark's tasks, e.g. arc_challenge,gsm8k.")
    p.add_argument("--limit", type=int, help="Documents per task: for smoke runs; results are marked as such.")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm", "openai"], help="Inference backend (default: hf).")
    p.add_argument("--eval-batch-size", type=int, default=8, help="Batch size for the hf backend.")
    p.add_argument("--device", help="hf backend device (default: cuda if available, else cpu).")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per model replica.")
    p.add_argument("--data-parallel-size", type=int, default=1, help="vllm: model replicas.")
    p.add_argument("--chat-template", action="store_true", help="Apply the tokenizer's chat template (off in the v1 leaderboard).")
    p.add_argument("--data-dir", help="Local benchmark data (default: $HARNESS_DATA_DIR when the hub is offline).")
    p.add_argument("--hub", action="store_true", help="Use lm-eval's hub datasets even if a data dir is set.")


def request_from_args(args, model: str):
    from harness.evaluation import EvalRequest
    from harness.evaluation.openllm import default_data_dir

    opts = {}
    if args.backend == "hf":
        opts = {"batch_size": args.eval_batch_size, **({"device": args.device} if args.device else {})}
    elif args.backend == "vllm":
        opts = {"tensor_parallel_size": args.tensor_parallel_size, "data_parallel_size": args.data_parallel_size}
    # The tiny default always runs on local tasks; other models use the hub unless offline.
    data_dir = None if args.hub else (args.data_dir or default_data_dir(prefer_local=getattr(args, "model", None) == "tiny"))
    tasks = [t for t in (args.tasks or "").split(",") if t] or None
    return EvalRequest(model=model, backend=args.backend, backend_options=opts, limit=args.limit, tasks=tasks,
                       data_dir=data_dir, chat_template=args.chat_template)


def _eval(args) -> int:
    from harness.evaluation.runner import describe_model, evaluate_model

    benches = [b for b in args.benchmarks.split(",") if b]
    try:
        run = describe_model(args.model, run_id=args.run_id)
        paths = evaluate_model(args.model, benches, args.output, run=run, request=request_from_args(args, args.model))
    except (KeyError, ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}")
        return 2
    for p in paths:
        print(f"wrote {p}")
    return 0


@registrar
def register(sub) -> None:
    p = sub.add_parser("eval", help="Evaluate a model (Open LLM Leaderboard v1 through lm-eval, ...).")
    add_eval_arguments(p)
    p.set_defaults(func=_eval)
