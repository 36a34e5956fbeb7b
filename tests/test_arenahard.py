"""Arena-Hard: Bradley-Terry + bootstrap on synthetic battles with known strengths, verdict parsing with the
upstream regexes read from the config, and a loopback end-to-end run with hand-computed battles."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.judge import JudgeConfig
from harness.judged import arenahard as ah
from harness.judged import bt, run_judged_benchmark
from harness.judged.data import DataError
from harness.testing.fake_openai import FakeOpenAI
from harness.testing.scripted import ScriptedGenerator


def test_bt_recovers_known_strengths_and_bootstrap_covers_them():
    rng = np.random.default_rng(1)
    truth = {"base": 1000.0, "m1": 1150.0, "m2": 900.0, "m3": 1300.0}
    names = list(truth)
    battles = []
    for _ in range(12000):
        a, b = rng.choice(4, 2, replace=False)
        pa = 1 / (1 + 10 ** ((truth[names[b]] - truth[names[a]]) / 400))
        battles.append((names[a], names[b], "model_a" if rng.random() < pa else "model_b"))
    est = bt.fit(battles, anchor="base")
    assert est["base"] == 1000.0
    for m in ("m1", "m2", "m3"):
        assert est[m] == pytest.approx(truth[m], abs=20)
    boots = bt.bootstrap(battles, "base", rounds=60)
    for m in ("m1", "m2", "m3"):
        lo, hi = np.quantile([b[m] for b in boots], [0.025, 0.975])
        assert lo < truth[m] < hi and 10 < hi - lo < 80


def test_bt_two_models_equals_tie_split_win_rate():
    """With one model against the baseline, the BT win rate is (wins + ties/2) / battles exactly."""
    battles = [("base", "m", "model_b")] * 30 + [("m", "base", "model_a")] * 12 + [("base", "m", "model_a")] * 10 \
        + [("m", "base", "tie")] * 8
    r = bt.fit(battles, anchor="base")
    assert bt.win_rate(r["m"], r["base"]) == pytest.approx(100 * (42 + 4) / 60, abs=1e-6)


def test_verdict_parse_uses_config_regexes(data_dir):
    jc = ah.load_config("v0.1", data_dir)
    assert jc["patterns"][0] == r"\[\[([AB<>=]+)\]\]" and jc["max_tokens"] == 4096
    assert "[[A>>B]]" in jc["system"] and jc["system_source"].endswith("judge_config_v0.1_2024.yaml")
    p = jc["patterns"]
    assert ah.parse_verdict("thinking [[A>B]] ... final: [[b>>a]]", p) == "B>>A"
    assert ah.parse_verdict("single bracket [A=B]", p) == "A=B"
    assert ah.parse_verdict("no label", p) is None


def test_arenahard_end_to_end_loopback(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-arena-test-123456")
    qs = ah.load_questions("v0.1", data_dir, 6)
    q3, q4, q5 = (q["prompt"][:40] for q in qs[3:6])

    def judge(request):
        msgs = request["messages"]
        user = msgs[1]["content"]
        a_part = user.split("<|The Start of Assistant A's Answer|>")[1].split("<|The End of Assistant A's Answer|>")[0]
        model_first = "GOOD" in a_part
        if q5 in user:
            return "I cannot decide."  # no verdict in either attempt
        if q4 in user:
            return "[[A=B]]" if len(msgs) > 2 else "Still thinking..."  # verdict only on the continuation
        if q3 in user:
            return "[[A=B]]" if model_first else "My final verdict: [[A>>B]]"  # baseline strongly wins game 1
        return "[[A>B]]" if model_first else "[[B>>A]]"

    with FakeOpenAI(responder=judge) as fake:
        cfg = JudgeConfig(model="judge", base_url=fake.base_url, progress=False)
        rec = run_judged_benchmark("arenahard", ScriptedGenerator(style="GOOD"), cfg, tmp_path, 6,
                                   data_dir=data_dir, run={"run_id": "ah", "method": "base", "model": "m"},
                                   bootstrap_rounds=30)
        # q0-q2: 3 + 1 model wins each; q3: 3 baseline wins + 1 tie; q4: 2 ties; q5: nothing
        s = {x["metric"]: x for x in rec["scores"]}
        assert s["score"]["value"] == pytest.approx(100 * (12 + 1.5) / 18, abs=1e-4)
        lo, hi = s["score"]["ci95"]
        assert lo < s["score"]["value"] < hi
        assert rec["judge"]["unparseable"] == 2 and rec["judge"]["n_battles"] == 18
        # 6 questions x 2 games, + 2 continuations for q4 and 2 for q5
        assert fake.n_requests == 16 and rec["conventions"]["style_control"] is False
        assert s["avg_tokens"]["value"] > 0
        n = fake.n_requests
        run_judged_benchmark("arenahard", ScriptedGenerator(style="GOOD"), cfg, tmp_path, 6, data_dir=data_dir,
                             run={"run_id": "ah", "method": "base", "model": "m"}, bootstrap_rounds=30)
        assert fake.n_requests == n


def test_v2_without_baseline_answers_names_the_missing_file(data_dir, tmp_path, monkeypatch):
    from tests.conftest import data_dir_variant

    monkeypatch.setenv("OPENAI_API_KEY", "sk-x-123456")
    bare = data_dir_variant(data_dir, tmp_path / "data",
                            drop=("arena_hard/arena-hard-v2.0/model_answer/o3-mini-2025-01-31.jsonl",))
    with pytest.raises(DataError, match="o3-mini-2025-01-31.jsonl"):
        run_judged_benchmark("arenahard", ScriptedGenerator(), JudgeConfig(model="j", base_url="http://127.0.0.1:9/v1"),
                             tmp_path, 2, data_dir=bare, version="v2.0",
                             run={"run_id": "v2", "method": "base", "model": "m"})
