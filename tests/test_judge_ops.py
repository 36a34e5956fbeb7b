"""Judging that a researcher can trust and afford (issues 10.4 and 12): partial judged results carry their
coverage and fail the command with a resume hint; an unreachable or failing judge stops at once with the real
error; the bill is estimated before any call (--dry-run, --max-judge-cost) and the real spend recorded; a reply
that arrived is never paid for twice after a kill -9."""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.judge.cost import known_price
from harness.judge.server import free_port
from harness.results import read_result
from harness.testing.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-ops-NEVER-SHOWN-77a1c2"
MT_ANSWERS = "mt_bench/model_answer/alpaca-13b.jsonl"


@pytest.fixture()
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _mt(data_dir, out, url, *extra, limit=2, model="judge-x"):
    return ["judge", "--benchmark", "mtbench", "--answers", str(data_dir / MT_ANSWERS), "--limit", str(limit),
            "--data-dir", str(data_dir), "--out", str(out), "--judge-model", model, "--judge-base-url", url, *extra]


def _result(out, bench="mtbench", run="alpaca-13b"):
    return read_result(Path(out) / run / f"{bench}.json")


def _second_turn(request):
    return "### User:" in request["messages"][-1]["content"]


# ---------- issue 12.1: partial judged scores ----------
def test_partial_judgment_records_coverage_exits_nonzero_and_resumes(key, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    with FakeOpenAI(status_for=lambda r: 500 if _second_turn(r) else None) as fake:
        rc = main(_mt(data_dir, out, fake.base_url, "--judge-max-retries", "1"))
        err = capsys.readouterr().err
        assert rc == 4
        rec = _result(out)
        for s in rec["scores"]:
            assert s["coverage"] == {"judged": 2, "expected": 4}, s
        assert rec["judge"]["coverage"] == {"judged": 2, "expected": 4} and rec["judge"]["failures"] == 2
        t2 = next(s for s in rec["scores"] if s["metric"] == "score_turn2")
        assert t2["value"] is None and t2["unavailable"]
        assert "alpaca-13b/mtbench: incomplete: 2 of 4 judgments (2 missing: 2 judge requests failed for good; " \
               "last error: InternalServerError: HTTP 500" in err
        assert "rerun the same command" in err and KEY not in err
        assert fake.n_requests == 2 + 2 * 2  # two turn-1 replies; each turn-2 request tried twice
        from harness.evaluation.runner import _same_settings, report_incomplete

        path = out / "alpaca-13b" / "mtbench.json"
        assert not _same_settings(path, None)  # train-and-eval resumes it instead of reusing it
        assert report_incomplete([path]) == 1  # harness eval / train-and-eval exit 4 on it
        assert "alpaca-13b/mtbench: incomplete: 2 of 4" in capsys.readouterr().err
        fake.status_for = None
        rc = main(_mt(data_dir, out, fake.base_url))
        assert rc == 0 and fake.n_requests == 6 + 2  # only the two missing judgments were requested
    rec = _result(out)
    assert all(s["coverage"] == {"judged": 4, "expected": 4} for s in rec["scores"])
    assert next(s for s in rec["scores"] if s["metric"] == "score_avg")["value"] == 5.0


# ---------- issue 12.2 and 12.3: unreachable or always-failing judge ----------
def test_closed_port_fails_fast_with_the_connection_error(key, data_dir, tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.monotonic()
    rc = main(_mt(data_dir, tmp_path, url))  # default --judge-max-retries 6
    took = time.monotonic() - start
    out = capsys.readouterr().out
    assert rc == 2 and took < 15, took
    assert f"judge endpoint {url} is not usable: 3 judge requests in a row failed" in out
    assert "APIConnectionError: Connection error." in out and "Connect" in out.split("Connection error.")[1]
    assert not (tmp_path / "alpaca-13b" / "mtbench.json").exists()


@pytest.mark.parametrize("status", [401, 500])
def test_failing_judge_stops_with_status_and_body(key, data_dir, tmp_path, capsys, status):
    with FakeOpenAI() as fake:
        fake.fail_status = status
        fake.inject("401_echo") if status == 401 else None
        rc = main(_mt(data_dir, tmp_path, fake.base_url, "--judge-max-retries", "1"))
        n = fake.n_requests
    out = capsys.readouterr().out
    assert rc == 2 and KEY not in out
    if status == 401:  # not retried; the body echoed the key, which is redacted
        assert n == 1 and "HTTP 401" in out and "invalid key: Bearer [REDACTED]" in out
    else:  # three probe requests, each retried once
        assert n == 6 and "HTTP 500" in out and "internal error" in out


def test_alpacaeval_with_every_call_failing_reports_instead_of_crashing(key, data_dir, tmp_path, capsys):
    answers = data_dir / "alpaca_eval/model_outputs/claude-2.model_outputs.json"
    args = ["judge", "--benchmark", "alpacaeval", "--answers", str(answers), "--limit", "2", "--data-dir",
            str(data_dir), "--out", str(tmp_path), "--judge-model", "judge-x", "--judge-max-retries", "0"]
    with FakeOpenAI(fail_status=503) as fake:
        rc = main([*args, "--judge-base-url", fake.base_url])
    out = capsys.readouterr().out
    assert rc == 2 and "HTTP 503" in out and "Traceback" not in out
    # replies without logprobs: judged, but no preference can be read: null with the reason, no KeyError
    with FakeOpenAI(responder=lambda r: {"text": "m", "top_logprobs": [("x", 0.0)]}) as fake:
        rc = main([*args, "--judge-base-url", fake.base_url])
    out = capsys.readouterr().out
    assert rc == 0 and "n/a (no parseable verdicts (2 unparseable))" in out
    wr = next(s for s in _result(tmp_path, "alpacaeval", "claude-2")["scores"] if s["metric"] == "win_rate")
    assert wr["value"] is None and wr["coverage"] == {"judged": 2, "expected": 2}


# ---------- issue 10.4: the bill ----------
def _prompt_tokens(request):  # the stated approximation when no tokenizer is available: characters / 4
    return sum(math.ceil(len(m["content"]) / 4) + 4 for m in request["messages"]) + 3


def test_dry_run_estimate_matches_the_requests_and_real_spend_is_recorded(key, data_dir, tmp_path, capsys):
    pytest.importorskip("yaml")
    out = tmp_path / "out"
    with FakeOpenAI() as fake:
        rc = main(_mt(data_dir, out, fake.base_url, "--dry-run", model="gpt-4-turbo"))
        text = capsys.readouterr()
        assert rc == 0 and fake.n_requests == 0 and not (out / "alpaca-13b").exists()
        assert "judge bill (mt-bench judging): 4 calls (0 answered from the cache)" in text.err
        assert "dry run" in text.out
        rc = main(_mt(data_dir, out, fake.base_url, model="gpt-4-turbo"))
        assert rc == 0 and fake.n_requests == 4
        requests = [r for _, r in fake.requests]
        # after the cache: judged again without the saved judgments, the bill is zero calls
        shutil.rmtree(out / "mt_bench" / "model_judgment")
        capsys.readouterr()
        rc = main(_mt(data_dir, out, fake.base_url, "--dry-run", model="gpt-4-turbo"))
        assert rc == 0 and "0 calls (4 answered from the cache)" in capsys.readouterr().err and fake.n_requests == 4
    j = _result(out)["judge"]
    est = j["estimate"]
    prompt = sum(_prompt_tokens(r) for r in requests)
    assert est["calls"] == 4 and est["prompt_tokens"] == prompt and est["tokenizer"] == "approximation: characters / 4"
    assert est["completion_tokens"] == 4 * 512 and est["completion_tokens_max"] == 4 * 2048  # MT-Bench max_tokens 2048
    assert (est["price_in_usd_per_m"], est["price_out_usd_per_m"]) == (10.0, 30.0)
    assert est["cost_usd"] == pytest.approx((prompt * 10 + 4 * 512 * 30) / 1e6)
    # the real spend: the fake's usage (prompt characters // 4, completion "Rating: [[5]]" -> 3 tokens)
    used_prompt = sum(max(1, sum(len(m["content"]) for m in r["messages"]) // 4) for r in requests)
    assert (j["calls"], j["prompt_tokens"], j["completion_tokens"], j["cache_hits"]) == (4, used_prompt, 12, 0)
    assert j["cost_usd"] == pytest.approx((used_prompt * 10 + 12 * 30) / 1e6)


def test_max_judge_cost_refuses_then_stops_cleanly_and_resumes(key, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    price = ["--judge-price-in", "1", "--judge-price-out", "10"]
    with FakeOpenAI(responder=lambda r: {"text": "[[5]]", "completion_tokens": 200_000}) as fake:
        rc = main(_mt(data_dir, out, fake.base_url, *price, "--max-judge-cost", "0.001"))
        assert rc == 2 and fake.n_requests == 0
        assert "estimated cost $0.02 exceeds --max-judge-cost $0.00; nothing was judged" in capsys.readouterr().out
        # the estimate (~$0.02) passes; each real reply costs $2 (200k completion tokens): stop after the 3rd
        rc = main(_mt(data_dir, out, fake.base_url, *price, "--max-judge-cost", "5", "--judge-concurrency", "1"))
        err = capsys.readouterr().err
        assert rc == 4 and fake.n_requests == 3
        assert "incomplete: 3 of 4 judgments (1 missing: real spend $6.0" in err
        assert "reached --max-judge-cost $5.00" in err and "with a higher --max-judge-cost (or none)" in err
        j = _result(out)["judge"]
        assert j["cost_usd"] == pytest.approx(3 * (2.0 + j["prompt_tokens"] / 3 / 1e6)) and j["max_cost_usd"] == 5
        rc = main(_mt(data_dir, out, fake.base_url, *price))
        assert rc == 0 and fake.n_requests == 4
    with FakeOpenAI() as fake:  # no price known for this model: a budget cannot be checked
        rc = main(_mt(data_dir, tmp_path / "o2", fake.base_url, "--max-judge-cost", "1", model="my-judge"))
        assert rc == 2 and fake.n_requests == 0
    assert "--max-judge-cost needs prices: unknown: no price for 'my-judge'" in capsys.readouterr().out


def test_price_table_lookup():
    assert known_price("gpt-4-turbo-2024-04-09")[:2] == (10.0, 30.0)
    assert known_price("gpt-4o-2024-08-06")[:2] == (2.5, 10.0)
    assert known_price("gpt-4-0613")[:2] == (30.0, 60.0)
    assert known_price("gpt-4.1") is None and known_price("claude-x") is None


# ---------- issue 12.12: kill -9 while judging ----------
def _judge_subprocess(data_dir, out, url, *extra, prelude=""):
    """`harness judge` in a child process; ``prelude`` runs first (to plant a kill point)."""
    code = f"{prelude}\nimport sys\nfrom harness.cli import main\nsys.exit(main({json.dumps(_mt(data_dir, out, url, *extra, limit=6))}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": KEY}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_reply_is_cached_before_any_processing(data_dir, tmp_path):
    """The process dies right after the 3rd reply arrived, inside the first step that looks at it: that reply
    is in the cache already and is never requested again."""
    prelude = ("import os, signal\nfrom harness.judge import client as C\n_orig = C.JudgeClient._reply\nseen = []\n"
               "def _reply(resp):\n    seen.append(1)\n    if len(seen) == 3:\n        os.kill(os.getpid(), signal.SIGKILL)\n"
               "    return _orig(resp)\nC.JudgeClient._reply = staticmethod(_reply)")
    out = tmp_path / "out"
    with FakeOpenAI() as fake:
        p = _judge_subprocess(data_dir, out, fake.base_url, "--judge-concurrency", "1", prelude=prelude)
        assert p.wait(120) == -signal.SIGKILL, p.stderr.read().decode()[-2000:]
        assert fake.n_requests == 3
        p = _judge_subprocess(data_dir, out, fake.base_url)
        assert p.wait(120) == 0, p.stderr.read().decode()[-2000:]
        assert fake.n_requests == 12  # 6 questions x 2 turns, none paid twice
    assert _result(out)["judge"]["coverage"] == {"judged": 12, "expected": 12}


def test_kill_at_a_random_moment_pays_at_most_the_reply_in_flight(data_dir, tmp_path):
    """SIGKILL at a random point of the judging, then a rerun to completion. With one request in flight at a
    time, only that one can have been answered by the server without reaching our cache: total <= 12 + 1."""
    rng = random.Random(int(os.environ.get("KILL_SEED", time.time_ns() % 10_000)))
    out = tmp_path / "out"
    with FakeOpenAI(latency_s=0.03) as fake:
        p = _judge_subprocess(data_dir, out, fake.base_url, "--judge-concurrency", "1")
        kill_after = rng.randint(1, 11)
        deadline = time.monotonic() + 120
        while fake.n_requests < kill_after and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.04))  # anywhere in the request/reply/processing cycle
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        before = fake.n_requests
        p = _judge_subprocess(data_dir, out, fake.base_url)
        assert p.wait(120) == 0, p.stderr.read().decode()[-2000:]
        assert 12 <= fake.n_requests <= 12 + 1, (kill_after, before, fake.n_requests)
    assert _result(out)["judge"]["coverage"] == {"judged": 12, "expected": 12}


def test_eval_dry_run_skips_the_result_and_goes_on(tmp_path, capsys, monkeypatch):
    from harness.evaluation import BENCHMARKS, BenchmarkOutput, EvalRequest
    from harness.evaluation.runner import evaluate_model
    from harness.judge import JudgeDryRun

    def dry(req):
        raise JudgeDryRun("dry run: mt-bench judging: 4 calls, ~$0.08; nothing judged", {"calls": 4})

    def ok(req):
        return BenchmarkOutput(scores=[{"task": "t", "metric": "m", "value": 1.0}], conventions={}, backend={"name": "x"})

    monkeypatch.setitem(BENCHMARKS, "dry_bench", dry)
    monkeypatch.setitem(BENCHMARKS, "ok_bench", ok)
    run = {"run_id": "r", "method": "base", "model": "m"}
    paths = evaluate_model("m", ["dry_bench", "ok_bench"], tmp_path, run=run, request=EvalRequest(model="m"))
    assert [p.name for p in paths] == ["ok_bench.json"] and not (tmp_path / "r" / "dry_bench.json").exists()
    assert "r/dry_bench: dry run: mt-bench judging: 4 calls" in capsys.readouterr().out


def test_judging_cost_per_model_survives_a_rerun_from_the_cache_and_reaches_the_leaderboard(key, data_dir, tmp_path):
    """judging_cost_usd = this run's spend + the cached replies it reused, at the same prices: a rerun from the
    cache spends $0 but the model's judging cost stays; the judge_cost table shows it per model."""
    from harness.leaderboard import regenerate

    out = tmp_path / "out"
    price = ["--judge-price-in", "10", "--judge-price-out", "30"]
    with FakeOpenAI() as fake:
        assert main(_mt(data_dir, out, fake.base_url, *price)) == 0
        first = _result(out)["judge"]
        shutil.rmtree(out / "mt_bench" / "model_judgment")  # judged again: every reply from the cache
        assert main(_mt(data_dir, out, fake.base_url, *price)) == 0 and fake.n_requests == 4
    again = _result(out)["judge"]
    by_hand = (first["prompt_tokens"] * 10 + first["completion_tokens"] * 30) / 1e6
    assert first["cost_usd"] == pytest.approx(by_hand) and first["judging_cost_usd"] == pytest.approx(by_hand)
    assert again["cost_usd"] == 0 and again["cache_hits"] == 4 and again["cached_usd"] == pytest.approx(by_hand)
    assert again["judging_cost_usd"] == pytest.approx(by_hand)
    boards = regenerate(out, tmp_path / "lb", plot=False)
    md = (tmp_path / "lb" / "judge_cost.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| alpaca-13b"))
    assert f"| {by_hand:.2f} |" in row and row.count("–") == 2  # AlpacaEval, Arena-Hard: not run
    assert any(p.name == "judge_cost.md" for p in boards["written"])
    (tmp_path / "empty").mkdir()
    regenerate(tmp_path / "empty", tmp_path / "lb0", plot=False)  # no judged result: the table says so
    assert "no result of alpacaeval, arenahard, mtbench in the results directory yet" in (
        tmp_path / "lb0" / "judge_cost.md").read_text()
