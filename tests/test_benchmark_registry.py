"""A benchmark added in one place: its flag shows in `harness eval --help`, its option reaches it, and the
runner writes its record."""
import json


def test_toy_benchmark_registers_flag_and_gets_its_record_written(tmp_path, monkeypatch, capsys):
    import harness.evaluation as E
    from harness.cli import build_parser
    from harness.cmd_eval import request_from_args
    from harness.evaluation.runner import evaluate_model

    E.benchmarks()  # load the built-ins first, so the toy is not overwritten by a later import
    seen = {}

    def run_toy(req):
        seen.update(req.options["per_benchmark"]["toy"])
        return E.BenchmarkOutput(scores=[{"task": "toy", "metric": "acc", "value": 0.25}],
                                 conventions={"limit": req.limit}, backend={"name": req.backend}, raw={"n": 4})

    flags = E.BenchmarkFlags("toy benchmark", lambda g: g.add_argument("--toy-level", type=int, default=1,
                                                                       help="How hard the toy questions are."),
                             lambda args: {"level": args.toy_level})
    monkeypatch.setitem(E.BENCHMARKS, "toy", run_toy)
    monkeypatch.setitem(E.FLAGS, "toy", flags)

    parser = build_parser()
    try:
        parser.parse_args(["eval", "--help"])
    except SystemExit:
        pass
    help_text = capsys.readouterr().out
    assert "--toy-level" in help_text and "toy benchmark" in help_text
    assert "--arena-style-control" in help_text and "--mtbench-mode" in help_text  # built-ins from the registry too

    args = parser.parse_args(["eval", "--model", "m", "--benchmarks", "toy", "--toy-level", "3", "--limit", "2"])
    run = {"run_id": "r", "method": "base", "model": "m"}
    [path] = evaluate_model("m", ["toy"], tmp_path, run=run, request=request_from_args(args, "m"))
    assert seen == {"level": 3}
    rec = json.loads(path.read_text())
    assert rec["benchmark"] == "toy" and rec["run"] == run
    assert rec["scores"] == [{"task": "toy", "metric": "acc", "value": 0.25}]
    assert rec["conventions"] == {"limit": 2} and rec["backend"] == {"name": "hf"}
    assert json.loads((tmp_path / "r" / rec["raw_output"]).read_text()) == {"n": 4}

    # ... and a table spec (a data file) puts it in a leaderboard
    from harness.leaderboard import regenerate

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "toy.yaml").write_text("name: toy\ntitle: Toy\nkind: runs\ndigits: 1\ncolumns:\n"
                                    "  - {header: Toy acc, benchmark: toy, task: toy, metric: acc, scale: 100}\n")
    out = regenerate(tmp_path, tmp_path / "boards", specs_dir=specs, refs_dir=tmp_path / "none", plot=False)
    md = next(p for p in out["written"] if p.suffix == ".md").read_text()
    assert "Toy acc" in md and "| 25.0" in md


def test_judged_benchmarks_return_scores_and_the_record_is_built_once(data_dir, tmp_path, monkeypatch):
    """MT-Bench, AlpacaEval and Arena-Hard return a BenchmarkOutput (scores and files), never a record; on the
    `harness eval` path and the standalone `harness judge` path the record is built exactly once per result."""
    import harness.evaluation as E
    import harness.evaluation.judged as EJ
    import harness.evaluation.runner as runner
    from harness.judged import judge_saved_answers, judged_output
    from harness.testing.scripted import ScriptedGenerator

    built = []
    real = runner.build_record

    def counting(benchmark, run, out, started_at, raw_output):
        assert isinstance(out, E.BenchmarkOutput)
        built.append((benchmark, run["run_id"]))
        return real(benchmark, run, out, started_at, raw_output)

    monkeypatch.setattr(runner, "build_record", counting)
    run = {"run_id": "r1", "method": "base", "model": "m"}
    for name in EJ.JUDGED:
        out = judged_output(name, ScriptedGenerator(), None, tmp_path / "direct" / name, 2, run=run, data_dir=data_dir)
        assert isinstance(out, E.BenchmarkOutput) and out.run == run and out.scores[0]["value"] is None
    assert built == []  # a benchmark builds no record itself

    monkeypatch.setattr(EJ, "build_generator", lambda req: ScriptedGenerator())
    req = E.EvalRequest(model="m", limit=2, data_dir=str(data_dir), options={"judge": None})
    paths = runner.evaluate_model("m", list(EJ.JUDGED), tmp_path / "results", run=run, request=req)
    assert built == [(n, "r1") for n in EJ.JUDGED] and len(paths) == 3
    rec = json.loads(paths[0].read_text())
    assert rec["raw_output"] is None and rec["conventions"]["answers"] == "mtbench/mt_bench/model_answer/r1.jsonl"
    assert (paths[0].parent / rec["conventions"]["answers"]).is_file()  # relative to the result's folder

    built.clear()
    answers = data_dir / "mt_bench/model_answer"
    files = sorted(answers.glob("*.jsonl"))[:2]
    recs = judge_saved_answers("mtbench", files, None, tmp_path / "judged", 2, data_dir=data_dir)
    assert [b for b, _ in built] == ["mtbench", "mtbench"] and len(recs) == 2
    assert [r["run"]["run_id"] for r in recs] == [rid for _, rid in built]
    assert all((tmp_path / "judged" / rid / "mtbench.json").is_file() for _, rid in built)


def test_judge_command_reads_the_same_registry_flags():
    """`harness judge` gets each judged benchmark's flags from the registry (one definition for both commands);
    its older spellings --mode and --baseline-answers still work."""
    from harness.cli import build_parser

    p = build_parser()
    a = p.parse_args(["judge", "--benchmark", "arenahard", "--answers", "x.jsonl", "--arena-version", "v2.0",
                      "--arena-baseline", "o3.jsonl", "gemini.jsonl", "--arena-style-control", "length"])
    from harness.evaluation import benchmark_flags

    assert benchmark_flags()["arenahard"].options(a) == {"version": "v2.0", "baseline_answers": ["o3.jsonl", "gemini.jsonl"],
                                                         "style_control": "length"}
    a = p.parse_args(["judge", "--benchmark", "mtbench", "--answers", "x.jsonl", "--mode", "pairwise"])
    assert benchmark_flags()["mtbench"].options(a) == {"mode": "pairwise", "baseline_answers": None}
    a = p.parse_args(["judge", "--benchmark", "mtbench", "--answers", "x.jsonl"])
    assert a.mtbench_mode == "single"


def test_a_benchmark_flag_for_a_benchmark_that_does_not_run_is_refused(capsys, tmp_path):
    """No setting is silently ignored: --arena-version with only openllm (eval), or with --benchmark mtbench
    (judge), exits 2 naming the flag and its benchmark, before anything runs."""
    from harness.cli import main

    assert main(["eval", "--model", "m", "--benchmarks", "openllm", "--arena-version", "v2.0"]) == 2
    err = capsys.readouterr().err
    assert "--arena-version (arenahard)" in err and "would be ignored" in err
    assert main(["judge", "--benchmark", "mtbench", "--answers", "a.jsonl", "--arena-style-control", "length",
                 "--mtbench-mode", "pairwise"]) == 2
    out = capsys.readouterr().out
    assert "--arena-style-control (arenahard)" in out and "--mtbench-mode" not in out
    assert main(["train-and-eval", "--method", "dpo", "--benchmarks", "openllm", "--mtbench-baseline", "b.jsonl",
                 "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]) == 2
    assert "--mtbench-baseline (mtbench)" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # refused before anything ran


def test_judged_benchmark_names_and_aliases():
    import pytest

    from harness.judged import _alias_options, benchmark_module, canonical

    assert [canonical(n) for n in ("MT-Bench", "alpaca_eval_2", "arena-hard-v0.1", "arena-hard-v2.0")] == [
        "mtbench", "alpacaeval", "arenahard", "arenahard"]
    assert benchmark_module("arena-hard-v2.0").__name__ == "harness.judged.arenahard"
    assert _alias_options("arena-hard-v2.0", {}) == {"version": "v2.0"}
    assert _alias_options("arena-hard-v2.0", {"version": "v0.1"}) == {"version": "v0.1"}  # explicit wins
    assert _alias_options("arenahard", {}) == {}
    with pytest.raises(ValueError, match="unknown judged benchmark 'arena'; choose from mtbench, alpacaeval, arenahard"):
        canonical("arena")
