"""Leaderboard tables from result records and table specs (leaderboards/specs/*.yaml).

A spec names its columns (benchmark, task, metric, scale; ``ci: true`` prints the 95% interval beside the
value; or benchmark and ``judge``: a number from the result's judge block, e.g. ``judging_cost_usd``) and its kind:
``runs`` (one row per evaluated run) or ``method_comparison`` (one table per
base model + preference data + training budget, one row per method, the base
model's own row first). Reference rows carry published numbers with a citation.
A value that is null in a result shows as "–" and its reason (the score's ``unavailable``) goes in the notes.

Every measured cell shows "value ± standard error"; a row of several seeds of one configuration shows
"mean ± standard deviation over seeds". A cell that differs from the base model's row by a paired bootstrap
over the same items (per-item scores from the raw output) is marked "*". Notes hold one line per condition
with the runs it applies to.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.leaderboard.stats import N_RESAMPLES, SEED, mean_std, significant

MISSING = "–"
SIG = "*"
NO_SE = "n/a"


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
    y_label: str = "score"
    published: list[str] = field(default_factory=list)  # plot labels of published (reference) rows
    not_comparable: list[str] = field(default_factory=list)  # plot labels of measured rows not comparable to those
    run_ids: list[str] = field(default_factory=list)  # measured runs shown


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
        for key in ("header", "benchmark", *(() if "judge" in col else ("task", "metric"))):
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
    if "judge" in col:  # a number from the judge block (the judging cost), not a score
        judge = record.get("judge") or {}
        value = judge.get(col["judge"])
        why = ("not judged" if not judge.get("configured") else f"no {col['judge']} recorded (the judge's price is "
               "unknown: --judge-price-in/--judge-price-out)")
        return {"value": value, **({} if value is not None else {"unavailable": why})}
    for s in record["scores"]:
        if s["task"] == col["task"] and s["metric"] == col["metric"]:
            return s
    return None


class Results:
    """Records by run, with their per-item scores (from the raw outputs) and superseded runs."""

    def __init__(self, records: list[dict], items: dict | None = None, superseded: dict | None = None):
        self.records = records
        self.meta = {r["run"]["run_id"]: r["run"] for r in records}
        self.items = items or {}  # (run_id, benchmark) -> {"task:metric": [[item_id, score], ...]}
        self.superseded = superseded or {}  # run_id -> older run_ids of the same configuration

    def of(self, run_id: str) -> list[dict]:
        return [r for r in self.records if r["run"]["run_id"] == run_id]

    def score(self, run_id: str, col: dict) -> dict | None:
        found = [s for r in self.of(run_id) for s in [_score(r, col)] if s is not None and s["value"] is not None]
        return found[0] if found else None

    def value(self, run_id: str, col: dict) -> float | None:
        s = self.score(run_id, col)
        return None if s is None else s["value"] * col.get("scale", 1)

    def stderr(self, run_id: str, col: dict) -> float | None:
        s = self.score(run_id, col)
        return None if s is None or s.get("stderr") is None else s["stderr"] * col.get("scale", 1)

    def ci(self, run_id: str, col: dict) -> tuple[float, float] | None:
        s = self.score(run_id, col)
        return tuple(x * col.get("scale", 1) for x in s["ci95"]) if s is not None and s.get("ci95") else None

    def per_item(self, run_id: str, col: dict) -> list | None:
        if "judge" in col:
            return None  # one number per run: no per-item scores, no paired test
        return (self.items.get((run_id, col["benchmark"])) or {}).get(f"{col['task']}:{col['metric']}")


@dataclass
class Cell:
    value: float | None
    err: float | None = None  # standard error, or the standard deviation over seeds
    ci: tuple[float, float] | None = None
    differs: bool = False  # from the base row, by the paired bootstrap
    exact: bool = False  # a recorded number (the judging cost), not an estimate: no ± shown


def _average(vals: list[float | None]) -> float | None:
    # Like the leaderboard: an average only over a complete row.
    return sum(vals) / len(vals) if vals and all(v is not None for v in vals) else None


def measured_cells(res: Results, run_ids: list[str], spec: dict, base_id: str | None) -> list[Cell]:
    """One row's cells: a single run (± standard error) or several seeds (mean ± standard deviation)."""
    cols = spec["columns"]
    per_seed = [[res.value(r, c) for c in cols] for r in run_ids]
    ses = [[res.stderr(r, c) for c in cols] for r in run_ids]
    cells = []
    for j, col in enumerate(cols):
        vals = [row[j] for row in per_seed]
        if any(v is None for v in vals):
            cells.append(Cell(None))
            continue
        if len(run_ids) == 1:
            cell = Cell(vals[0], ses[0][j], res.ci(run_ids[0], col) if col.get("ci") else None, exact="judge" in col)
        else:
            cell = Cell(*mean_std(vals))
        if base_id is not None and base_id not in run_ids:
            cell.differs = _differs(res, base_id, run_ids, col)
        cells.append(cell)
    if spec.get("average"):
        avgs = [_average(row) for row in per_seed]
        if any(a is None for a in avgs):
            avg = Cell(None)
        elif len(run_ids) == 1:
            e = ses[0]  # tasks are independent samples: se(mean) = sqrt(sum se_i^2) / k
            avg = Cell(avgs[0], math.sqrt(sum(x * x for x in e)) / len(e) if all(x is not None for x in e) else None)
        else:
            avg = Cell(*mean_std(avgs))
        cells = [avg, *cells]
    return cells


def _differs(res: Results, base_id: str, run_ids: list[str], col: dict) -> bool:
    base = res.per_item(base_id, col)
    runs = [res.per_item(r, col) for r in run_ids]
    if base is None or any(r is None for r in runs):
        return False
    if len(runs) > 1:  # several seeds: each item's mean over seeds
        maps = [{str(i): v for i, v in r} for r in runs]
        if any(set(m) != set(maps[0]) or any(v is None for v in m.values()) for m in maps):
            return False
        runs = [[[i, sum(m[i] for m in maps) / len(maps)] for i in maps[0]]]
    return significant(base, runs[0]) is True


def _fmt(v: float | None, digits: int, ci: tuple[float, float] | None = None) -> str:
    if v is None:
        return MISSING
    if ci is None:
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} (-{v - ci[0]:.{digits}f}/+{ci[1] - v:.{digits}f})"


def _fmt_cell(c: Cell, digits: int) -> str:
    if c.value is None:
        return MISSING
    if c.exact:
        text = f"{c.value:.{digits}f}"
    elif c.ci is not None:
        text = _fmt(c.value, digits, c.ci)
    else:
        text = f"{c.value:.{digits}f} ± " + (f"{c.err:.{digits}f}" if c.err is not None else NO_SE)
    return text + (f" {SIG}" if c.differs else "")


def _headers(spec: dict, label_headers: list[str]) -> list[str]:
    avg = [spec["average"]] if spec.get("average") else []
    return label_headers + avg + [c["header"] for c in spec["columns"]]


def _row(label_cells: list[str], vals: list[float | None], spec: dict) -> tuple[list[str], list[float | None]]:
    """A published row: numbers as printed, no error."""
    digits = spec.get("digits", 2)
    if spec.get("average"):
        vals = [_average(vals), *vals]
    return label_cells + [_fmt(v, digits) for v in vals], vals


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


# ------------------------------------------------------------------ rows of runs
def config_key(run: dict) -> str:
    """Runs that differ only in their seed are one configuration (one row, mean ± sd over seeds). A model this
    project did not train (a base model, saved answers of a published model) is its own configuration."""
    if run.get("seed") is None and not run.get("data_fingerprint"):
        return json.dumps(["model", run.get("model_fingerprint") or run["run_id"]])
    hp = {k: v for k, v in (run.get("hyperparameters") or {}).items() if k != "seed"}
    return json.dumps([run["method"], run.get("base_model_fingerprint"), run.get("data_fingerprint"), hp],
                      sort_keys=True, default=str)


def configurations(res: Results, run_ids: list[str]) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for rid in run_ids:
        groups.setdefault(config_key(res.meta[rid]), []).append(rid)
    return [sorted(g, key=lambda r: ((res.meta[r].get("hyperparameters") or {}).get("seed") or 0, r))
            for g in groups.values()]


def config_labels(res: Results, configs: list[list[str]]) -> list[str]:
    """Method name, plus the hyperparameters that tell apart rows of one method, plus the seed count."""
    by_method: dict[str, list[dict]] = {}
    for g in configs:
        by_method.setdefault(res.meta[g[0]]["method"], []).append(res.meta[g[0]].get("hyperparameters") or {})
    labels = []
    for g in configs:
        run = res.meta[g[0]]
        hps = by_method[run["method"]]
        keys = sorted(k for k in {k for h in hps for k in h} if k != "seed" and len({json.dumps(h.get(k)) for h in hps}) > 1)
        extra = [f"{k}={(run.get('hyperparameters') or {}).get(k)}" for k in keys]
        if len(g) > 1:
            extra.append(f"{len(g)} seeds")
        labels.append(run["method"] + (f" ({', '.join(extra)})" if extra else ""))
    return labels


def base_of(res: Results, run_id: str) -> str | None:
    run = res.meta[run_id]
    if run["method"] == "base":
        return None
    bases = sorted(rid for rid, r in res.meta.items()
                   if r["method"] == "base" and r.get("model_fingerprint") == run.get("base_model_fingerprint"))
    return bases[0] if bases else None


def _not_comparable(res: Results, run_ids: list[str], spec: dict) -> bool:
    benches = {c["benchmark"] for c in spec["columns"]}
    return any((r.get("conventions") or {}).get("limit") is not None
               or (r.get("conventions") or {}).get("comparable_to_published") is False
               for rid in run_ids for r in res.of(rid) if r["benchmark"] in benches)


# ------------------------------------------------------------------------ notes
def null_reasons(records: list[dict], run_id: str, columns: list[dict]) -> list[str]:
    """Why a run's cells are "–" when it has a result for the column's benchmark: one text per reason."""
    by_reason: dict[str, list[str]] = {}
    for col in columns:
        recs = [r for r in records if r["run"]["run_id"] == run_id and r["benchmark"] == col["benchmark"]]
        if not recs or any((_score(r, col) or {}).get("value") is not None for r in recs):
            continue
        row = _score(recs[0], col)
        reason = (row or {}).get("unavailable")
        if reason is None:  # the row is absent: the task's own reason (e.g. nothing judged at all)
            reason = next((s["unavailable"] for s in recs[0]["scores"] if s["task"] == col["task"] and s.get("unavailable")),
                          f"no {col['task']} {col['metric']} in the {col['benchmark']} result")
        by_reason.setdefault(reason, []).append(col["header"])
    return [f"{', '.join(headers)} {MISSING}: {reason}" for reason, headers in by_reason.items()]


def condition_notes(res: Results, run_ids: list[str], spec: dict) -> list[str]:
    """One note per condition, naming the runs it applies to."""
    conds: dict[str, list[str]] = {}

    def add(text: str, rid: str) -> None:
        if rid not in conds.setdefault(text, []):
            conds[text].append(rid)

    benches = {c["benchmark"] for c in spec["columns"]}
    tasks = {c["task"] for c in spec["columns"] if "task" in c}
    for rid in run_ids:
        for rec in res.of(rid):
            if rec["benchmark"] not in benches:
                continue
            conv = rec.get("conventions") or {}
            if conv.get("limit") is not None:
                add(f"smoke run ({rec['benchmark']} --limit {conv['limit']}): not comparable to published numbers", rid)
            for task, src in sorted((conv.get("data_sources") or {}).items()):
                if task in tasks and "fixture" in str(src):
                    add(f"{task}: scored on the project's small offline fixture, not the real benchmark", rid)
            for task, how in sorted((conv.get("fewshot_source") or {}).items()):
                if task in tasks:
                    add(f"{task}: few-shot examples from {how}", rid)
        for text in null_reasons(res.records, rid, spec["columns"]):
            add(text, rid)
        if res.superseded.get(rid):
            add(f"replaces older results of the same method, base and configuration "
                f"({', '.join(res.superseded[rid])}, not shown)", rid)
    return [f"{text} (runs: {', '.join(rids)})" for text, rids in conds.items()]


def legend_notes(configs: list[list[str]], tested: bool) -> list[str]:
    if not configs:
        return []
    notes = ["± is the standard error over items" + ("; in a row of several seeds, the standard deviation over seeds"
                                                     if any(len(g) > 1 for g in configs) else "")
             + f" ({NO_SE}: none available)"]
    if tested:
        notes.append(f"{SIG} differs from the base model's row: paired bootstrap over the same items, the 95 % "
                     f"interval of the difference excludes 0 ({N_RESAMPLES} resamples, seed {SEED})")
    return notes


# ----------------------------------------------------------------------- tables
def _measured_rows(res: Results, configs: list[list[str]], spec: dict, label_cells) -> tuple:
    rows, values, labels, bad = [], [], [], []
    digits = [spec.get("digits", 2)] * (1 if spec.get("average") else 0) + [
        c.get("digits", spec.get("digits", 2)) for c in spec["columns"]]
    for g, (cells_label, plot_label) in zip(configs, label_cells):
        base = base_of(res, g[0])
        cells = measured_cells(res, g, spec, base)
        rows.append(cells_label + [_fmt_cell(c, d) for c, d in zip(cells, digits)])
        values.append([c.value for c in cells])
        labels.append(plot_label)
        if _not_comparable(res, g, spec):
            bad.append(plot_label)
    return rows, values, labels, bad


def _run_cell(g: list[str]) -> str:
    return g[0] if len(g) == 1 else f"{g[0]} (+{len(g) - 1} seeds)"


def runs_table(spec: dict, res: Results, refs: list[dict]) -> Table:
    run_ids = sorted({r["run"]["run_id"] for r in res.records if any(r["benchmark"] == c["benchmark"] for c in spec["columns"])})
    configs = sorted(configurations(res, run_ids), key=lambda g: g[0])
    names = config_labels(res, configs)
    label_cells = [([_run_cell(g), name, "measured"], _run_cell(g)) for g, name in zip(configs, names)]
    rows, values, labels, bad = _measured_rows(res, configs, spec, label_cells)
    r_rows, r_vals, r_labels, ref_notes = _references(spec, refs, 3)
    tested = any(base_of(res, g[0]) is not None for g in configs)
    notes = legend_notes(configs, tested) + condition_notes(res, run_ids, spec) + ref_notes
    if not rows and not r_rows:  # an empty table says why it is empty
        notes.append(f"no result of {', '.join(sorted({c['benchmark'] for c in spec['columns']}))} in the results "
                     "directory yet")
    return Table(spec["name"], spec["title"], _headers(spec, ["Model", "Method", "Source"]),
                 rows + r_rows, values + r_vals, labels + r_labels, notes, y_label=spec.get("y_label", "score"),
                 published=r_labels, not_comparable=bad if r_labels else [], run_ids=run_ids)


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


def comparison_tables(spec: dict, res: Results, refs: list[dict]) -> list[Table]:
    benches = {c["benchmark"] for c in spec["columns"]}
    runs = {rid: run for rid, run in res.meta.items() if any(r["benchmark"] in benches for r in res.of(rid))}
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
        configs = [[b] for b in bases] + sorted(configurations(res, members), key=lambda g: (runs[g[0]]["method"], g[0]))
        names = config_labels(res, configs)
        label_cells = [([name, _run_cell(g)], name) for g, name in zip(configs, names)]
        rows, values, labels, _ = _measured_rows(res, configs, spec, label_cells)
        budget = first.get("budget") or {}
        amount = f"{budget['pairs_seen']} pairs seen" if budget.get("pairs_seen") else f"{budget.get('steps')} steps"
        base_name = Path(str(first.get("base_model"))).name
        slug = f"{base_name}-{str(base_fp)[:8]}-{str(first['data_fingerprint'])[:8]}-{amount.split()[0]}{amount.split()[1]}"
        title = (f"{spec['title']}: base {base_name} ({str(base_fp)[:8]}), data "
                 f"{', '.join(d.split('=')[0] for d in first.get('data') or []) or 'default'} ({str(first['data_fingerprint'])[:8]}), "
                 f"{amount}")
        shown = [rid for g in configs for rid in g]
        notes = legend_notes(configs, bool(bases)) + condition_notes(res, shown, spec)
        smoke = any((r.get("conventions") or {}).get("limit") is not None for rid in shown for r in res.of(rid))
        blocks, ref_notes = published_blocks(spec, refs, smoke)
        tables.append(Table(f"{spec['name']}/{slug}", title, _headers(spec, ["Method", "Run"]), rows, values, labels,
                            notes + ref_notes, blocks, y_label=spec.get("y_label", "score"), run_ids=shown))
    if refs and not tables:  # nothing measured yet: the published rows alone
        r_rows, r_vals, r_labels, notes = _references(spec, refs, 2)
        tables.append(Table(f"{spec['name']}/published", f"{spec['title']}: published numbers",
                            _headers(spec, ["Method", "Run"]), r_rows, r_vals, r_labels, notes,
                            y_label=spec.get("y_label", "score"), published=r_labels))
    return tables


def build_tables(spec: dict, records: list[dict], refs: list[dict], items: dict | None = None,
                 superseded: dict | None = None) -> list[Table]:
    res = Results(records, items, superseded)
    if spec["kind"] == "runs":
        return [runs_table(spec, res, refs)]
    return comparison_tables(spec, res, refs)
