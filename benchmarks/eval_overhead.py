"""Harness evaluation vs raw lm_eval.simple_evaluate on the same task, model and settings, in one process.

Prints JSON: wall seconds of each (best of --repeats, alternating order) and the overhead ratio.
Target: harness / raw <= 1.10. Usage: python benchmarks/eval_overhead.py [--model DIR] [--task arc_challenge] [--limit 40]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="Model dir (default: the embedded tiny model).")
    ap.add_argument("--task", default="arc_challenge")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    args = ap.parse_args()

    import logging

    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from align.cache import cache_root
    from align.tiny import default_tiny_model
    from harness.evaluation import EvalRequest
    from harness.evaluation.openllm_tasks import prepare_tasks
    from harness.evaluation.runner import describe_model, evaluate_model

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    model = args.model or str(default_tiny_model())
    task_dir = prepare_tasks([args.task], args.data_dir, cache_root())  # shared by both sides
    out_dir = Path(tempfile.mkdtemp())

    def raw():
        tm = TaskManager(include_path=str(task_dir), include_defaults=False)
        r = simple_evaluate(model="hf", model_args={"pretrained": model, "dtype": "float32"}, tasks=[args.task],
                            limit=args.limit, task_manager=tm, log_samples=False, batch_size=8, device="cpu")
        return r["results"][args.task]

    def harness():
        req = EvalRequest(model=model, backend_options={"batch_size": 8, "device": "cpu"}, limit=args.limit,
                          tasks=[args.task], data_dir=args.data_dir)
        run = describe_model(model, run_id="overhead")
        path = evaluate_model(model, ["openllm"], out_dir, run=run, request=req)[0]
        return json.loads(path.read_text())["scores"]

    times = {"raw_lm_eval": [], "harness": []}
    for i in range(args.repeats):
        for name, fn in (("raw_lm_eval", raw), ("harness", harness))[:: 1 if i % 2 == 0 else -1]:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in times.items()}
    print(json.dumps({"task": args.task, "limit": args.limit, "model": model, "repeats": args.repeats,
                      "seconds_best": best, "seconds_all": times,
                      "overhead_ratio": best["harness"] / best["raw_lm_eval"], "target_ratio_max": 1.10}, indent=2))


if __name__ == "__main__":
    main()
