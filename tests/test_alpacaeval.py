"""AlpacaEval 2: parity with the published leaderboard, the logprob parser on real judge completions,
the length-controlled GLM on synthetic data with a known answer, and a loopback end-to-end run."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from harness.judge import JudgeConfig
from harness.judged import alpacaeval as ae
from harness.judged import run_judged_benchmark
from harness.testing.fake_openai import FakeOpenAI
from harness.testing.scripted import ScriptedGenerator


def _published(data_dir):
    lb = pd.read_csv(data_dir / "alpaca_eval/published/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv")
    return lb.set_index("name")


PUBLISHED = [("OpenHermes-2.5-Mistral-7B", "OpenHermes-2.5-Mistral (7B)", 10.34), ("alpaca-7b", "Alpaca 7B", 2.59),
             ("falcon-7b-instruct", "Falcon 7B Instruct", 2.15), ("gemma-7b-it", "Gemma Instruct (7B)", 6.94),
             ("gpt-3.5-turbo-1106", "GPT 3.5 Turbo (11/06)", 9.18)]


@pytest.mark.parametrize("file,name,rounded", PUBLISHED)
def test_win_rate_recomputed_from_published_annotations(data_dir, file, name, rounded):
    """Every published annotation set in the data dir gives its leaderboard win rate (to 2 decimals, and in
    fact to float precision)."""
    rows = json.loads((data_dir / f"alpaca_eval/published/{file}.annotations.json").read_text())
    wr = ae.win_rate([r["preference"] for r in rows])
    published = _published(data_dir).loc[name, "win_rate"]
    assert round(wr["win_rate"], 2) == rounded == round(published, 2)
    assert wr["win_rate"] == pytest.approx(published, abs=1e-9)
    assert wr["n_total"] == 805 and wr["standard_error"] > 0


def test_published_annotation_files_are_all_covered(data_dir):
    files = {p.name.split(".annotations")[0] for p in (data_dir / "alpaca_eval/published").glob("*.annotations.json")}
    assert files == {f for f, _, _ in PUBLISHED}


def test_logprob_parser_matches_published_preferences(data_dir):
    """Our parser on the 805 real judge completions gives the published preference (up to the hidden order)."""
    rows = json.loads((data_dir / "alpaca_eval/published/OpenHermes-2.5-Mistral-7B.annotations.json").read_text())
    ann_numer, ann_denoms = "m", ["m", "M"]
    n_checked = 0
    for r in rows:
        if r["raw_completion"] is None:  # identical outputs: a draw without a judge call
            assert r["output_1"] == r["output_2"] and r["preference"] == 1.5
            continue
        top = [[t["token"], t["logprob"]] for t in r["raw_completion"]["logprobs"]["content"][0]["top_logprobs"]]
        shown = ae.shown_preference(top, ann_numer, ann_denoms)
        assert shown == pytest.approx(r["preference"], abs=1e-6) or 3 - shown == pytest.approx(r["preference"], abs=1e-6)
        n_checked += 1
    assert n_checked == 802
    assert ae.shown_preference([["The", -0.1]], "m", ["m", "M"]) is None


def test_annotator_config_read_at_run_time(data_dir):
    ann = ae.load_annotator(data_dir)
    assert ann["completions_kwargs"] == {"max_tokens": 1, "temperature": 1, "logprobs": True, "top_logprobs": 5}
    assert (ann["numerator"], ann["denominators"]) == ("m", ["m", "M"])
    msgs = ae.chatml_messages(ae.fill(ann["template"], instruction="INS", output_1="{output_2}", output_2="B-OUT"))
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "INS" in msgs[1]["content"] and "{output_2}" in msgs[1]["content"] and "B-OUT" in msgs[1]["content"]


def _synthetic(n=805, seed=0, truth=(-0.9, 0.6, -0.4)):
    """Soft preferences from a known GLM (a < 0: a longer model answer helps, as in the real weights);
    returns annotations, df_gamed, the true LC win rate and the raw win rate."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1, n)
    a, b, c = truth
    len_base = rng.integers(200, 2000, n)
    len_model = len_base + rng.integers(0, 1500, n)  # the model is verbose
    diff = (len_base - len_model).astype(float)
    std = diff / diff.std(ddof=1)
    p = 1 / (1 + np.exp(-(a * np.tanh(std) + b * difficulty + c)))
    ann = [{"index": i, "output_1": "x" * int(len_base[i]), "output_2": "y" * int(len_model[i]),
            "preference": 1 + p[i]} for i in range(n)]
    gamed = []
    for k, shift in enumerate((-1.5, 1.5)):  # two gamed baselines: same instructions, other lengths
        s = rng.normal(shift, 0.5, n)
        pg = 1 / (1 + np.exp(-(a * np.tanh(s) + b * difficulty)))  # not_gamed=0: no model offset
        gamed.append(pd.DataFrame({"index": np.arange(n), "instruction_difficulty": difficulty, "preference": pg,
                                   "std_delta_len": s, "not_gamed_baseline": False, "model": f"g{k}"}))
    truth_lc = float((1 / (1 + np.exp(-(b * difficulty + c)))).mean() * 100)
    return ann, pd.concat(gamed, ignore_index=True), truth_lc, float(p.mean() * 100)


def test_length_controlled_glm_recovers_known_answer():
    """Noise-free soft targets from a known GLM: the cross-validated L1 fit picks a weak penalty and recovers
    the weights (to the shrinkage of its largest C); the standard error is alpaca_eval's: the standard error of
    the mean predicted preference."""
    ann, df_gamed, truth_lc, raw = _synthetic(n=300)
    out = ae.lc_win_rate(ann, df_gamed)
    assert out["length_controlled_winrate"] == pytest.approx(truth_lc, abs=0.05)
    assert out["weights"]["np.tanh(std_delta_len)"] == pytest.approx(-0.9, abs=0.01)
    assert out["weights"]["instruction_difficulty"] == pytest.approx(0.6, abs=0.01)
    assert out["weights"]["not_gamed_baseline.astype(float)"] == pytest.approx(-0.4, abs=0.01)
    assert raw > truth_lc + 5  # verbosity inflated the raw win rate; LC removes it
    b = np.array(list(out["weights"].values()))
    diff = next(iter(df_gamed.groupby("model")))[1]["instruction_difficulty"].to_numpy()
    pred = 1 / (1 + np.exp(-(b[1] * diff + b[2])))
    assert out["length_controlled_winrate"] == pytest.approx(pred.mean() * 100, abs=1e-9)
    assert out["lc_standard_error"] == pytest.approx(pd.Series(pred).sem() * 100, abs=1e-9)


def _logprob_judge(request):
    """P(first shown output is best) = 0.8 if it is the model's (GOOD), else 0.2; instruction 3 has no label."""
    user = request["messages"][-1]["content"]
    first = user.split('"model_identifier": "m"')[1].split('"model_identifier": "M"')[0]
    p_m = 0.8 if "GOOD" in first else 0.2
    return {"text": "m", "top_logprobs": [("m", math.log(p_m)), ("M", math.log(1 - p_m)), ("The", -9.0)]}


def test_alpacaeval_end_to_end_loopback(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-alpaca-secret-42")
    refs = ae.load_reference(data_dir, 8)
    bad_instruction = refs[3]["instruction"][:40]

    def judge(request):
        if bad_instruction in request["messages"][-1]["content"]:
            return {"text": "The", "top_logprobs": [("The", -0.1), ("Both", -2.0)]}
        return _logprob_judge(request)

    with FakeOpenAI(responder=judge) as fake:
        cfg = JudgeConfig(model="judge", base_url=fake.base_url, api_key_env="JUDGE_KEY", progress=False)
        rec = run_judged_benchmark("alpacaeval", ScriptedGenerator(style="GOOD"), cfg, tmp_path, 8,
                                   data_dir=data_dir, run={"run_id": "ae", "method": "base", "model": "m"})
        s = {x["metric"]: x for x in rec["scores"]}
        assert s["win_rate"]["value"] == pytest.approx(80.0) and s["win_rate"]["n"] == 7
        assert rec["judge"]["unparseable"] == 1 and rec["judge"]["calls"] == 8
        lc = s["length_controlled_win_rate"]
        assert lc["value"] is None and "df_gamed.csv" in lc["unavailable"]
        req = fake.requests[0][1]
        assert req["logprobs"] is True and req["top_logprobs"] == 5 and req["max_tokens"] == 1
        assert [m["role"] for m in req["messages"]] == ["system", "user"]
        # both shown orders occurred, so the swap bookkeeping was exercised
        assert len({ae.is_swapped(r["instruction"]) for r in refs}) == 2
        outs = json.loads((tmp_path / "alpaca_eval/model_outputs.json").read_text())
        assert len(outs) == 8 and set(outs[0]) == {"instruction", "output", "generator", "dataset"}
        n = fake.n_requests
        run_judged_benchmark("alpacaeval", ScriptedGenerator(style="GOOD"), cfg, tmp_path, 8,
                             data_dir=data_dir, run={"run_id": "ae", "method": "base", "model": "m"})
        assert fake.n_requests == n
