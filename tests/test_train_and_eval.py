"""`harness train-and-eval`: train, evaluate base + trained, results and comparison table; a rerun redoes nothing."""
from __future__ import annotations


def test_train_and_eval_dpo_then_rerun_reuses(tiny_model, data_dir, tmp_path):
    from harness.cli import main
    from harness.results import read_result

    args = ["train-and-eval", "--method", "dpo", "--model", str(tiny_model), "--recipe", "tiny", "--max-steps", "2",
            "--tasks", "arc_challenge,winogrande", "--limit", "2", "--data-dir", str(data_dir),
            "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
            "--leaderboards", str(tmp_path / "lb")]
    assert main(args) == 0
    results = sorted((tmp_path / "results").glob("*/openllm.json"))
    recs = {read_result(p)["run"]["method"]: read_result(p) for p in results}
    assert set(recs) == {"base", "dpo"}
    dpo = recs["dpo"]["run"]
    assert dpo["budget"]["steps"] == 2 and dpo["data_fingerprint"] and dpo["hyperparameters"]["beta"] == 0.1
    assert dpo["base_model_fingerprint"] == recs["base"]["run"]["model_fingerprint"]
    table = next((tmp_path / "lb" / "method_comparison").glob("*.csv")).read_text().splitlines()
    assert [r.split(",")[0] for r in table[1:]] == ["base", "dpo"]
    mtimes = {p: p.stat().st_mtime_ns for p in results}
    model_mtime = (tmp_path / "runs" / "dpo" / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 0  # finished training and evaluations are reused, not redone
    assert {p: p.stat().st_mtime_ns for p in results} == mtimes
    assert (tmp_path / "runs" / "dpo" / "model.safetensors").stat().st_mtime_ns == model_mtime


def test_method_registry_lists_losses():
    from harness.methods import training_methods

    assert {"dpo", "dpop", "dgpo"} <= set(training_methods())
