"""Open LLM v1 through lm-eval: data converters, metric conventions, and a real offline run."""
from __future__ import annotations

import csv
import json
import math

import pytest

from harness.evaluation.metrics import mc2_log_space, process_results_mc2
from harness.evaluation.openllm import mmlu_scores, number, task_score
from harness.evaluation.openllm_tasks import (TASKS, DataFileError, arc_rows, mmlu_rows, prepare_tasks, truthfulqa_rows,
                                              winogrande_rows)


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


def test_mc2_log_space_equals_lm_eval_where_finite():
    from lm_eval.tasks.truthfulqa.utils import process_results_mc2 as lm_eval_mc2

    # Hand-computed: probabilities .2 (true), .3, .5 (false) -> 0.2; normalisation does not need sum 1.
    assert mc2_log_space([math.log(0.2), math.log(0.3), math.log(0.5)], [1, 0, 0]) == pytest.approx(0.2, abs=1e-15)
    assert mc2_log_space([math.log(2), math.log(1), math.log(1)], [1, 1, 0]) == pytest.approx(0.75, abs=1e-15)
    rng = __import__("random").Random(3)
    for _ in range(200):  # on the same log-likelihoods, lm-eval's own function (finite range) and ours agree
        k = rng.randint(2, 9)
        ll = [rng.uniform(-60, -0.1) for _ in range(k)]
        labels = sorted([1] * rng.randint(1, k - 1) + [0] * k)[::-1][:k]
        doc = {"mc2_targets": {"labels": labels}}
        ours = process_results_mc2(doc, [(x, False) for x in ll])["acc"]
        theirs = lm_eval_mc2(doc, [(x, False) for x in ll])["acc"]
        assert math.isfinite(theirs) and ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    # The tiny model's regime: every log-likelihood below -745, exp underflows to 0 and lm-eval's MC2 is 0/0.
    ll, labels = [-800.0, -801.0, -803.0], [1, 0, 0]
    doc = {"mc2_targets": {"labels": labels}}
    with pytest.warns(RuntimeWarning):
        assert math.isnan(lm_eval_mc2(doc, [(x, False) for x in ll])["acc"])
    expected = 1 / (1 + math.exp(-1) + math.exp(-3))  # shift-invariant: the same as for [0, -1, -3]
    assert process_results_mc2(doc, [(x, False) for x in ll])["acc"] == pytest.approx(expected, rel=1e-12)
    assert lm_eval_mc2(doc, [(x + 800, False) for x in ll])["acc"] == pytest.approx(expected, rel=1e-12)


def test_arc_rows_from_real_file(data_dir):
    path = data_dir / "arc_challenge" / "ARC-Challenge-Test.jsonl"
    rows = arc_rows(path)
    assert len(rows) == 1172
    first = json.loads(path.read_text().splitlines()[0])
    assert rows[0]["question"] == first["question"]["stem"] and rows[0]["id"] == first["id"]
    assert rows[0]["choices"]["text"] == [c["text"] for c in first["question"]["choices"]]
    assert rows[0]["choices"]["label"][rows[0]["choices"]["label"].index(first["answerKey"])] == first["answerKey"]
    assert any(r["answerKey"] == "1" for r in rows)  # numeric labels kept: lm-eval's target is label.index(answerKey)
    wino = winogrande_rows(data_dir / "winogrande" / "dev.jsonl")
    assert len(wino) == 1267 and {r["answer"] for r in wino} == {"1", "2"}


def test_arc_and_winogrande_bad_rows_name_file_line_field(tmp_path):
    arc = tmp_path / "arc.jsonl"
    arc.write_text(json.dumps({"id": "a", "question": {"stem": "q", "choices": [{"text": "x", "label": "A"}]},
                               "answerKey": "A"}) + "\n" + json.dumps({"id": "b", "question": {"stem": "q", "choices": [
                                   {"text": "x", "label": "A"}]}, "answerKey": "C"}) + "\n")
    with pytest.raises(DataFileError, match=r"arc.jsonl: line 2: field 'answerKey'"):
        arc_rows(arc)
    wino = tmp_path / "dev.jsonl"
    wino.write_text(json.dumps({"qID": "1", "sentence": "A _ b", "option1": "x", "option2": "y", "answer": "3"}) + "\n")
    with pytest.raises(DataFileError, match=r"dev.jsonl: line 1: field 'answer'"):
        winogrande_rows(wino)


def test_fewshot_from_the_scored_split_never_the_scored_item(data_dir, tmp_path):
    """No train split offline: ARC and WinoGrande draw their shots from the scored split, seeded, and lm-eval
    leaves the scored document out because the few-shot split is the test split."""
    from lm_eval.tasks import TaskManager, get_task_dict

    task_dir = prepare_tasks(["arc_challenge", "winogrande"], data_dir, tmp_path)
    tasks = get_task_dict(["arc_challenge", "winogrande"], TaskManager(include_path=str(task_dir), include_defaults=False))

    def contexts(task, seed):
        task.set_fewshot_seed(seed)
        return [task.fewshot_context(doc, task.config.num_fewshot) for doc in list(task.eval_docs)[:12]]

    arc, wino = tasks["arc_challenge"], tasks["winogrande"]
    assert len(arc.eval_docs) == 1172 and len(wino.eval_docs) == 1267
    assert arc.fewshot_cfg.split == arc.config.test_split == "test"
    assert wino.fewshot_cfg.split == wino.config.test_split == "validation"
    first = contexts(arc, 1234)
    for doc, ctx in zip(list(arc.eval_docs)[:12], first):
        assert ctx.count("Question: ") == 26  # 25 shots + the scored question
        assert ctx.count(f"Question: {doc['question']}\n") == 1 and ctx.endswith(f"Question: {doc['question']}\nAnswer:")
    assert contexts(arc, 1234) == first and contexts(arc, 7) != first  # seeded
    wino.set_fewshot_seed(1234)
    for doc in list(wino.eval_docs)[:50]:
        shots = wino.sampler.sample(n=5, eval_doc=doc)
        assert len(shots) == 5 and doc not in shots


def test_eval_command_offline_writes_valid_result(tiny_model, data_dir, tmp_path):
    from harness.cli import main
    from harness.results import read_result

    out = tmp_path / "results"
    rc = main(["eval", "--model", str(tiny_model), "--tasks", "arc_challenge,mmlu,truthfulqa_mc2", "--limit", "3",
               "--data-dir", str(data_dir), "--output", str(out), "--run-id", "tiny-smoke"])
    assert rc == 0
    rec = read_result(out / "tiny-smoke" / "openllm.json")
    raw = json.loads((out / "tiny-smoke" / rec["raw_output"]).read_text())
    by = {(s["task"], s["metric"]): s for s in rec["scores"]}
    arc = by[("arc_challenge", "acc_norm")]
    assert arc["value"] == raw["results"]["arc_challenge"]["acc_norm,none"]  # parity with lm-eval's own output
    assert arc["n"] == 3 and arc["shots"] == 25
    assert arc["value"] * 3 == pytest.approx(round(arc["value"] * 3))  # a fraction of 3 documents
    assert [i for i, _ in raw["per_item"]["arc_challenge:acc_norm"]] == [0, 1, 2]
    assert sum(v for _, v in raw["per_item"]["arc_challenge:acc_norm"]) / 3 == pytest.approx(arc["value"])
    # MC2 in log space: defined for the tiny model (lm-eval's own is NaN there) and the mean of the per-item values.
    tqa = by[("truthfulqa_mc2", "acc")]
    items = [v for _, v in raw["per_item"]["truthfulqa_mc2:acc"]]
    assert tqa["value"] is not None and 0 < tqa["value"] < 1 and tqa["value"] == pytest.approx(sum(items) / 3)
    assert len(raw["per_item"]["mmlu:acc"]) == sum(v["effective"] for k, v in raw["n-samples"].items() if k.startswith("mmlu_"))
    # MMLU came from the local CSVs: lm-eval saw every test row of a subject.
    n_rows = len(list(csv.reader(open(data_dir / "mmlu" / "test" / "abstract_algebra_test.csv", newline="", encoding="utf-8"))))
    assert raw["n-samples"]["mmlu_abstract_algebra"]["original"] == n_rows
    subj = [v["acc,none"] for k, v in raw["results"].items() if k.startswith("mmlu_")]
    assert by[("mmlu", "acc")]["value"] == pytest.approx(sum(subj) / len(subj)) and len(subj) == 57
    assert by[("mmlu", "acc_weighted_by_size")]["value"] == raw["results"]["mmlu"]["acc,none"]
    conv = rec["conventions"]
    assert conv["chat_template"] is False and conv["limit"] == 3 and conv["comparable_to_published"] is False
    assert "unweighted" in conv["mmlu_average"] and conv["mmlu_subjects"] == 57
    assert "log space" in conv["truthfulqa"] and conv["fewshot_seed"] == 1234
    assert "never the scored item" in conv["fewshot_source"]["arc_challenge"]
    assert "ARC-Challenge-Test.jsonl" in conv["data_sources"]["arc_challenge"]
    assert rec["run"]["method"] == "base" and rec["run"]["base_model_fingerprint"]
    assert math.isfinite(by[("mmlu", "acc")]["stderr"])


def test_unknown_task_is_a_clear_error(tiny_model, tmp_path):
    from harness.cli import main

    assert main(["eval", "--model", str(tiny_model), "--tasks", "arc_easy", "--output", str(tmp_path)]) == 2


def test_task_limits_batch_tasks_by_limit():
    from harness.evaluation.openllm import _merge, limit_groups

    assert limit_groups(["arc_challenge", "mmlu", "gsm8k"], 32, {"mmlu": 8}) == [(8, ["mmlu"]), (32, ["arc_challenge", "gsm8k"])]
    assert limit_groups(["arc_challenge", "mmlu"], None, {"mmlu": 8}) == [(None, ["arc_challenge", "mmlu"])]  # --full
    merged = _merge([{"results": {"a": {"acc,none": 1}}, "date": 1}, {"results": {"b": {"acc,none": 0}}, "date": 2}])
    assert merged == {"results": {"a": {"acc,none": 1}, "b": {"acc,none": 0}}, "date": 1}
