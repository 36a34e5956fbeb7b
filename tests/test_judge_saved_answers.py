"""`harness judge --answers FILE [FILE ...]` on published models' real answer files (both Arena-Hard layouts,
FastChat MT-Bench answers, alpaca_eval model outputs) with the loopback judge; the results share a leaderboard
with trained checkpoints."""
from __future__ import annotations

import json
import math

import pytest

from harness.cli import main
from harness.results import read_result
from harness.testing.fake_openai import FakeOpenAI

KEY = "sk-saved-answers-5150"


def _judge_args(fake, tmp_path, data_dir):
    return ["--judge-model", "judge-x", "--judge-base-url", fake.base_url, "--judge-api-key-env", "JUDGE_KEY",
            "--out", str(tmp_path / "out"), "--results", str(tmp_path / "results"), "--data-dir", str(data_dir)]


def _first_lines(path, n):
    return [json.loads(line) for line in path.read_text().splitlines()[:n]]


def test_arenahard_judges_both_answer_layouts_into_one_leaderboard(data_dir, tmp_path, monkeypatch):
    """llama-3-8b-instruct (older question_id/choices layout): ties when shown second, a strong win when shown
    first -> per question 3 wins + 1 tie of 4 battles = 87.5. gpt-4-0613 (current uid/messages layout): the judge
    always prefers B -> one win, one loss per question = 50."""
    monkeypatch.setenv("JUDGE_KEY", KEY)
    arena = data_dir / "arena_hard/arena-hard-v0.1"
    llama_file = arena / "model_answer_hf_format/llama-3-8b-instruct.jsonl"
    gpt_file = arena / "model_answer/gpt-4-0613.jsonl"
    uids = [json.loads(line)["uid"] for line in (arena / "question.jsonl").read_text().splitlines()[:3]]
    llama = {r["question_id"]: r["choices"][0]["turns"][0]["content"] for r in map(json.loads, llama_file.open())}
    llama_snips = [llama[u][:80] for u in uids]

    def judge(request):
        user = request["messages"][1]["content"]
        shown_a = user.split("<|The Start of Assistant A's Answer|>")[1].split("<|The End of Assistant A's Answer|>")[0]
        if any(s in user for s in llama_snips):
            return "[[A>>B]]" if any(s in shown_a for s in llama_snips) else "My verdict: [[A=B]]"
        return "[[B>A]]"

    with FakeOpenAI(responder=judge) as fake:
        rc = main(["judge", "--benchmark", "arenahard", "--answers", str(llama_file), str(gpt_file), "--limit", "3"]
                  + _judge_args(fake, tmp_path, data_dir))
        assert rc == 0 and fake.n_requests == 3 * 2 * 2
        assert any(llama_snips[0] in json.dumps(r) or json.dumps(llama_snips[0])[1:-1] in json.dumps(r)
                   for _, r in fake.requests)
    recs = {m: read_result(tmp_path / "results" / m / "arenahard.json") for m in ("llama-3-8b-instruct", "gpt-4-0613")}
    score = {m: next(s for s in r["scores"] if s["metric"] == "score") for m, r in recs.items()}
    assert score["llama-3-8b-instruct"]["value"] == pytest.approx(100 * 3.5 / 4, abs=1e-4)
    assert score["gpt-4-0613"]["value"] == pytest.approx(50.0, abs=1e-4)
    assert recs["gpt-4-0613"]["conventions"]["scored_with"] == ["llama-3-8b-instruct"]
    assert recs["gpt-4-0613"]["conventions"]["rule"] == "2024"
    assert recs["gpt-4-0613"]["conventions"]["baseline"] == "gpt-4-0314"
    tokens = next(s for s in recs["llama-3-8b-instruct"]["scores"] if s["metric"] == "avg_tokens")
    conv_meta = {r["question_id"]: r["conv_metadata"]["token_len"] for r in map(json.loads, llama_file.open())}
    assert tokens["value"] == pytest.approx(sum(conv_meta[u] for u in uids) / 3)

    lb = tmp_path / "lb"
    assert main(["leaderboard", "--results", str(tmp_path / "results"), "--output", str(lb)]) == 0
    rows = (lb / "judged.csv").read_text().splitlines()
    assert any(r.startswith("llama-3-8b-instruct,") and ",87.50 " in r for r in rows), rows
    assert any(r.startswith("gpt-4-0613,") and ",50.00 " in r for r in rows), rows


def test_arenahard_style_control_is_recorded(data_dir, tmp_path, monkeypatch, capsys):
    """Style control needs every answer's token length: the older-layout files carry it (conv_metadata), the
    current-layout v0.1 baseline file does not, which is an error naming the models, not a silent fallback."""
    monkeypatch.setenv("JUDGE_KEY", KEY)
    hf = data_dir / "arena_hard/arena-hard-v0.1/model_answer_hf_format"
    files = [hf / "llama-3-8b-instruct.jsonl", hf / "mixtral-8x7b-instruct-v0.1.jsonl"]
    calls = iter(range(10**6))
    args = ["judge", "--benchmark", "arenahard", "--answers", *map(str, files), "--limit", "6",
            "--arena-style-control", "length"]
    with FakeOpenAI(responder=lambda r: ["[[A>B]]", "[[B>A]]", "[[A=B]]"][next(calls) % 3]) as fake:
        assert main(args + _judge_args(fake, tmp_path, data_dir)) == 2
        said = capsys.readouterr().out
        assert "token length" in said and "gpt-4-0314" in said and fake.n_requests == 0  # refused before judging
        rc = main(args + ["--baseline-answers", str(hf / "gpt-4-0314.jsonl")] + _judge_args(fake, tmp_path, data_dir))
    assert rc == 0
    rec = read_result(tmp_path / "results" / "mixtral-8x7b-instruct-v0.1" / "arenahard.json")
    assert rec["conventions"]["style_control"] == "length"
    cat = rec["conventions"]["per_category"]["arena-hard-v0.1"]
    assert set(cat["style_coefficients"]) == {"length"}
    score = next(s for s in rec["scores"] if s["metric"] == "score")
    assert score["ci95"][0] <= score["value"] <= score["ci95"][1]


def test_mtbench_judges_published_answer_files(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", KEY)
    files = [data_dir / "mt_bench/model_answer" / f"{m}.jsonl" for m in ("gpt-4", "vicuna-13b-v1.3")]
    first = _first_lines(files[1], 1)[0]["choices"][0]["turns"][0][:60]
    with FakeOpenAI(responder=lambda r: "Rating: [[6]]") as fake:
        rc = main(["judge", "--benchmark", "mtbench", "--answers", *map(str, files), "--limit", "2"]
                  + _judge_args(fake, tmp_path, data_dir))
        assert rc == 0 and fake.n_requests == 2 * 2 * 2
        assert any(json.dumps(first)[1:-1] in json.dumps(r) for _, r in fake.requests)
    for m in ("gpt-4", "vicuna-13b-v1.3"):
        rec = read_result(tmp_path / "results" / m / "mtbench.json")
        assert next(s for s in rec["scores"] if s["metric"] == "score_avg")["value"] == 6.0
        assert rec["run"]["model"] == m


def test_alpacaeval_judges_published_model_outputs(data_dir, tmp_path, monkeypatch):
    """gemma-7b-it's real outputs; the judge gives the shown-first output P=0.7 -> preference by shown order."""
    monkeypatch.setenv("JUDGE_KEY", KEY)
    f = data_dir / "alpaca_eval/model_outputs/gemma-7b-it.model_outputs.json"
    with FakeOpenAI(responder=lambda r: {"text": "m", "top_logprobs": [("m", math.log(0.7)), ("M", math.log(0.3))]}) as fake:
        rc = main(["judge", "--benchmark", "alpacaeval", "--answers", str(f), "--limit", "4"]
                  + _judge_args(fake, tmp_path, data_dir))
        assert rc == 0 and fake.n_requests == 4
    from harness.judged import alpacaeval as ae

    refs = ae.load_reference(data_dir, 4)
    # model shown first (swapped) -> model preference 0.7, else 0.3
    expected = sum(70 if ae.is_swapped(r["instruction"]) else 30 for r in refs) / 4
    rec = read_result(tmp_path / "results" / "gemma-7b-it" / "alpacaeval.json")
    assert next(s for s in rec["scores"] if s["metric"] == "win_rate")["value"] == pytest.approx(expected)


def test_bad_answers_file_names_file_and_line(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JUDGE_KEY", KEY)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"uid": "x", "model": "m", "messages": [{"role": "user", "content": "q"}, '
                   '{"role": "assistant", "content": {"answer": "a"}}]}\n{"uid": "y", "model": "m"}\n')
    with FakeOpenAI() as fake:
        rc = main(["judge", "--benchmark", "arenahard", "--answers", str(bad)] + _judge_args(fake, tmp_path, data_dir))
    out = capsys.readouterr().out
    assert rc == 2 and f"{bad}: line 2" in out and "messages" in out and fake.n_requests == 0


def test_gen_temperature_is_used_and_recorded(data_dir, tmp_path):
    """--gen-temperature reaches each benchmark's generation and its result's conventions; unset, each keeps
    its own convention (MT-Bench: FastChat's per-category table)."""
    import argparse

    from harness.cmd_eval import add_eval_arguments, gen_temperatures, request_from_args
    from harness.judged import run_judged_benchmark
    from harness.testing.scripted import ScriptedGenerator

    assert gen_temperatures("alpacaeval=0.5,mtbench=0") == {"alpacaeval": 0.5, "mtbench": 0.0}
    with pytest.raises(ValueError, match="unknown benchmark 'arena'"):
        gen_temperatures("arena=0.5")
    p = argparse.ArgumentParser()
    add_eval_arguments(p)
    args = p.parse_args(["--model", "m", "--gen-temperature", "alpacaeval=0.5", "--arena-style-control", "length"])
    per = request_from_args(args, "m").options["per_benchmark"]
    assert per["alpacaeval"] == {"gen_temperature": 0.5} and "gen_temperature" not in per["mtbench"]
    assert per["arenahard"]["style_control"] == "length"

    gen = ScriptedGenerator()
    rec = run_judged_benchmark("alpacaeval", gen, None, tmp_path / "a", 2, data_dir=data_dir, gen_temperature=0.5,
                               run={"run_id": "t", "method": "base", "model": "m"})
    assert {s.temperature for _, s in gen.calls} == {0.5}
    assert rec["conventions"]["temperature"] == 0.5 and rec["conventions"]["temperature_source"].startswith("set")
    gen = ScriptedGenerator()
    rec = run_judged_benchmark("mtbench", gen, None, tmp_path / "m", 3, data_dir=data_dir,
                               run={"run_id": "t", "method": "base", "model": "m"})
    assert {s.temperature for _, s in gen.calls} == {0.7}  # the first three questions are writing
    assert rec["conventions"]["temperature_source"] == "FastChat per-category"
