"""Judged benchmarks (MT-Bench, AlpacaEval 2, Arena-Hard) behind one entry point.

``run_judged_benchmark(name, generator, judge_cfg, out_dir, limit=None)`` generates answers through
a ``harness.generation.Generator``, judges them with an OpenAI-compatible judge and writes one
schema-checked result file. Without a configured judge it still generates and saves the answers and
returns a record whose scores are null with the reason (what exactly is missing).

Each benchmark module's ``run`` returns scores and files only (a ``harness.evaluation.BenchmarkOutput``);
the record is built once, by ``harness.evaluation.runner.build_record``: here for the standalone commands,
in the runner for ``harness eval``.
"""
from __future__ import annotations

from pathlib import Path

# Each judged benchmark: its module in this package (named as the benchmark; ``run(...) -> BenchmarkOutput``,
# optional ``FLAGS``) and the other names it answers to. Adding one: its module, one entry here, a table spec and
# a test; `harness eval` and `harness judge` pick it up from this table.
ALIASES = {
    "mtbench": (),
    "alpacaeval": ("alpacaeval2",),
    "arenahard": ("arenahardv01", "arenahardv20", "arenahardv2"),
}
BENCHMARKS = tuple(ALIASES)


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(".", "")


def canonical(name: str) -> str:
    """The registry name of a judged benchmark (``arena-hard-v2.0`` -> ``arenahard``)."""
    key = _key(name)
    for canon, aliases in ALIASES.items():
        if key == canon or key in aliases:
            return canon
    raise ValueError(f"unknown judged benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")


def benchmark_module(name: str):
    import importlib

    return importlib.import_module(f"{__name__}.{canonical(name)}")


def run_judged_benchmark(name: str, generator, judge_cfg, out_dir: str | Path, limit: int | None = None, *,
                         run: dict | None = None, results_dir: str | Path | None = None, **options) -> dict:
    """Run one judged benchmark end to end and write its result with ``write_result``.

    ``generator``: a Generator (or None with ``answers_path=`` to judge saved answers).
    ``judge_cfg``: a ``harness.judge.JudgeConfig`` or None (answers only).
    ``options``: benchmark-specific (``data_dir``, ``mode``/``baseline_answers`` for MT-Bench,
    ``version`` for Arena-Hard, ``bootstrap_rounds``...).
    Returns the record (also written to ``results/<run_id>/<benchmark>.json``).
    """
    from harness.results import now

    started = now()
    out = judged_output(name, generator, judge_cfg, out_dir, limit, run=run, **options)
    return _write(canonical(name), out, started, results_dir or out_dir)


def judged_output(name: str, generator, judge_cfg, out_dir: str | Path, limit: int | None = None, *,
                  run: dict | None = None, **options):
    """The same run as ``run_judged_benchmark``, returning its scores and files (a ``BenchmarkOutput``, whose
    ``run`` names the model) without building or writing a record: the evaluation runner does that."""
    return benchmark_module(name).run(generator, judge_cfg, Path(out_dir), limit, run=run, **_alias_options(name, options))


def _alias_options(name: str, options: dict) -> dict:
    """What a versioned alias implies (``arena-hard-v2.0`` -> ``version="v2.0"``) unless given explicitly."""
    return {"version": "v2.0", **options} if _key(name) in ("arenahardv20", "arenahardv2") else options


def judge_saved_answers(name: str, answer_files: list, judge_cfg, out_dir: str | Path, limit: int | None = None, *,
                        run: dict | None = None, results_dir: str | Path | None = None, **options) -> list[dict]:
    """Judge answers already generated (published models' files or a checkpoint's), one result per file, each
    written with ``write_result`` so they sit in the same leaderboard as trained checkpoints. Arena-Hard scores
    all files together (as upstream scores every model of its judgment folder); ``run`` only with one file.
    Returns the records written."""
    from harness.results import now

    files = [Path(f) for f in answer_files]
    if run is not None and len(files) > 1:
        raise ValueError("a run id names one model: give one answers file with --run-id")
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"answers file not found: {f}")
    m = benchmark_module(name)
    options = _alias_options(name, options)
    started = now()
    if hasattr(m, "run_many"):  # scores every model together (Arena-Hard, as upstream)
        outs = m.run_many(None, judge_cfg, Path(out_dir), limit, runs=[run] if run else None,
                          answers_paths=files, **options)
    else:
        outs = []
        for f in files:
            # AlpacaEval keeps one annotation file per folder: one folder per model
            sub = Path(out_dir) / f.name.split(".")[0] if canonical(name) == "alpacaeval" and len(files) > 1 else Path(out_dir)
            outs.append(m.run(None, judge_cfg, sub, limit, run=run, answers_path=f, **options))
    return [_write(canonical(name), out, started, results_dir or out_dir) for out in outs]


def _write(benchmark: str, out, started: str, results_dir) -> dict:
    from harness.evaluation.runner import build_record
    from harness.results import write_result

    record = build_record(benchmark, out.run, out, started, out.raw_file)
    write_result(results_dir, record)
    return record
