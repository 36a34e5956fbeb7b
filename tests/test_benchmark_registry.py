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
