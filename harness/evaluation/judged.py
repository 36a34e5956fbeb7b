"""MT-Bench, AlpacaEval 2 and Arena-Hard in the evaluation registry, so `harness eval` and
`harness train-and-eval` run them through the same runner as openllm: one result file per
(run, benchmark), written by the runner, with the runner's run block (run.json of a trained model).

The benchmarks themselves live in harness/judged; this module only builds their generator and judge
from an ``EvalRequest``. Answers, judgments and the judge cache go to the runner's work dir beside the
result (``results/<run_id>/<benchmark>/``). Without a usable judge the answers are still generated and
saved, and the scores are null with the reason (which setting is missing).

``req.options``: ``judge`` (a JudgeConfig or None), ``max_new_tokens`` (a cap on every benchmark's own
answer length, for smoke runs and small models; None = the benchmark's protocol).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from harness.evaluation import BenchmarkOutput, EvalRequest, register_benchmark
from harness.generation import SamplingSettings
from harness.judged import BENCHMARKS as JUDGED

_PUBLIC_BACKEND_OPTIONS = ("batch_size", "device", "tensor_parallel_size", "base_url", "api_key_env")


class CappedGenerator:
    """Lowers every request's max_new_tokens to ``cap``; the cap is recorded in the result's conventions."""

    def __init__(self, inner, cap: int):
        self.inner, self.cap = inner, cap
        self.name = getattr(inner, "name", "model")

    def generate(self, conversations, sampling: SamplingSettings):
        return self.inner.generate(conversations,
                                   dataclasses.replace(sampling, max_new_tokens=min(self.cap, sampling.max_new_tokens)))


_loaded: dict = {}  # one generator at a time: the judged benchmarks of one model share its weights


def build_generator(req: EvalRequest):
    from harness.generation import get_generator

    opts = dict(req.backend_options)
    key = json.dumps([req.backend, req.model, opts], sort_keys=True, default=str)
    if _loaded.get("key") != key:
        _loaded.clear()  # drop the previous model before loading the next one
        if req.backend == "openai":
            env = opts.pop("api_key_env", None)
            opts["api_key"] = os.environ.get(env) if env else None  # None: the backend's own default
        elif req.backend == "vllm":
            opts.pop("data_parallel_size", None)  # an lm-eval option; one in-process engine here
        _loaded.update(key=key, generator=get_generator(req.backend, req.model, progress=req.progress, **opts))
    gen = _loaded["generator"]
    cap = req.options.get("max_new_tokens")
    return CappedGenerator(gen, cap) if cap else gen


def judge_for(req: EvalRequest):
    """A private copy per benchmark: the judged modules fill in their own cache dir."""
    cfg = req.options.get("judge")
    return dataclasses.replace(cfg, progress=req.progress) if cfg is not None else None


def settings(req: EvalRequest) -> dict:
    """What an existing result must have been computed with to be reused (train-and-eval reruns)."""
    cfg = req.options.get("judge")
    ready = cfg is not None and not cfg.missing()
    return {"limit": req.limit, "backend": req.backend, "base_url": req.backend_options.get("base_url"),
            "per_benchmark": req.options.get("per_benchmark"),
            "max_new_tokens": req.options.get("max_new_tokens"),
            "judge": {"model": cfg.model, "endpoint": cfg.endpoint} if ready else None}


def _relative(value, work: Path, base: Path):
    """Paths the judged modules report, made relative to the result's folder: results/ can be moved."""
    if isinstance(value, str) and value.startswith(str(work)):
        return os.path.relpath(value, base)
    return value


def run_judged(name: str, req: EvalRequest) -> BenchmarkOutput:
    from harness.judged import judged_output

    if not req.work_dir:
        raise ValueError(f"{name}: no work directory for answers and judgments (run it through evaluate_model)")
    work = Path(req.work_dir)
    base = work.parent
    cap = req.options.get("max_new_tokens")
    out = judged_output(name, build_generator(req), judge_for(req), work, req.limit, run=req.run,
                        data_dir=req.data_dir, **(req.options.get("per_benchmark") or {}).get(name, {}))
    # What this runner adds to the benchmark's own conventions: the request's cap, limit and settings, and
    # paths relative to the result's folder (results/ can be moved).
    conv = {k: _relative(v, work, base) for k, v in out.conventions.items()}
    if cap and isinstance(conv.get("max_new_tokens"), int):
        conv["max_new_tokens"] = min(cap, conv["max_new_tokens"])
    conv.update(limit=req.limit, max_new_tokens_cap=cap, settings=settings(req),
                comparable_to_published=req.limit is None and not cap)
    judge = {k: _relative(v, work, base) for k, v in out.judge.items()} if out.judge else out.judge
    backend = {"name": req.backend, "model": req.model,
               **{k: v for k, v in req.backend_options.items() if k in _PUBLIC_BACKEND_OPTIONS}}
    return dataclasses.replace(out, conventions=conv, backend=backend, judge=judge,
                               raw_file=_relative(out.raw_file, work, base))


def _register(name: str):
    def fn(req: EvalRequest) -> BenchmarkOutput:
        return run_judged(name, req)

    fn.__name__ = f"run_{name}"
    from harness.judged import benchmark_module

    # a judged module owns its CLI flags (``FLAGS``), read by `harness eval` and `harness judge` alike
    register_benchmark(name, flags=getattr(benchmark_module(name), "FLAGS", None), settings=settings)(fn)


for _name in JUDGED:
    _register(_name)
