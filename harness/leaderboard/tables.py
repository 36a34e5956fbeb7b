"""Leaderboard tables from result records and table specs (leaderboards/specs/*.yaml).

A spec names its columns (benchmark, task, metric, scale; ``ci: true`` prints the 95% interval beside the
value) and its kind:
``runs`` (one row per evaluated run) or ``method_comparison`` (one table per
base model + preference data + training budget, one row per method, the base
model's own row first). Reference rows carry published numbers with a citation.
A value that is null in a result shows as "–" and its reason (the score's ``unavailable``) goes in the notes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MISSING = "–"


@dataclass
class Table:
    name: str  # file stem
    title: str
    headers: list[str]
    rows: list[list[str]]  # formatted cells
    values: list[list[float | None]] = field(default_factory=list)  # numeric cells, for plots
    labels: list[str] = field(default_factory=list)  # row labels, for plots
    notes: list[str] = field(default_factory=list)
    # Published rows shown after the measured ones, never mixed in or plotted: [(heading, rows)].
    blocks: list[tuple[str, list[list[str]]]] = field(default_factory=list)


class SpecError(ValueError):
    pass


def load_spec(path: Path) -> dict:
    spec = yaml.safe_load(path.read_text()) or {}
    for key in ("name", "title", "kind", "columns"):
        if key not in spec:
            raise SpecError(f"{path}: field '{key}' is missing")
    if spec["kind"] not in ("runs", "method_comparison"):
        raise SpecError(f"{path}: field 'kind': '{spec['kind']}' is not 'runs' or 'method_comparison'")
    for i, col in enumerate(spec["columns"]):
        for key in ("header", "benchmark", "task", "metric"):
            if key not in col:
                raise SpecError(f"{path}: columns[{i}]: field '{key}' is missing")
    return spec


def load_references(ref_dir: Path, table: str) -> list[dict]:
    """Published rows for ``table``: {label, values{header: number}, citation}."""
    rows = []
    for path in sorted(ref_dir.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        if table not in (doc.get("tables") or []):
            continue
        for i, r in enumerate(doc.get("rows") or []):
            if "citation" not in r and "citation" not in doc:
                raise SpecError(f"{path}: rows[{i}]: field 'citation' is missing")
            rows.append({"label": r["label"], "values": r.get("values") or {},
                         "citation": r.get("citation", doc.get("citation")), "source_file": path.name,
                         "group": r.get("group") or path.stem})
    return rows


def _score(record: dict, col: dict) -> dict | None:
    if record["benchmark"] != col["benchmark"]:
        return None
    for s in record["scores"]:
        if s["task"] == col["task"] and s["metric"] == col["metric"]:
            return s
    return None


def _lookup(record: dict, col: dict) -> float | None:
    s = _score(record, col)
    return None if s is None else s["value"]


def run_values(records: list[dict], run_id: str, columns: list[dict]) -> list[float | None]:
    vals = []
    for col in columns:
        found = [v for r in records if r["run"]["run_id"] == run_id for v in [_lookup(r, col)] if v is not None]
        vals.append(found[0] * col.get("scale", 1) if found else None)
    return vals


def run_cis(records: list[dict], run_id: str, columns: list[dict]) -> list[tuple[float, float] | None]:
    """95% intervals of the columns marked ``ci: true`` (None elsewhere or when the result has none)."""
    out = []
    for col in columns:
        found = [s["ci95"] for r in records if r["run"]["run_id"] == run_id and col.get("ci")
                 for s in [_score(r, col)] if s is not None and s["value"] is not None and s.get("ci95")]
        out.append(tuple(x * col.get("scale", 1) for x in found[0]) if found else None)
    return out


def null_reasons(records: list[dict], run_id: str, columns: list[dict]) -> list[str]:
    """Why a run's cells are "–" when it has a result for the column's benchmark: one note per reason."""
    by_reason: dict[str, list[str]] = {}
    for col in columns:
        recs = [r for r in records if r["run"]["run_id"] == run_id and r["benchmark"] == col["benchmark"]]
        if not recs or any(_lookup(r, col) is not None for r in recs):
            continue
        row = _score(recs[0], col)
        reason = (row or {}).get("unavailable")
        if reason is None:  # the row is absent: the task's own reason (e.g. nothing judged at all)
            reason = next((s["unavailable"] for s in recs[0]["scores"] if s["task"] == col["task"] and s.get("unavailable")),
                          f"no {col['task']} {col['metric']} in the {col['benchmark']} result")
        by_reason.setdefault(reason, []).append(col["header"])
    return [f"{run_id}: {', '.join(headers)} {MISSING} {reason}" for reason, headers in by_reason.items()]


def _fmt(v: float | None, digits: int, ci: tuple[float, float] | None = None) -> str:
    if v is None:
        return MISSING
    if ci is None:
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} (-{v - ci[0]:.{digits}f}/+{ci[1] - v:.{digits}f})"


def _average(vals: list[float | None]) -> float | None:
    # Like the leaderboard: an average only over a complete row.
    return sum(vals) / len(vals) if vals and all(v is not None for v in vals) else None


def _row(label_cells: list[str], vals: list[float | None], spec: dict,
         cis: list | None = None) -> tuple[list[str], list[float | None]]:
    digits = spec.get("digits", 2)
    cis = list(cis or [None] * len(vals))
    if spec.get("average"):
        vals, cis = [_average(vals), *vals], [None, *cis]
    return label_cells + [_fmt(v, digits, ci) for v, ci in zip(vals, cis)], vals


def _headers(spec: dict, label_headers: list[str]) -> list[str]:
    avg = [spec["average"]] if spec.get("average") else []
    return label_headers + avg + [c["header"] for c in spec["columns"]]


def _references(spec, refs, n_label_cols):
    rows, values, labels, notes = [], [], [], []
    for i, ref in enumerate(refs, start=1):
        vals = [ref["values"].get(c["header"]) for c in spec["columns"]]
        avg_given = ref["values"].get(spec.get("average")) if spec.get("average") else None
        cells, nums = _row([], vals, spec)
        if spec.get("average") and avg_given is not None:  # keep the paper's own average when it printed one
            nums[0] = avg_given
            cells[0] = _fmt(avg_given, spec.get("digits", 2))
        label = [f"{ref['label']} [{i}]"] + ["published"] * (n_label_cols - 1)
        rows.append(label + cells)
        values.append(nums)
        labels.append(ref["label"])
        notes.append(f"[{i}] published, not measured here: {ref['citation']}")
    return rows, values, labels, notes


def runs_table(spec: dict, records: list[dict], refs: list[dict]) -> Table:
    run_ids = sorted({r["run"]["run_id"] for r in records if any(r["benchmark"] == c["benchmark"] for c in spec["columns"])})
    meta = {r["run"]["run_id"]: r["run"] for r in records}
    rows, values, labels = [], [], []
    for rid in run_ids:
        cells, nums = _row([rid, meta[rid]["method"], "measured"], run_values(records, rid, spec["columns"]), spec,
                           run_cis(records, rid, spec["columns"]))
        rows.append(cells)
        values.append(nums)
        labels.append(rid)
    r_rows, r_vals, r_labels, notes = _references(spec, refs, 3)
    reasons = [n for rid in run_ids for n in null_reasons(records, rid, spec["columns"])]
    notes = _measured_notes(records, run_ids) + reasons + notes
    return Table(spec["name"], spec["title"], _headers(spec, ["Model", "Method", "Source"]),
                 rows + r_rows, values + r_vals, labels + r_labels, notes)


def _measured_notes(records: list[dict], run_ids: list[str]) -> list[str]:
    notes = []
    for rid in run_ids:
        convs = [r.get("conventions") or {} for r in records if r["run"]["run_id"] == rid]
        if any(c.get("limit") is not None for c in convs):
            notes.append(f"{rid}: smoke run (--limit); not comparable to published numbers")
        if any(any("fixture" in str(v) for v in (c.get("data_sources") or {}).values()) for c in convs):
            notes.append(f"{rid}: some tasks scored on the project's small offline fixtures")
    return notes


def group_key(run: dict) -> str | None:
    if not run.get("data_fingerprint"):
        return None
    # The budget is the pair gradients taken (and how they were batched), not the step count:
    # sDPO's per-chunk steps round up differently from one pass over the same data.
    budget = {k: v for k, v in (run.get("budget") or {}).items() if k not in ("steps", "epochs")}
    if budget.get("pairs_seen") is None:  # results written before pairs_seen was recorded
        budget["steps"] = (run.get("budget") or {}).get("steps")
    return json.dumps([run.get("base_model_fingerprint"), run.get("data_fingerprint"), budget], sort_keys=True)


def published_blocks(spec: dict, refs: list[dict], smoke: bool) -> tuple[list[tuple[str, list[list[str]]]], list[str]]:
    """The references as blocks, one per paper table and base model, each under its own heading."""
    rows, _, _, notes = _references(spec, refs, 2)
    head = "Published, not measured here" + ("; not comparable to these tiny smoke runs" if smoke else "")
    blocks: dict[str, list[list[str]]] = {}
    for ref, row in zip(refs, rows):
        blocks.setdefault(f"{head}: {ref['group']}", []).append(row)
    return list(blocks.items()), notes


def comparison_tables(spec: dict, records: list[dict], refs: list[dict]) -> list[Table]:
    runs = {r["run"]["run_id"]: r["run"] for r in records}
    groups: dict[str, list[str]] = {}
    for rid, run in runs.items():
        if (key := group_key(run)) is not None:
            groups.setdefault(key, []).append(rid)
    tables = []
    for key in sorted(groups):
        members = groups[key]
        first = runs[members[0]]
        base_fp = first.get("base_model_fingerprint")
        bases = sorted(rid for rid, run in runs.items() if run["method"] == "base" and run.get("model_fingerprint") == base_fp)
        ordered = bases + sorted(members, key=lambda rid: (runs[rid]["method"], rid))
        rows, values, labels = [], [], []
        for rid in ordered:
            cells, nums = _row([runs[rid]["method"], rid], run_values(records, rid, spec["columns"]), spec,
                               run_cis(records, rid, spec["columns"]))
            rows.append(cells)
            values.append(nums)
            labels.append(runs[rid]["method"])
        budget = first.get("budget") or {}
        amount = f"{budget['pairs_seen']} pairs seen" if budget.get("pairs_seen") else f"{budget.get('steps')} steps"
        base_name = Path(str(first.get("base_model"))).name
        slug = f"{base_name}-{str(base_fp)[:8]}-{str(first['data_fingerprint'])[:8]}-{amount.split()[0]}{amount.split()[1]}"
        title = (f"{spec['title']}: base {base_name} ({str(base_fp)[:8]}), data "
                 f"{', '.join(d.split('=')[0] for d in first.get('data') or []) or 'default'} ({str(first['data_fingerprint'])[:8]}), "
                 f"{amount}")
        notes = _measured_notes(records, ordered) + [n for rid in ordered for n in null_reasons(records, rid, spec["columns"])]
        smoke = any((r.get("conventions") or {}).get("limit") is not None for r in records if r["run"]["run_id"] in ordered)
        blocks, ref_notes = published_blocks(spec, refs, smoke)
        tables.append(Table(f"{spec['name']}/{slug}", title, _headers(spec, ["Method", "Run"]), rows, values, labels,
                            notes + ref_notes, blocks))
    if refs and not tables:  # nothing measured yet: the published rows alone
        r_rows, r_vals, r_labels, notes = _references(spec, refs, 2)
        tables.append(Table(f"{spec['name']}/published", f"{spec['title']}: published numbers",
                            _headers(spec, ["Method", "Run"]), r_rows, r_vals, r_labels, notes))
    return tables


def build_tables(spec: dict, records: list[dict], refs: list[dict]) -> list[Table]:
    if spec["kind"] == "runs":
        return [runs_table(spec, records, refs)]
    return comparison_tables(spec, records, refs)
