"""Gather result files: every invalid or duplicate file is reported by name, never mixed in."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness import results as R


@dataclass
class Collected:
    records: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "path: why"


def result_files(results_dir: Path) -> list[Path]:
    # Results are results/<run_id>/<benchmark>.json. Raw tool output sits beside each as <benchmark>.raw.json,
    # and judged benchmarks keep answers and judgments (also JSON) in results/<run_id>/<benchmark>/: not results.
    return sorted(p for p in Path(results_dir).glob("*/*.json") if not p.name.endswith(".raw.json"))


def collect(results_dir: str | Path) -> Collected:
    out = Collected()
    by_key: dict[tuple[str, str], list[tuple[Path, dict]]] = {}
    for path in result_files(Path(results_dir)):
        try:
            rec = R.read_result(path)
        except R.ResultError as e:
            out.problems.append(str(e))
            continue
        by_key.setdefault((rec["run"]["run_id"], rec["benchmark"]), []).append((path, rec))
    for (run_id, bench), found in sorted(by_key.items()):
        if len(found) > 1:
            names = ", ".join(str(p) for p, _ in found)
            out.problems.extend(f"{p}: duplicate result for run '{run_id}', benchmark '{bench}' (also in: {names})"
                                for p, _ in found)
            continue
        out.records.append(found[0][1])
    return out
