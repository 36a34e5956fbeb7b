"""Leaderboards from results/: values, determinism, invalid and duplicate files, method comparison."""
from __future__ import annotations

import json
import shutil

import pytest

from harness.leaderboard import InvalidResults, regenerate
from harness.results import write_result

COLS = ["arc_challenge:acc_norm", "hellaswag:acc_norm", "mmlu:acc", "truthfulqa_mc2:acc", "winogrande:acc", "gsm8k:exact_match"]


def record(run_id, method, values, *, base_fp="basefp", data_fp="datafp", steps=10, limit=None, stderr=0.01,
           seed=None, finished="2025-01-01T00:01:00+00:00", fp=None):
    scores = [{"task": c.split(":")[0], "metric": c.split(":")[1], "value": v, "stderr": stderr, "n": 10, "shots": 0}
              for c, v in zip(COLS, values)]
    run = {"run_id": run_id, "method": method, "model": f"/m/{run_id}", "model_fingerprint": fp or f"fp-{run_id}",
           "base_model": "/m/base", "base_model_fingerprint": base_fp,
           "data": None if method == "base" else [f"prefs-{data_fp}.jsonl"],
           "data_fingerprint": None if method == "base" else data_fp,
           "budget": None if method == "base" else {"steps": steps},
           "hyperparameters": {} if method == "base" else {"beta": 0.1, "seed": seed}}
    if method == "base":
        run["model_fingerprint"] = base_fp
    return {"run": run, "benchmark": "openllm", "scores": scores, "conventions": {"limit": limit},
            "backend": {"name": "hf"}, "hardware": {}, "versions": {}, "started_at": "2025-01-01T00:00:00+00:00",
            "finished_at": finished}


@pytest.fixture
def results(tmp_path):
    d = tmp_path / "results"
    write_result(d, record("base-1", "base", [0.5, 0.6, 0.4, 0.3, 0.7, 0.1]))
    write_result(d, record("dpo-1", "dpo", [0.55, 0.6, 0.4, 0.35, 0.7, 0.2]))
    write_result(d, record("dpop-1", "dpop", [0.6, 0.62, 0.41, 0.33, 0.71, 0.25]))
    write_result(d, record("dpo-other-data", "dpo", [0.1] * 6, data_fp="otherdata"))
    return d


def test_openllm_table_values_and_average(results, tmp_path):
    out = tmp_path / "lb"
    regenerate(results, out, plot=False)
    lines = (out / "openllm_v1.csv").read_text().splitlines()
    assert lines[0] == "Model,Method,Source,Avg,ARC,HellaSwag,MMLU,TruthfulQA,Winogrande,GSM8K"
    dpo = next(line for line in lines if line.startswith("dpo-1,"))
    # (55 + 60 + 40 + 35 + 70 + 20) / 6 = 46.67; se of the mean of 6 tasks with se 1.00 each: sqrt(6)/6 = 0.41
    assert dpo == "dpo-1,dpo,measured,46.67 ± 0.41,55.00 ± 1.00,60.00 ± 1.00,40.00 ± 1.00,35.00 ± 1.00,70.00 ± 1.00,20.00 ± 1.00"
    smaug = next(line for line in lines if line.startswith("Smaug-72B"))
    assert ",published," in smaug and smaug.split(",")[3] == "80.48"
    md = (out / "openllm_v1.md").read_text()
    assert "published, not measured here" in md and "Table 1 (tables.yaml smaug-table-1), line 153" in md
    assert (out / "openllm_v1.tex").read_text().count(r"\\") >= 5


def test_method_comparison_groups_by_data_and_puts_base_first(results, tmp_path):
    out = tmp_path / "lb"
    regenerate(results, out, plot=False)
    tables = sorted((out / "method_comparison").glob("*.csv"))
    assert len(tables) == 2  # two preference datasets -> two comparisons
    main = next(t for t in tables if "datafp" in t.name)
    rows = [line.split(",")[0] for line in main.read_text().splitlines()[1:]]
    assert rows == ["base", "dpo", "dpop"]


def test_regeneration_is_byte_identical(results, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    regenerate(results, a)
    regenerate(results, b)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert any(str(f).endswith(".png") for f in files)
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_invalid_and_duplicate_files_are_named(results, tmp_path, capsys):
    from harness.cli import main

    bad = results / "broken" / "openllm.json"
    bad.parent.mkdir()
    rec = json.loads((results / "dpo-1" / "openllm.json").read_text())
    rec["scores"][0]["value"] = "high"
    bad.write_text(json.dumps(rec))
    shutil.copy(results / "dpop-1" / "openllm.json", results / "dpop-1" / "openllm-copy.json")
    with pytest.raises(InvalidResults) as e:
        regenerate(results, tmp_path / "lb", plot=False)
    text = str(e.value)
    assert "broken/openllm.json: field 'scores/0/value'" in text
    assert "openllm-copy.json: duplicate result for run 'dpop-1'" in text
    assert main(["leaderboard", "--results", str(results), "--output", str(tmp_path / "lb2")]) == 2
    assert "broken/openllm.json" in capsys.readouterr().out
    # --skip-invalid: still listed, never mixed in (dpop-1 appears in neither file's place).
    out = regenerate(results, tmp_path / "lb3", skip_invalid=True, plot=False)
    csv_text = (tmp_path / "lb3" / "openllm_v1.csv").read_text()
    assert "dpop-1" not in csv_text and "dpo-1" in csv_text and len(out["problems"]) == 3


def _with_items(results_dir, run_id, items):
    """Give a result per-item scores in its raw output, as the benchmarks write them."""
    path = results_dir / run_id / "openllm.json"
    rec = json.loads(path.read_text())
    rec["raw_output"] = "openllm.raw.json"
    path.write_text(json.dumps(rec))
    (results_dir / run_id / "openllm.raw.json").write_text(json.dumps({"per_item": items}))


def test_paired_bootstrap_hand_cases():
    import numpy as np

    from harness.leaderboard.stats import paired_bootstrap, significant

    ids = list(range(40))
    base = np.zeros(40)
    obs, lo, hi = paired_bootstrap(ids, base, base + 1)
    assert (obs, lo, hi) == (1.0, 1.0, 1.0)  # every resample of a constant difference is that constant
    alt = np.array([1.0, -1.0] * 20)
    obs, lo, hi = paired_bootstrap(ids, base, alt)
    assert obs == 0 and lo < 0 < hi
    # Grouped ids ("subject/doc"): the score is the mean of group means, resampled within groups.
    gids = ["a/0", "a/1", "b/0", "b/1", "b/2", "b/3"]
    obs, _, _ = paired_bootstrap(gids, np.zeros(6), np.array([1, 1, 0, 0, 0, 1.0]))
    assert obs == pytest.approx((1 + 0.25) / 2)
    assert significant([[i, 0.0] for i in range(30)], [[i, 1.0 if i < 25 else 0.0] for i in range(30)]) is True
    assert significant([[i, 0.0] for i in range(30)], [[i, 1.0 if i < 2 else 0.0] for i in range(30)]) is False
    assert significant([[0, 1.0]], [[1, 1.0]]) is None  # not the same items: not tested


def test_every_cell_has_an_error_and_significant_differences_are_marked(results, tmp_path):
    n = 40
    base_items = {f"{c}": [[i, 0.0] for i in range(n)] for c in COLS}
    _with_items(results, "base-1", base_items)
    # dpo: ARC right on 30 of 40 items the base got wrong (significant); others the same as the base.
    _with_items(results, "dpo-1", {**base_items, "arc_challenge:acc_norm": [[i, 1.0 if i < 30 else 0.0] for i in range(n)]})
    out = tmp_path / "lb"
    regenerate(results, out, plot=False)
    main = next(p for p in (out / "method_comparison").glob("*.md") if "datafp" in p.name).read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in main.splitlines() if line.startswith("| ")}
    cells = rows["dpo"].strip("| ").split(" | ")[2:]
    assert cells[1] == "55.00 ± 1.00 *"  # ARC
    assert all("±" in c for c in cells) and sum(c.endswith("*") for c in cells) == 1
    assert "*" not in rows["base"] and "*" not in rows["dpop"]  # dpop has no per-item scores: shown, not tested
    assert "paired bootstrap" in main and "± is the standard error" in main


def test_seeds_of_one_configuration_are_one_row_with_mean_and_sd(tmp_path):
    d = tmp_path / "results"
    write_result(d, record("base-1", "base", [0.5] * 6))
    for seed, arc in ((1, 0.50), (2, 0.60), (3, 0.70)):
        write_result(d, record(f"dpo-s{seed}", "dpo", [arc, 0.5, 0.5, 0.5, 0.5, 0.5], seed=seed))
    regenerate(d, tmp_path / "lb", plot=False)
    table = next((tmp_path / "lb" / "method_comparison").glob("*.csv")).read_text().splitlines()
    assert len(table) == 3  # header, base, one dpo row
    dpo = next(r for r in table if r.startswith("dpo"))
    assert dpo.startswith("dpo (3 seeds),dpo-s1 (+2 seeds),")
    assert dpo.split(",")[3] == "60.00 ± 10.00"  # ARC: mean of 50, 60, 70; sample sd 10
    md = next((tmp_path / "lb" / "method_comparison").glob("*.md")).read_text()
    assert "standard deviation over seeds" in md


def test_notes_are_one_per_condition_listing_runs(tmp_path):
    d = tmp_path / "results"
    write_result(d, record("base-1", "base", [0.5, 0.5, 0.5, None, 0.5, 0.5], limit=8))
    write_result(d, record("dpo-1", "dpo", [0.5, 0.5, 0.5, None, 0.5, 0.5], limit=8))
    regenerate(d, tmp_path / "lb", plot=False)
    md = (tmp_path / "lb" / "openllm_v1.md").read_text()
    smoke = [line for line in md.splitlines() if "smoke run" in line]
    assert smoke == ["- smoke run (openllm --limit 8): not comparable to published numbers (runs: base-1, dpo-1)"]
    assert sum("TruthfulQA –" in line for line in md.splitlines()) == 1


def test_a_rerun_of_the_same_configuration_replaces_the_row(results, tmp_path):
    """Regenerating results after a code change (new base fingerprint, new run ids) gives one row per method."""
    out = tmp_path / "lb"
    regenerate(results, out, plot=False)
    old_tables = sorted(p.name for p in (out / "method_comparison").glob("*"))
    write_result(results, record("base-2", "base", [0.4] * 6, base_fp="newbase", finished="2025-02-01T00:00:00+00:00"))
    write_result(results, record("dpo-2", "dpo", [0.45] * 6, base_fp="newbase", finished="2025-02-01T00:00:00+00:00"))
    write_result(results, record("dpop-2", "dpop", [0.5] * 6, base_fp="newbase", finished="2025-02-01T00:00:00+00:00"))
    res = regenerate(results, out, plot=False)
    lines = (out / "openllm_v1.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines if ",base," in line] == ["base-2"]
    assert [line.split(",")[0] for line in lines if ",dpo," in line] == ["dpo-2", "dpo-other-data"]  # other data stays
    assert [line.split(",")[0] for line in lines if ",dpop," in line] == ["dpop-2"]
    md = (out / "openllm_v1.md").read_text()
    assert "replaces older results of the same method, base and configuration (base-1, not shown) (runs: base-2)" in md
    assert res["removed"] and {p.name for p in res["removed"]} <= set(old_tables)
    assert not any("basefp" in p.name and "datafp" in p.name for p in (out / "method_comparison").glob("*"))


def test_chart_marks_missing_has_full_title_axis_label_and_not_comparable(tmp_path):
    import matplotlib.pyplot as plt

    from harness.leaderboard import default_dir
    from harness.leaderboard.render import bar_figure
    from harness.leaderboard.tables import build_tables, load_references, load_spec

    rec = record("base-1", "base", [0.5, 0.0, 0.3, None, 0.5, 0.0], limit=4)
    spec = load_spec(default_dir("specs") / "openllm_v1.yaml")
    refs = load_references(default_dir("references"), "openllm_v1")
    table = build_tables(spec, [rec], refs)[0]
    fig = bar_figure(table)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    # TruthfulQA, and so the Avg, are missing: "n/a" at those bars; HellaSwag's and GSM8K's 0.00 are real: "0".
    bars = ax.patches[:7]  # the measured row: Avg, ARC, HellaSwag, MMLU, TruthfulQA, Winogrande, GSM8K
    center = {round(b.get_x() + b.get_width() / 2, 6): h for b, h in zip(bars, table.headers[3:])}
    marks = {center[round(t.get_position()[0], 6)]: t.get_text() for t in ax.texts}
    assert marks == {"Avg": "n/a", "TruthfulQA": "n/a", "HellaSwag": "0", "GSM8K": "0"}
    assert ax.get_ylabel() == "score (percent)"
    long = build_tables(load_spec(default_dir("specs") / "method_comparison.yaml"),
                        [record("base-1", "base", [0.5] * 6), record("dpo-1", "dpo", [0.5] * 6, data_fp="arithmetic" * 6)], [])[0]
    title = bar_figure(long).axes[0].get_title()
    assert title.replace("\n", " ") == long.title and len(long.title) > 90
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "base-1 (not comparable to published rows)" and legend[1] in table.published
    # dozens of published rows stay in the table; the chart shows the first few complete ones and says so
    assert len(legend) == 1 + 3 and len(table.published) > 3
    assert any(f"{len(table.labels) - 4} more published rows" in t.get_text() for t in fig.texts)
    assert any("not comparable" in t.get_text() for t in fig.texts)
    plt.close("all")
