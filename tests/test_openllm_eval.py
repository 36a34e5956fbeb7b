"""Open LLM v1 through lm-eval: data converters, metric conventions, and a real offline run."""
from __future__ import annotations

import csv
import json
import math

import pytest

from harness.evaluation.openllm import mmlu_scores, number, task_score
from harness.evaluation.openllm_tasks import TASKS, DataFileError, mmlu_rows, truthfulqa_rows


def test_mmlu_csv_rows_from_real_file(data_dir):
    path = data_dir / "mmlu" / "dev" / "abstract_algebra_dev.csv"
    rows = mmlu_rows(path, "abstract_algebra")
    first = next(csv.reader(open(path, newline="", encoding="utf-8")))
    assert len(rows) == 5
    assert rows[0]["question"] == first[0] and rows[0]["choices"] == first[1:5]
    assert rows[0]["answer"] == "ABCD".index(first[5])


def test_mmlu_bad_answer_names_file_and_line(tmp_path):
    bad = tmp_path / "x_test.csv"
    bad.write_text("q,a,b,c,d,B\nq2,a,b,c,d,E\n")
    with pytest.raises(DataFileError, match=r"x_test.csv: line 2: field 'answer'"):
        mmlu_rows(bad, "x")


def test_truthfulqa_mc2_targets_from_real_csv(data_dir):
    path = data_dir / "truthfulqa" / "TruthfulQA.csv"
    rows = truthfulqa_rows(path)
    rec = next(csv.DictReader(open(path, newline="", encoding="utf-8")))
    assert len(rows) == 817
    mc2 = rows[0]["mc2_targets"]
    correct = {a.strip() for a in rec["Correct Answers"].split(";")} | {rec["Best Answer"]}
    incorrect = [a.strip() for a in rec["Incorrect Answers"].split(";")]
    assert mc2["choices"][0] == rec["Best Answer"]  # best answer first
    assert mc2["labels"] == [1] * len(correct) + [0] * len(incorrect)
    assert rows[0]["mc1_targets"]["labels"] == [1] + [0] * len(incorrect)


def test_mmlu_unweighted_mean_against_weighted_group():
    results = {"mmlu_a": {"acc,none": 0.5, "acc_stderr,none": 0.3}, "mmlu_b": {"acc,none": 1.0, "acc_stderr,none": 0.4},
               "mmlu": {"acc,none": 0.9, "acc_stderr,none": "N/A"}}
    n = {"mmlu_a": {"effective": 2}, "mmlu_b": {"effective": 8}}
    rows, k = mmlu_scores(results, n, {"mmlu": 5})
    assert k == 2
    plain, weighted = rows
    assert plain["value"] == pytest.approx(0.75) and plain["stderr"] == pytest.approx(0.25)  # sqrt(.09+.16)/2
    assert weighted["metric"] == "acc_weighted_by_size" and weighted["value"] == 0.9 and weighted["stderr"] is None
    assert plain["n"] == 10 and plain["shots"] == 5


def test_missing_metric_and_na_stderr():
    assert number("N/A") is None and number(float("nan")) is None and number(0.25) == 0.25
    row = task_score({"gsm8k": {"exact_match,flexible-extract": 0.5}}, {}, {}, TASKS["gsm8k"])
    assert row["value"] is None and "exact_match,strict-match" in row["unavailable"]
    nan = task_score({"truthfulqa_mc2": {"acc,none": float("nan")}}, {}, {}, TASKS["truthfulqa_mc2"])
    assert nan["value"] is None and "nan" in nan["unavailable"]


def test_eval_command_offline_writes_valid_result(tiny_model, data_dir, tmp_path):
    from harness.cli import main
    from harness.results import read_result

    out = tmp_path / "results"
    rc = main(["eval", "--model", str(tiny_model), "--tasks", "arc_challenge,mmlu", "--limit", "3",
               "--data-dir", str(data_dir), "--output", str(out), "--run-id", "tiny-smoke"])
    assert rc == 0
    rec = read_result(out / "tiny-smoke" / "openllm.json")
    raw = json.loads((out / "tiny-smoke" / rec["raw_output"]).read_text())
    by = {(s["task"], s["metric"]): s for s in rec["scores"]}
    arc = by[("arc_challenge", "acc_norm")]
    assert arc["value"] == raw["results"]["arc_challenge"]["acc_norm,none"]  # parity with lm-eval's own output
    assert arc["n"] == 3 and arc["shots"] == 25
    assert arc["value"] * 3 == pytest.approx(round(arc["value"] * 3))  # a fraction of 3 documents
    # MMLU came from the local CSVs: lm-eval saw every test row of a subject.
    n_rows = len(list(csv.reader(open(data_dir / "mmlu" / "test" / "abstract_algebra_test.csv", newline="", encoding="utf-8"))))
    assert raw["n-samples"]["mmlu_abstract_algebra"]["original"] == n_rows
    subj = [v["acc,none"] for k, v in raw["results"].items() if k.startswith("mmlu_")]
    assert by[("mmlu", "acc")]["value"] == pytest.approx(sum(subj) / len(subj)) and len(subj) == 57
    assert by[("mmlu", "acc_weighted_by_size")]["value"] == raw["results"]["mmlu"]["acc,none"]
    conv = rec["conventions"]
    assert conv["chat_template"] is False and conv["limit"] == 3 and conv["comparable_to_published"] is False
    assert "unweighted" in conv["mmlu_average"] and conv["mmlu_subjects"] == 57
    assert rec["run"]["method"] == "base" and rec["run"]["base_model_fingerprint"]
    assert math.isfinite(by[("mmlu", "acc")]["stderr"])


def test_unknown_task_is_a_clear_error(tiny_model, tmp_path):
    from harness.cli import main

    assert main(["eval", "--model", str(tiny_model), "--tasks", "arc_easy", "--output", str(tmp_path)]) == 2
