"""Shared pieces of the judged benchmarks: run identity, answer generation in resumable chunks,
and the result record."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from harness.generation import Generation, Generator, SamplingSettings
from harness.results import hardware, now, versions


def run_info(generator: Generator, run: dict | None) -> dict:
    return run or base_run(getattr(generator, "name", None) or "model")


def base_run(model: str) -> dict:
    """The run block for answers of a model that no training run describes."""
    return {"run_id": safe_name(model), "method": "base", "model": model}


def judge_missing(judge_cfg) -> list[str]:
    """What keeps the judge from running; empty when it is ready."""
    return judge_cfg.missing() if judge_cfg is not None else ["a judge model (--judge-model)"]


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "model"


def generate_chunked(generator: Generator, conversations: list, sampling: SamplingSettings, chunk: int,
                     on_chunk, desc: str) -> None:
    """Generate in chunks so each chunk reaches disk (``on_chunk(start, generations)``) before the next."""
    from tqdm import tqdm

    with tqdm(total=len(conversations), desc=desc, unit="answer", file=sys.stderr) as bar:
        for start in range(0, len(conversations), chunk):
            part = conversations[start:start + chunk]
            gens: list[Generation] = generator.generate(part, sampling)
            if len(gens) != len(part):
                raise RuntimeError(f"generator {generator.name!r} returned {len(gens)} answers for {len(part)} prompts")
            on_chunk(start, gens)
            bar.update(len(part))


def make_record(benchmark: str, run: dict, generator: Generator | None, scores: list[dict], *, judge: dict | None,
                conventions: dict, started_at: str, raw_output: str | None = None) -> dict:
    backend = {"name": getattr(generator, "name", None) or "answers-file"}
    return {
        "schema_version": 1, "run": run, "benchmark": benchmark, "scores": scores, "backend": backend,
        "judge": judge, "conventions": conventions, "hardware": hardware(), "versions": versions("openai"),
        "started_at": started_at, "finished_at": now(), "raw_output": raw_output,
    }


def unavailable(task: str, metric: str, reason: str) -> dict:
    return {"task": task, "metric": metric, "value": None, "unavailable": reason}


def sem(values) -> float | None:
    import numpy as np

    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None


def rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return str(path)


def now_iso() -> str:
    return now()
