"""`harness train-and-eval`: train, evaluate base + trained, results and comparison table; a rerun redoes nothing."""
from __future__ import annotations


def test_train_and_eval_dpo_then_rerun_reuses(tiny_model, data_dir, tmp_path, capsys):
    from harness.cli import main
    from harness.results import read_result

    args = ["train-and-eval", "--method", "dpo", "--model", str(tiny_model), "--recipe", "tiny", "--max-steps", "2",
            "--tasks", "arc_challenge,winogrande", "--limit", "2", "--data-dir", str(data_dir),
            "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
            "--leaderboards", str(tmp_path / "lb")]
    assert main(args) == 0
    out = capsys.readouterr().out
    # The end of the job: the comparison tables of its runs, then where the files are.
    assert "# Method comparison: base tiny" in out and "# Held-out arithmetic and preference pairs" in out
    assert out.count("| base | base-") == 2 and out.count("| dpo | dpo-") == 2
    assert f"results: {tmp_path / 'results'}/ (base-" in out and f"files in {tmp_path / 'lb'}/" in out
    assert str(tmp_path / "lb" / "method_comparison") in out
    # Default data: the held-out benchmarks ran beside the Open LLM tasks, with --limit 2 as asked.
    for bench in ("arithmetic", "preference_heldout"):
        recs = [read_result(p) for p in (tmp_path / "results").glob(f"*/{bench}.json")]
        assert len(recs) == 2 and all(r["scores"][0]["n"] == 2 for r in recs)
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


def test_train_and_eval_with_judged_benchmark(tiny_model, data_dir, tmp_path, monkeypatch, capsys):
    """openllm + mtbench for base and dpo: unjudged first (answers saved, reason printed), then judged by the
    loopback judge (results redone because the judge changed, answers reused), then a rerun that redoes nothing."""
    from harness.cli import main
    from harness.results import read_result
    from harness.testing.fake_openai import FakeOpenAI

    key = "sk-train-and-eval-31c9"
    monkeypatch.setenv("TE_JUDGE_KEY", key)
    args = ["train-and-eval", "--method", "dpo", "--model", str(tiny_model), "--recipe", "tiny", "--max-steps", "2",
            "--benchmarks", "openllm,mtbench", "--tasks", "arc_challenge", "--limit", "1", "--max-new-tokens", "8",
            "--data-dir", str(data_dir), "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
            "--leaderboards", str(tmp_path / "lb")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "mtbench will not be judged: missing a judge model (--judge-model)" in out
    mt = {read_result(p)["run"]["method"]: p for p in (tmp_path / "results").glob("*/mtbench.json")}
    assert set(mt) == {"base", "dpo"}
    assert {read_result(p.with_name("openllm.json"))["scores"][0]["task"] for p in mt.values()} == {"arc_challenge"}
    assert read_result(mt["dpo"])["scores"][0]["unavailable"] == "not judged: missing a judge model (--judge-model)"
    answers = {m: next(p.parent.glob("mtbench/mt_bench/model_answer/*.jsonl")).read_text() for m, p in mt.items()}

    judge = ["--judge-model", "j", "--judge-api-key-env", "TE_JUDGE_KEY"]
    with FakeOpenAI(responder=lambda r: "Rating: [[6]]" if "### User:" in r["messages"][-1]["content"]
                    else "Rating: [[9]]") as fake:
        judge += ["--judge-base-url", fake.base_url]
        assert main(args + judge) == 0
        assert fake.n_requests == 4  # 2 models x 1 question x 2 turns; answers were not regenerated
        mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "results").glob("*/*.json")}
        assert main(args + judge) == 0  # same settings: nothing redone, nothing asked again
        assert fake.n_requests == 4
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "results").glob("*/*.json")} == mtimes
    for method, p in mt.items():
        rec = read_result(p)
        s = {x["metric"]: x["value"] for x in rec["scores"] if x["task"] == "mt_bench"}
        assert s == {"score_turn1": 9.0, "score_turn2": 6.0, "score_avg": 7.5}
        assert rec["run"]["method"] == method
        assert next(p.parent.glob("mtbench/mt_bench/model_answer/*.jsonl")).read_text() == answers[method]
    dpo = read_result(mt["dpo"])["run"]  # the trained model's run.json reached the judged result
    assert dpo["hyperparameters"]["beta"] == 0.1 and dpo["budget"]["steps"] == 2 and dpo["data_fingerprint"]
    table = [r for r in (tmp_path / "lb" / "judged.csv").read_text().splitlines()[1:] if ",measured," in r]
    assert sorted(r.split(",")[1] for r in table) == ["base", "dpo"]
    assert all([c.split(" ± ")[0] for c in r.split(",")[3:6]] == ["9.00", "6.00", "7.50"] for r in table)
    assert all(" ± " in c for r in table for c in r.split(",")[3:6])  # every measured cell shows its error

    for p in [*tmp_path.rglob("*")]:
        assert not p.is_file() or key.encode() not in p.read_bytes(), p


def test_method_lists_all_and_method_only_flags():
    from types import SimpleNamespace

    import pytest

    from align.methods import methods
    from harness.cmd_train_and_eval import method_only_flags, selected_methods

    assert selected_methods("all") == list(methods()) and "simpo" in selected_methods("all")
    assert selected_methods("dpo,simpo,dgpo") == ["dpo", "simpo", "dgpo"]
    with pytest.raises(ValueError, match="unknown method.*dpx"):
        selected_methods("dpo,dpx")
    args = SimpleNamespace(sdpo_steps=3, sdpo_partition=None, inner_loss=None)
    with pytest.raises(ValueError, match="--sdpo-steps applies to method 'sdpo', which is not selected"):
        method_only_flags(args, ["dpo"])
    drops = method_only_flags(args, ["dpo", "sdpo"])
    assert drops["dpo"] == ("sdpo_steps",) and drops["sdpo"] == ()


def test_seeds_give_one_result_per_seed_with_a_shared_group(tiny_model, data_dir, tmp_path):
    from harness.cli import main
    from harness.results import read_result

    assert main(["train-and-eval", "--method", "sft,simpo", "--seeds", "2", "--model", str(tiny_model), "--recipe",
                 "tiny", "--max-steps", "1", "--no-base", "--tasks", "arc_challenge", "--limit", "1", "--data-dir",
                 str(data_dir), "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
                 "--leaderboards", str(tmp_path / "lb")]) == 0
    runs = [read_result(p)["run"] for p in (tmp_path / "results").glob("*/openllm.json")]
    assert sorted((r["method"], r["seed"]) for r in runs) == [("sft", 42), ("sft", 43), ("simpo", 42), ("simpo", 43)]
    assert len({r["run_id"] for r in runs}) == 4
    for m in ("sft", "simpo"):
        assert len({r["group"] for r in runs if r["method"] == m}) == 1
    assert {r["group"] for r in runs if r["method"] == "sft"} != {r["group"] for r in runs if r["method"] == "simpo"}
    assert sorted(p.name for p in (tmp_path / "runs").iterdir() if p.is_dir()) == ["sft-seed42", "sft-seed43", "simpo-seed42",
                                                                     "simpo-seed43"]
