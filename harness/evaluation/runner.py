"""Evaluate one model on named benchmarks and write one schema-checked result per benchmark."""
from __future__ import annotations

import json
from pathlib import Path

from align.atomic import write_json_atomic
from harness import results as R
from harness.evaluation import BenchmarkOutput, EvalRequest, get_benchmark
from harness.judge.config import JudgeDryRun

BUDGET_KEYS = ("steps", "epochs", "max_steps", "batch_size", "grad_accum", "world_size")


def run_group(method: str, config: dict) -> str:
    """The same for runs that differ only in their seed (and where they were written): tables average over it."""
    import hashlib

    from align.config import RUNTIME_FIELDS

    same = {k: v for k, v in config.items() if k not in (*RUNTIME_FIELDS, "seed")}
    return f"{method}-" + hashlib.sha256(json.dumps(same, sort_keys=True, default=str).encode()).hexdigest()[:12]


def describe_model(model: str, run_id: str | None = None, method: str | None = None) -> dict:
    """The `run` block of a result: from the trained model's run.json when present, else a base model."""
    from align.fingerprint import model_fingerprint

    path = Path(model)
    run_json = path / "run.json"
    if run_json.exists():
        run = json.loads(run_json.read_text())
        cfg = run.get("config", {})
        data = run.get("data") or {}
        method = method or cfg.get("method") or (run.get("loss") or {}).get("name")
        info = {
            "method": method,
            "seed": cfg.get("seed"),
            "group": run_group(method, cfg),
            "hyperparameters": {**{k: v for k, v in (run.get("loss") or {}).items() if k != "name"},
                                **{k: cfg.get(k) for k in ("lr", "warmup_ratio", "lr_schedule", "max_length",
                                                           "max_prompt_length", "seed", "reference_model")},
                                **{k: v for k, v in (run.get("lengths") or {}).items() if k in ("max_length", "max_prompt_length")}},
            "base_model": run.get("model_path") or cfg.get("model"),
            "base_model_fingerprint": run.get("base_model_fingerprint"),
            "data": [str(s) for s in (data.get("specs") or cfg.get("data") or [])],
            "data_fingerprint": data.get("fingerprint"),
            "budget": {"steps": run.get("steps"), "pairs_seen": run.get("pairs_seen"), "pairs": data.get("n_pairs"),
                       "epochs": cfg.get("epochs"),
                       "batch_size": cfg.get("batch_size"), "grad_accum": cfg.get("grad_accum"),
                       "world_size": run.get("world_size")},
        }
    else:
        from align.modeling import adapter_base, is_adapter_dir

        base = adapter_base(model) if is_adapter_dir(model) else model  # a LoRA adapter describes its base
        info = {"method": method or "base", "seed": None, "group": method or "base", "hyperparameters": {},
                "base_model": base, "base_model_fingerprint": model_fingerprint(base), "data": None, "data_fingerprint": None,
                "budget": None}
    fp = model_fingerprint(model)
    info.update(model=model, model_fingerprint=fp, run_id=run_id or f"{info['method']}-{fp[:12]}")
    return info


def raw_path(result: Path) -> Path:
    return result.with_name(result.stem + ".raw.json")


def evaluate_model(model: str, benchmarks: list[str], results_dir: str | Path, *, run: dict | None = None,
                   request: EvalRequest | None = None, skip_existing: bool = False) -> list[Path]:
    run = run or describe_model(model)
    written = []
    for name in benchmarks:
        target = R.result_path(results_dir, run["run_id"], name)
        fn = get_benchmark(name)
        if skip_existing and target.exists() and _same_settings(target, request, fn):
            written.append(target)  # done before a crash or an earlier call: not redone
            continue
        req = request or EvalRequest(model=model)
        req.model, req.run, req.work_dir = model, run, str(target.with_suffix(""))
        started = R.now()
        try:
            out = fn(req)
        except JudgeDryRun as e:  # the bill is printed; nothing judged, no result: go on to the next benchmark
            print(f"{run['run_id']}/{name}: {e}")
            continue
        record = build_record(name, run, out, started, raw_path(target).name if out.raw is not None else out.raw_file)
        if out.raw is not None:
            write_json_atomic(raw_path(target), out.raw, indent=1, sort_keys=True)
        written.append(R.write_result(results_dir, record))
    return written


def build_record(benchmark: str, run: dict, out: BenchmarkOutput, started_at: str, raw_output: str | None) -> dict:
    """The one place a result record is built (``harness eval`` and the judged commands alike)."""
    from harness.judged.common import add_coverage

    add_coverage(out.scores, out.judge)
    return {
        "schema_version": R.SCHEMA_VERSION, "run": run, "benchmark": benchmark, "scores": out.scores,
        "conventions": out.conventions, "backend": out.backend, "judge": out.judge, "hardware": R.hardware(),
        "versions": R.versions("lm_eval", "vllm", "openai"), "started_at": started_at, "finished_at": R.now(),
        "raw_output": raw_output,
    }


def report_incomplete(paths) -> int:
    """Print what is missing from each result judged below full coverage (and how to finish it);
    the number of such results (a command exits non-zero when there is one)."""
    import sys

    from harness.judged.common import incomplete

    n = 0
    for p in paths:
        if msg := incomplete(R.read_result(p)):
            print(msg, file=sys.stderr)
            n += 1
    return n


def _same_settings(path: Path, req: EvalRequest | None, fn=None) -> bool:
    from harness.judged.common import incomplete

    try:
        rec = R.read_result(path)
    except R.ResultError:
        return False
    if incomplete(rec):
        return False  # a partial judged result is resumed, never reused as it is
    conv = rec.get("conventions") or {}
    if req is not None and getattr(fn, "settings", None) is not None:
        return conv.get("settings") == fn.settings(req)
    return req is None or (conv.get("limit") == req.limit and conv.get("chat_template", False) == req.chat_template)
