"""MT-Bench on FastChat's real data files, a scripted generator and the loopback judge server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from harness.judge import JudgeConfig
from harness.judged import mtbench, run_judged_benchmark
from harness.results import read_result
from harness.testing.fake_openai import FakeOpenAI
from harness.testing.scripted import ScriptedGenerator

KEY = "sk-test-mtbench-7f3a9c"


def judge(request: dict) -> str:
    """Scripted judge: math-style prompts (with a reference) get '[5]' (FastChat's single-bracket
    fallback), multi-turn prompts '[[7]]', the rest '[[9]]'; question 81 turn 1 gets no verdict."""
    user = request["messages"][-1]["content"]
    if "Reference Answer" in user or "reference answer" in user.lower():
        return "Correct but terse. Rating: [5]"
    if "### User:" in user:
        return "Fine follow-up. Rating: [[7]]"
    if "Hawaii" in user:
        return "I refuse to give a number."
    return "Great. Rating: [[9]]"


@pytest.fixture()
def fake():
    with FakeOpenAI(responder=judge) as f:
        yield f


@pytest.fixture()
def cfg(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return JudgeConfig(model="judge-model", base_url=fake.base_url, concurrency=16, progress=False,
                       backoff_base_s=0.01)


def test_mtbench_single_full_protocol(fake, cfg, data_dir, tmp_path, capsys):
    gen = ScriptedGenerator()
    rec = run_judged_benchmark("mtbench", gen, cfg, tmp_path, data_dir=data_dir,
                               run={"run_id": "r1", "method": "base", "model": "scripted"})
    read_result(tmp_path / "r1" / "mtbench.json")  # schema-valid on disk
    s = {(x["task"], x["metric"]): x for x in rec["scores"]}
    # 50 questions without reference (1 unparseable) score 9, 30 with reference score 5
    assert s[("mt_bench", "score_turn1")]["value"] == pytest.approx((49 * 9 + 30 * 5) / 79)
    assert s[("mt_bench", "score_turn1")]["n"] == 79
    assert s[("mt_bench", "score_turn2")]["value"] == pytest.approx((50 * 7 + 30 * 5) / 80)
    assert s[("mt_bench", "score_avg")]["value"] == pytest.approx((49 * 9 + 50 * 7 + 60 * 5) / 159)
    assert s[("mt_bench/writing", "score")]["value"] == pytest.approx((9 * 9 + 10 * 7) / 19)
    assert s[("mt_bench/math", "score")]["value"] == 5
    assert rec["judge"]["unparseable"] == 1 and rec["judge"]["calls"] == 160 and rec["judge"]["unjudged"] == 0
    assert fake.n_requests == 160

    # FastChat's per-category temperatures reached the generator
    temps = {round(c[1].temperature, 2) for c in gen.calls}
    assert temps == {0.0, 0.1, 0.7}
    # files in FastChat's formats
    ans = [json.loads(l) for l in open(tmp_path / "mt_bench/model_answer/r1.jsonl")]
    assert len(ans) == 80 and {"question_id", "answer_id", "model_id", "choices", "tstamp"} <= set(ans[0])
    assert len(ans[0]["choices"][0]["turns"]) == 2
    judg = [json.loads(l) for l in open(tmp_path / "mt_bench/model_judgment/judge-model_single.jsonl")]
    assert {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"} <= set(judg[0])
    bad = [j for j in judg if j["score"] == -1]
    assert [(b["question_id"], b["turn"]) for b in bad] == [(81, 1)] and "refuse" in bad[0]["judgment"]
    # reference answers are read from the file and used for math; judge prompts by name
    math1 = next(j for j in judg if j["question_id"] == 111 and j["turn"] == 1)
    ref = mtbench.load_references(data_dir)[111][0]
    assert ref in math1["user_prompt"] and math1["judge"] == ["judge-model", "single-math-v1"]
    w2 = next(j for j in judg if j["question_id"] == 81 and j["turn"] == 2)
    assert w2["judge"][1] == "single-v1-multi-turn"
    png = tmp_path / "mt_bench" / "radar_r1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "160 calls" in capsys.readouterr().err

    # rerun: everything is on disk, zero calls
    n = fake.n_requests
    rec2 = run_judged_benchmark("mtbench", gen, cfg, tmp_path, data_dir=data_dir,
                                run={"run_id": "r1", "method": "base", "model": "scripted"})
    assert fake.n_requests == n and rec2["scores"] == rec["scores"]


def test_parse_rating_fastchat_rules():
    assert mtbench.parse_rating("blah [[8.5]] then [3]") == 8.5
    assert mtbench.parse_rating("Rating: [4]") == 4
    assert mtbench.parse_rating("no number here") == -1
    assert mtbench.parse_pair("so [[B]]") == "B" and mtbench.parse_pair("[[C]]") == "tie"
    assert mtbench.parse_pair("A is better") == "error"


def test_mtbench_pairwise_both_orders(fake, cfg, data_dir, tmp_path):
    def pair_judge(request):
        user = request["messages"][-1]["content"]
        a_start = user.index("Assistant A")
        b_start = user.index("Assistant B")
        a_part, b_part = user[a_start:b_start], user[b_start:]
        if "Hawaii" in user and "### User:" not in user:
            return "Position bias: [[A]]"  # says A in both orders -> inconsistent -> tie
        return "[[A]]" if "GOOD" in a_part else "[[B]]" if "GOOD" in b_part else "[[C]]"

    fake.responder = pair_judge
    base = ScriptedGenerator(name="base", style="BAD")
    base_path = tmp_path / "mt_bench/model_answer/base.jsonl"
    qs = mtbench.load_questions(data_dir, 3)
    mtbench.generate_answers(base, qs, base_path, "base")
    rec = run_judged_benchmark("mtbench", ScriptedGenerator(style="GOOD"), cfg, tmp_path, 3, data_dir=data_dir,
                               mode="pairwise", baseline_answers=base_path,
                               run={"run_id": "good", "method": "dpo", "model": "x"})
    s = {x["metric"]: x["value"] for x in rec["scores"]}
    # 3 questions x 2 turns; question 81 turn 1 is a tie (both orders said A); 5 consistent wins
    assert s == {"win_rate": 5 / 6, "loss_rate": 0.0, "win_rate_adjusted": 5.5 / 6}
    rows = [json.loads(l) for l in open(tmp_path / "mt_bench/model_judgment/judge-model_pair.jsonl")]
    r81 = next(r for r in rows if r["question_id"] == 81 and r["turn"] == 1)
    assert (r81["g1_winner"], r81["g2_winner"]) == ("good", "base")
    assert r81["judge"] == ["judge-model", "pair-v2"] and fake.n_requests == 12


def test_no_judge_generates_and_says_what_is_missing(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rec = run_judged_benchmark("mtbench", ScriptedGenerator(), JudgeConfig(model="gpt-4"), tmp_path, 2,
                               data_dir=data_dir, run={"run_id": "nj", "method": "base", "model": "m"})
    assert rec["scores"][0]["value"] is None
    assert "OPENAI_API_KEY" in rec["scores"][0]["unavailable"]
    assert len((tmp_path / "mt_bench/model_answer/nj.jsonl").read_text().splitlines()) == 2


KILL_SCRIPT = r"""
import os, sys
from harness.judge import JudgeConfig
from harness.judged import mtbench
cfg = JudgeConfig(model="judge-model", base_url=sys.argv[1], concurrency=2, progress=False)
mtbench.run(None, cfg, sys.argv[2], 10, data_dir=sys.argv[3], answers_path=sys.argv[4])
"""


def test_kill_and_resume_loses_nothing_and_judges_nothing_twice(fake, cfg, data_dir, tmp_path):
    answers = tmp_path / "ans" / "m.jsonl"
    mtbench.generate_answers(ScriptedGenerator(), mtbench.load_questions(data_dir, 10), answers, "m")
    fake.latency_s = 0.05
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, fake.base_url, str(tmp_path / "out"), str(data_dir),
                             str(answers)], env=env, stderr=subprocess.PIPE)
    jpath = tmp_path / "out/mt_bench/model_judgment/judge-model_single.jsonl"
    deadline = time.time() + 30
    while time.time() < deadline and (not jpath.exists() or len(jpath.read_bytes().splitlines()) < 6):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    before = len(jpath.read_bytes().splitlines())
    assert 6 <= before < 20, before
    n0 = fake.n_requests
    fake.latency_s = 0.0
    out = mtbench.run(None, cfg, tmp_path / "out", 10, data_dir=data_dir, answers_path=answers)
    rows = [json.loads(l) for l in jpath.read_text().splitlines()]
    keys = [(r["question_id"], r["turn"]) for r in rows]
    assert len(keys) == 20 and len(set(keys)) == 20  # nothing lost, nothing twice
    assert fake.n_requests - n0 <= 20 - before  # judged on rerun only what was missing
    assert out.judge["unjudged"] == 0


def test_cli_judges_saved_answers(fake, cfg, data_dir, tmp_path, capsys):
    from harness.cli import main

    answers = tmp_path / "a" / "cli-model.jsonl"
    mtbench.generate_answers(ScriptedGenerator(), mtbench.load_questions(data_dir, 2), answers, "cli-model")
    rc = main(["judge", "--benchmark", "mtbench", "--answers", str(answers), "--judge-model", "judge-model",
               "--judge-base-url", fake.base_url, "--out", str(tmp_path / "o"), "--data-dir", str(data_dir),
               "--limit", "2"])
    out = capsys.readouterr().out
    assert rc == 0 and fake.n_requests == 4
    rec = read_result(tmp_path / "o" / "cli-model" / "mtbench.json")
    # question 81 turn 1 is unparseable; 82 turn 1 -> 9; both second turns -> 7
    assert next(s for s in rec["scores"] if s["metric"] == "score_avg")["value"] == pytest.approx((9 + 7 + 7) / 3)
    assert "score_avg" in out


def test_scores_follow_fastchat_show_result_semantics():
    """FastChat's show_result (single): rows with score -1 are dropped, then turn 1, turn 2 and the average are
    plain means of what is left (the average over all remaining turns, not the mean of the two turn means)."""
    qs = [{"question_id": 81, "category": "writing"}, {"question_id": 82, "category": "writing"},
          {"question_id": 111, "category": "math"}, {"question_id": 112, "category": "math"}]
    j = [(81, 1, 8.0), (81, 2, -1), (82, 1, 6.0), (82, 2, 3.0), (111, 1, -1), (111, 2, 10.0), (112, 2, 9.0),
         (82, 1, 2.0)]  # a judgment of another model is ignored
    rows = [{"question_id": q, "turn": t, "score": s, "model": "m" if i < 7 else "other"} for i, (q, t, s) in enumerate(j)]
    scores, per_cat, unparseable = mtbench.summarize_single(rows, qs, "m")
    s = {x["metric"]: x for x in scores if x["task"] == "mt_bench"}
    assert s["score_turn1"]["value"] == (8 + 6) / 2 and s["score_turn1"]["n"] == 2
    assert s["score_turn2"]["value"] == pytest.approx((3 + 10 + 9) / 3) and s["score_turn2"]["n"] == 3
    # the average is over all 5 remaining turns (6.8), not the mean of the two turn means (7.17)
    assert s["score_avg"]["value"] == pytest.approx((8 + 6 + 3 + 10 + 9) / 5) and s["score_avg"]["n"] == 5
    assert per_cat == {"writing": pytest.approx((8 + 6 + 3) / 3), "math": pytest.approx(9.5)} and unparseable == 2
