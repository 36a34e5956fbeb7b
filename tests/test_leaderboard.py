"""Leaderboards from results/: values, determinism, invalid and duplicate files, method comparison."""
from __future__ import annotations

import json
import shutil

import pytest

from harness.leaderboard import InvalidResults, regenerate
from harness.results import write_result

COLS = ["arc_challenge:acc_norm", "hellaswag:acc_norm", "mmlu:acc", "truthfulqa_mc2:acc", "winogrande:acc", "gsm8k:exact_match"]


def record(run_id, method, values, *, base_fp="basefp", data_fp="datafp", steps=10, limit=None):
    scores = [{"task": c.split(":")[0], "metric": c.split(":")[1], "value": v, "stderr": None, "n": 10, "shots": 0}
              for c, v in zip(COLS, values)]
    run = {"run_id": run_id, "method": method, "model": f"/m/{run_id}", "model_fingerprint": f"fp-{run_id}",
           "base_model": "/m/base", "base_model_fingerprint": base_fp,
           "data": None if method == "base" else ["prefs.jsonl"], "data_fingerprint": None if method == "base" else data_fp,
           "budget": None if method == "base" else {"steps": steps}}
    if method == "base":
        run["model_fingerprint"] = base_fp
    return {"run": run, "benchmark": "openllm", "scores": scores, "conventions": {"limit": limit},
            "backend": {"name": "hf"}, "hardware": {}, "versions": {}, "started_at": "2025-01-01T00:00:00+00:00",
            "finished_at": "2025-01-01T00:01:00+00:00"}


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
    # (55 + 60 + 40 + 35 + 70 + 20) / 6 = 46.67
    assert dpo == "dpo-1,dpo,measured,46.67,55.00,60.00,40.00,35.00,70.00,20.00"
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
