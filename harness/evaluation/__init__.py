"""Benchmarks behind one small interface: name -> callable(EvalRequest) -> BenchmarkOutput.

Built-in: ``openllm`` (Open LLM Leaderboard v1 through lm-eval) and the judged benchmarks
``mtbench``, ``alpacaeval``, ``arenahard`` (harness/evaluation/judged.py). A benchmark plugs in by
decorating a function with ``@register_benchmark("name", ...)`` in a module listed in ``BENCHMARK_MODULES``;
the registry is the one place that owns its name, its CLI flags and its options:

- ``add_arguments(group)``: the argparse flags it owns (``harness eval --help`` shows them in its own group);
- ``options(args) -> dict``: those flags turned into its options (``req.options["per_benchmark"][name]``);
- ``settings(req) -> dict``: what must match (kept in the result's ``conventions.settings``) for an existing
  result to be reused instead of recomputed.

The function returns scores and files (a ``BenchmarkOutput``); the runner builds the result record
(harness/evaluation/runner.py ``build_record``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

BENCHMARK_MODULES = ["harness.evaluation.openllm", "harness.evaluation.arithmetic", "harness.evaluation.preference_heldout",
                     "harness.evaluation.judged"]


@dataclass
class EvalRequest:
    model: str  # local path or hub id of the checkpoint to evaluate
    backend: str = "hf"  # hf | vllm | openai
    backend_options: dict = field(default_factory=dict)  # batch_size, device, tensor_parallel_size, base_url, ...
    limit: int | None = None  # documents per task: smoke runs only
    tasks: list[str] | None = None  # subset of the benchmark's tasks
    data_dir: str | None = None  # local benchmark data (HARNESS_DATA_DIR); None = the hub
    chat_template: bool = False
    progress: bool = True
    options: dict = field(default_factory=dict)  # benchmark-specific (judge model, ...)
    run: dict | None = None  # the result's `run` block (set by the runner): judged answers are keyed by run_id
    work_dir: str | None = None  # where a benchmark keeps its own files (answers, judgments), set by the runner


@dataclass
class BenchmarkOutput:
    scores: list[dict]  # rows of the result schema's `scores`
    conventions: dict
    backend: dict
    raw: dict | None = None  # the tool's own output, kept beside the result
    judge: dict | None = None
    raw_file: str | None = None  # a file the benchmark wrote itself, relative to the result's folder
    run: dict | None = None  # the model scored, when the benchmark itself names it (saved answers of a published model)


BENCHMARKS: dict[str, Callable[[EvalRequest], BenchmarkOutput]] = {}


@dataclass
class BenchmarkFlags:
    """The CLI flags a benchmark owns, and how they become its options."""
    title: str  # argument group title in --help
    add_arguments: Callable  # (argparse group) -> None
    options: Callable  # (parsed args) -> dict for req.options["per_benchmark"][name]


FLAGS: dict[str, BenchmarkFlags] = {}


def register_benchmark(name: str, *, flags: BenchmarkFlags | None = None, settings: Callable | None = None):
    def wrap(fn):
        if settings is not None:
            fn.settings = settings
        BENCHMARKS[name] = fn
        if flags is not None:
            FLAGS[name] = flags
        return fn

    return wrap


def benchmark_flags() -> dict[str, BenchmarkFlags]:
    """Every registered benchmark's own CLI flags (loads the benchmark modules)."""
    benchmarks()
    return FLAGS


def ignored_flags(args, selected) -> list[str]:
    """Benchmark flags set to a non-default value for a benchmark that is not in ``selected``: the command
    refuses them (exit 2) rather than ignore a setting silently."""
    import argparse

    found = []
    for name, flags in benchmark_flags().items():
        if name in selected:
            continue
        own = argparse.ArgumentParser(add_help=False)
        flags.add_arguments(own)
        for action in own._actions:
            if getattr(args, action.dest, action.default) != action.default:
                found.append(f"{action.option_strings[0]} ({name})")
    return found


def benchmarks() -> dict[str, Callable[[EvalRequest], BenchmarkOutput]]:
    for m in BENCHMARK_MODULES:
        try:
            importlib.import_module(m)
        except ModuleNotFoundError as e:
            if e.name != m:  # the module exists but one of its imports is missing: say so
                raise
    return BENCHMARKS


def get_benchmark(name: str):
    found = benchmarks()
    if name not in found:
        raise KeyError(f"unknown benchmark '{name}'; known: {', '.join(sorted(found))}")
    return found[name]
