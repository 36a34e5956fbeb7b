"""Shared pieces of the judged benchmarks: run identity, answer generation in resumable chunks,
judge coverage, and what a benchmark returns (``output``)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from harness.generation import Generation, Generator, SamplingSettings


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


ANSWER_METRICS = ("avg_length", "avg_tokens")  # computed from the answers, not from judgments
INCOMPLETE_EXIT = 4  # exit code of a command that wrote a result below full judge coverage


def add_coverage(scores: list[dict], judge: dict | None) -> None:
    """Every judged score carries ``coverage: {judged, expected}`` (from the judge block's ``expected`` and
    ``unjudged``); a null value always says why."""
    if not judge or not judge.get("configured") or judge.get("expected") is None:
        return
    expected = int(judge["expected"])
    judged = max(0, expected - int(judge.get("unjudged") or 0))
    judge["coverage"] = {"judged": judged, "expected": expected}
    for s in scores:
        if s["metric"] in ANSWER_METRICS:
            continue
        s["coverage"] = {"judged": judged, "expected": expected}
        if s["value"] is None and not s.get("unavailable"):
            if judged == 0:
                s["unavailable"] = "not judged: " + (judge.get("stopped") or judge.get("last_error") or "no judgment")
            else:
                s["unavailable"] = f"no parseable verdicts ({judge.get('unparseable', 0)} unparseable)"


def incomplete(record: dict) -> str | None:
    """What is missing from a result judged below full coverage, and how to finish it; None when complete."""
    judge = record.get("judge") or {}
    cov = judge.get("coverage")
    if not cov or cov["judged"] >= cov["expected"]:
        return None
    missing = cov["expected"] - cov["judged"]
    why = judge.get("stopped") or (f"{judge.get('failures', 0)} judge requests failed for good; last error: "
                                   f"{judge.get('last_error')}" if judge.get("last_error") else "not judged")
    hint = (" with a higher --max-judge-cost (or none)" if "max-judge-cost" in (judge.get("stopped") or "") else "")
    return (f"{record['run']['run_id']}/{record['benchmark']}: incomplete: {cov['judged']} of {cov['expected']} "
            f"judgments ({missing} missing: {why}). Its scores cover only those and are marked partial "
            f"(coverage in the result). To finish, rerun the same command{hint}: saved judgments and cached replies "
            f"are reused and only the {missing} missing are requested.")


def output(run: dict, generator: Generator | None, scores: list[dict], *, judge: dict | None, conventions: dict,
           raw_file: str | None = None):
    """What a judged benchmark returns: its scores and files (a ``BenchmarkOutput``); the record is built by
    ``harness.evaluation.runner.build_record``, once, by whoever writes the result."""
    from harness.evaluation import BenchmarkOutput

    backend = {"name": getattr(generator, "name", None) or "answers-file"}
    return BenchmarkOutput(scores=scores, conventions=conventions, backend=backend, judge=judge, raw_file=raw_file,
                           run=run)


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
