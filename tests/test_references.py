"""Published reference rows (leaderboards/references/*_paper.yaml) against the papers' transcribed tables."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from harness.leaderboard.tables import load_references

ROOT = Path(__file__).resolve().parents[1]
REFS = ROOT / "leaderboards" / "references"


def _build_module():
    spec = importlib.util.spec_from_file_location("refs_build", REFS / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BUILD = _build_module()
PAPERS = BUILD.papers_dir()
needs_papers = pytest.mark.skipif(not (PAPERS / "tables.yaml").is_file(),
                                  reason=f"the papers' tables.yaml is not at {PAPERS} (set HARNESS_PAPERS_DIR)")
GENERATED = sorted(REFS.glob("*_paper.yaml"))


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", line)]


@needs_papers
def test_every_committed_reference_value_equals_tables_yaml_and_the_paper_line():
    doc = yaml.safe_load((PAPERS / "tables.yaml").read_text())
    tables = {t["id"]: (key, t) for key, p in doc["papers"].items() for t in p["tables"]}
    texts = {key: (PAPERS / p["file"]).read_text(encoding="utf-8").splitlines() for key, p in doc["papers"].items()}
    checked = 0
    assert len(GENERATED) == 5
    for path in GENERATED:
        ref = yaml.safe_load(path.read_text())
        for i, row in enumerate(ref["rows"]):
            where = f"{path.name}: rows[{i}] ({row['label']})"
            assert row["published"] is True, where
            maps = [("values", ref["columns"]), ("printed", ref.get("printed_columns") or {})]
            covered = {kind: set() for kind, _ in maps}
            for src in row["sources"]:
                paper, table = tables[src["table"]]
                assert paper == src["paper"], where
                printed = [r for r in table["rows"] if r["_source_line"] == src["line"]]
                assert len(printed) == 1, f"{where}: no row at line {src['line']} of {src['table']}"
                line_numbers = _numbers(texts[paper][src["line"] - 1])  # the paper's own text line
                for kind, columns in maps:
                    for ours, theirs in columns.get(src["table"], {}).items():
                        if printed[0].get(theirs) is None:
                            assert ours not in (row.get(kind) or {}), f"{where}: {ours} is not printed"
                            continue
                        assert row[kind][ours] == printed[0][theirs], f"{where}: {ours}"
                        assert row[kind][ours] in line_numbers, f"{where}: {ours} not on line {src['line']}"
                        covered[kind].add(ours)
                        checked += 1
                assert f"line {src['line']}" in row["citation"] and src["table"] in row["citation"], where
            for kind, _ in maps:  # no number in a file that no table backs
                assert set(row.get(kind) or {}) == covered[kind], where
    assert checked > 400


@needs_papers
def test_build_reproduces_the_committed_files(tmp_path):
    assert BUILD.main(["--papers", str(PAPERS), "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert written == [p.name for p in GENERATED]
    for name in written:
        assert (tmp_path / name).read_text() == (REFS / name).read_text(), f"{name}: run leaderboards/references/build.py"


def test_h4_is_never_the_six_task_average_and_rows_reach_their_tables():
    openllm = load_references(REFS, "openllm_v1")
    sdpo = [r for r in openllm if r["source_file"].startswith("sdpo_")]
    assert len(sdpo) == 16 and all("Avg" not in r["values"] for r in sdpo)
    solar = next(r for r in sdpo if r["label"] == "SOLAR 10.7B + SFT + sDPO")
    assert solar["values"] == {"ARC": 71.33, "HellaSwag": 88.08, "MMLU": 65.39, "TruthfulQA": 72.45}
    assert "H4 74.31" in solar["citation"] and "Table 3" in solar["citation"]  # printed in both tables: one row
    comparison = load_references(REFS, "method_comparison")
    dgpo = [r for r in comparison if r["source_file"] == "dgpo_openllm_paper.yaml"]
    assert len(dgpo) == 20 and {r["label"].split(" (")[0] for r in dgpo} == set(BUILD.DGPO_METHODS)
    judged = load_references(REFS, "judged")
    mistral_dgpo = next(r for r in judged if r["label"] == "DGPO (Mistral 7B Instruct v0.2, DGPO paper)")
    assert mistral_dgpo["values"] == {"MT-Bench T1": 6.51, "MT-Bench T2": 6.54, "MT-Bench Avg": 6.53}
    assert all(r["source_file"] == "dgpo_mtbench_paper.yaml" for r in judged)


def test_method_comparison_shows_published_blocks_apart_from_measured_rows(tmp_path):
    from harness.leaderboard import regenerate
    from harness.results import write_result
    from tests.test_leaderboard import record

    d = tmp_path / "results"
    write_result(d, record("base-1", "base", [0.5, 0.6, 0.4, 0.3, 0.7, 0.1], limit=8))
    write_result(d, record("dpo-1", "dpo", [0.55, 0.6, 0.4, 0.35, 0.7, 0.2], limit=8))
    out = tmp_path / "lb"
    regenerate(d, out, plot=False)
    tables = sorted((out / "method_comparison").glob("*.md"))
    assert len(tables) == 1  # the published rows sit inside the comparison, not in a table of their own
    md = tables[0].read_text().split("\n## ")
    measured, blocks = md[0], md[1:]
    assert "DGPO paper" not in measured.split("\n\n- ")[0] and "| dpo | dpo-1 |" in measured
    head = "Published, not measured here; not comparable to these tiny smoke runs: "
    assert [b.splitlines()[0] for b in blocks] == [
        head + "DGPO paper, Table 4: Mistral 7B Instruct v0.2 + UltraFeedback",
        head + "DGPO paper, Table 8: Llama3 8B Instruct + UltraFeedback",
        head + "sDPO paper, Tables 2 and 3: SOLAR 10.7B + SFT, OpenOrca then Ultrafeedback Cleaned (4 tasks)"]
    # Mistral DGPO, Table 4 line 314: the paper's own Average kept; sDPO: no six-task Avg, H4 in the note
    assert "| DGPO (Mistral 7B Instruct v0.2, DGPO paper) [10] | published | 65.40 | 57.10 | 84.60 | 60.90 | 70.10 | 78.50 | 41.30 |" in blocks[0]
    assert "| SOLAR 10.7B + SFT + sDPO [21] | published | – | 71.33 | 88.08 | 65.39 | 72.45 | – | – |" in blocks[2]
    assert "[21] published, not measured here: sDPO paper" in blocks[2] and "H4 74.31 as printed" in blocks[2]
    csv = next((out / "method_comparison").glob("*.csv")).read_text().splitlines()
    assert [line.split(",")[0] for line in csv[1:]] == ["base", "dpo"]  # the CSV stays measured rows only
    tex = next((out / "method_comparison").glob("*.tex")).read_text()
    assert r"\multicolumn{9}{l}{\textit{" + head.replace(";", ";") in tex
