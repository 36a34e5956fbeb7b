"""Gather result files: every invalid or duplicate file is reported by name, never mixed in.

A newer run of the same method, base model and configuration replaces an older one (regenerating
results after a code change gives one row, not two); the older run is named in the tables' notes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness import results as R


@dataclass
class Collected:
    records: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "path: why"
    items: dict = field(default_factory=dict)  # (run_id, benchmark) -> per-item scores from the raw output
    superseded: dict = field(default_factory=dict)  # kept run_id -> [older run_ids of the same configuration]


def result_files(results_dir: Path) -> list[Path]:
    # Results are results/<run_id>/<benchmark>.json. Raw tool output sits beside each as <benchmark>.raw.json,
    # and judged benchmarks keep answers and judgments (also JSON) in results/<run_id>/<benchmark>/: not results.
    return sorted(p for p in Path(results_dir).glob("*/*.json") if not p.name.endswith(".raw.json"))


def _name(path_or_id) -> str:
    # Local paths differ between machines (a cache folder): the folder's name identifies the model.
    s = str(path_or_id)
    return Path(s).name if s.startswith(("/", ".", "~")) or "\\" in s else s


def identity(run: dict) -> str:
    """Method + base model + configuration, without fingerprints: what a rerun of the same command shares."""
    if run["method"] == "base":
        return json.dumps(["base", _name(run.get("base_model") or run.get("model"))])
    data = []
    for spec in run.get("data") or []:
        name, sep, path = spec.rpartition("=")
        data.append(f"{name}{sep}{_name(path)}")
    return json.dumps([run["method"], _name(run.get("base_model")), data, run.get("hyperparameters") or {},
                       run.get("budget") or {}], sort_keys=True, default=str)


def latest_runs(records: list[dict]) -> tuple[list[dict], dict[str, list[str]]]:
    """Keep the newest run (latest finished_at, then run_id) of each identity; map it to the ones it replaces."""
    runs: dict[str, dict] = {}
    finished: dict[str, str] = {}
    for r in records:
        rid = r["run"]["run_id"]
        runs[rid] = r["run"]
        finished[rid] = max(finished.get(rid, ""), r.get("finished_at") or "")
    by_identity: dict[str, list[str]] = {}
    for rid, run in runs.items():
        by_identity.setdefault(identity(run), []).append(rid)
    superseded, dropped = {}, set()
    for rids in by_identity.values():
        rids.sort(key=lambda x: (finished[x], x))
        if len(rids) > 1:
            superseded[rids[-1]] = rids[:-1]
            dropped.update(rids[:-1])
    return [r for r in records if r["run"]["run_id"] not in dropped], superseded


def _per_item(path: Path, rec: dict) -> dict | None:
    raw = rec.get("raw_output")
    if not raw or not str(raw).endswith(".json"):
        return None
    try:
        return json.loads((path.parent / raw).read_text(encoding="utf-8")).get("per_item")
    except (OSError, ValueError, AttributeError):
        return None  # no per-item scores: the cell is shown, just not tested against the base


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
    records = []
    for (run_id, bench), found in sorted(by_key.items()):
        if len(found) > 1:
            names = ", ".join(str(p) for p, _ in found)
            out.problems.extend(f"{p}: duplicate result for run '{run_id}', benchmark '{bench}' (also in: {names})"
                                for p, _ in found)
            continue
        path, rec = found[0]
        records.append(rec)
        if (items := _per_item(path, rec)) is not None:
            out.items[(run_id, bench)] = items
    out.records, out.superseded = latest_runs(records)
    return out
