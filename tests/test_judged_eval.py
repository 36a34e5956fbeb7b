"""`harness eval` on the judged benchmarks (MT-Bench, AlpacaEval 2, Arena-Hard): the tiny model answers through
the hf backend, the loopback fake judge returns scripted verdicts, the runner writes one result per benchmark
and the leaderboard picks them up. Without a judge: answers saved, null scores naming what is missing."""
from __future__ import annotations

import contextlib
import io
import json
import math
import shutil

import pytest

from harness.cli import main
from harness.judged import arenahard as ah
from harness.judged import alpacaeval as ae
from harness.results import read_result
from harness.testing.fake_openai import FakeOpenAI

KEY = "sk-judged-eval-5e1d7c0b"
BENCHES = ("mtbench", "arenahard", "alpacaeval")


def _files(*dirs):
    return [p for d in dirs for p in d.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def unjudged(tiny_model, data_dir, tmp_path_factory):
    """One generation pass without a judge (its answers are reused by the judged run)."""
    out = tmp_path_factory.mktemp("unjudged") / "results"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["eval", "--model", str(tiny_model), "--benchmarks", ",".join(BENCHES), "--limit", "2",
                   "--max-new-tokens", "16", "--data-dir", str(data_dir), "--run-id", "tiny", "--output", str(out)])
    return rc, buf.getvalue(), out


def test_without_judge_answers_saved_scores_null_with_reason(unjudged):
    rc, stdout, out = unjudged
    assert rc == 0
    reason = "not judged: missing a judge model (--judge-model)"
    assert "will not be judged: missing a judge model (--judge-model)" in stdout
    for bench, task, metric in (("mtbench", "mt_bench", "score_avg"), ("arenahard", "arena_hard_v0.1", "score"),
                                ("alpacaeval", "alpaca_eval_2", "win_rate")):
        rec = read_result(out / "tiny" / f"{bench}.json")
        row = next(s for s in rec["scores"] if (s["task"], s["metric"]) == (task, metric))
        assert row["value"] is None and row["unavailable"] == reason
        assert rec["judge"] == {"configured": False, "missing": ["a judge model (--judge-model)"]}
        assert rec["conventions"]["limit"] == 2 and rec["conventions"]["max_new_tokens"] == 16
        assert f"tiny/{bench}: {task} {metric} = null ({reason})" in stdout
    answers = [json.loads(line) for line in open(out / "tiny/mtbench/mt_bench/model_answer/tiny.jsonl")]
    assert [a["question_id"] for a in answers] == [81, 82] and all(len(a["choices"][0]["turns"]) == 2 for a in answers)
    assert all(n <= 16 for a in answers for n in a["n_tokens"])  # the cap reached the generator
    assert len(json.loads((out / "tiny/alpacaeval/alpaca_eval/model_outputs.json").read_text())) == 2
    arena = out / "tiny/arenahard/arena_hard/arena-hard-v0.1/model_answer/tiny.jsonl"
    assert len(arena.read_text().splitlines()) == 2
    # the answers' paths in the result are relative to the result's folder
    assert read_result(out / "tiny/mtbench.json")["conventions"]["answers"] == "mtbench/mt_bench/model_answer/tiny.jsonl"


def _scripted_judge(data_dir):
    """Verdicts by benchmark, recognised from the request:
    MT-Bench: turn 1 of question 81 -> [[8]], of 82 -> [[6]]; turn 2 of 81 -> [[4]], of 82 -> [[3]].
    Arena-Hard: question 0 -> the model is much better (both games), question 1 -> slightly worse (both games).
    AlpacaEval: P(baseline is best) = 0.25 on instruction 0, 0.9 on instruction 1 (from the logprobs)."""
    qs = ah.load_questions("v0.1", data_dir, 2)
    base = ah.load_answers(data_dir / "arena_hard/arena-hard-v0.1/model_answer/gpt-4-0314.jsonl")
    base_text = {q["uid"]: ah.answer_text(base[q["uid"]])[:60] for q in qs}
    refs = ae.load_reference(data_dir, 2)

    def respond(request):
        user = request["messages"][-1]["content"]
        if request.get("logprobs"):  # AlpacaEval's annotator
            i = next(i for i, r in enumerate(refs) if r["instruction"] in user)
            p_base = (0.25, 0.9)[i]
            m_block = user.split('"model_identifier": "m"')[1].split('"model_identifier": "M"')[0]
            p_m = p_base if refs[i]["output"][:60] in m_block else 1 - p_base
            return {"text": "m", "top_logprobs": [("m", math.log(p_m)), ("M", math.log(1 - p_m))]}
        if "<|The Start of Assistant A's Answer|>" in user:  # Arena-Hard
            q = next(q for q in qs if q["prompt"][:50] in user)
            a_part = user.split("<|The Start of Assistant A's Answer|>")[1].split("<|The End of Assistant A's Answer|>")[0]
            baseline_is_a = base_text[q["uid"]] in a_part
            if q is qs[0]:
                return "My final verdict is [[B>>A]]" if baseline_is_a else "My final verdict is [[A>>B]]"
            return "My final verdict is [[A>B]]" if baseline_is_a else "My final verdict is [[B>A]]"
        second_turn = "### User:" in user  # MT-Bench multi-turn grading shows the whole conversation
        hawaii = "Hawaii" in user
        rating = (4 if hawaii else 3) if second_turn else (8 if hawaii else 6)
        return f"Scripted. Rating: [[{rating}]]"

    return respond


def test_judged_eval_writes_three_results_and_leaderboard(unjudged, data_dir, tmp_path, monkeypatch, capsys):
    _, _, first = unjudged
    results = tmp_path / "results"
    shutil.copytree(first, results)  # the saved answers are judged, not regenerated
    answers_before = (results / "tiny/mtbench/mt_bench/model_answer/tiny.jsonl").read_text()
    monkeypatch.setenv("JUDGE_KEY", KEY)
    with FakeOpenAI(responder=_scripted_judge(data_dir)) as fake:
        rc = main(["eval", "--model", _model_of(first), "--benchmarks", ",".join(BENCHES), "--limit", "2",
                   "--max-new-tokens", "16", "--data-dir", str(data_dir), "--run-id", "tiny", "--output", str(results),
                   "--judge-model", "judge-x", "--judge-base-url", fake.base_url, "--judge-api-key-env", "JUDGE_KEY"])
        # MT-Bench 2 questions x 2 turns, Arena-Hard 2 x 2 games, AlpacaEval 2
        assert rc == 0 and fake.n_requests == 10
        assert all({k.lower(): v for k, v in h.items()}["authorization"] == f"Bearer {KEY}" for h, _ in fake.requests)
    stdout = capsys.readouterr().out
    assert "will not be judged" not in stdout
    assert (results / "tiny/mtbench/mt_bench/model_answer/tiny.jsonl").read_text() == answers_before

    def score(bench, task, metric):
        rec = read_result(results / "tiny" / f"{bench}.json")
        return next(s for s in rec["scores"] if (s["task"], s["metric"]) == (task, metric)), rec

    t1, mt = score("mtbench", "mt_bench", "score_turn1")
    assert t1["value"] == pytest.approx((8 + 6) / 2) and t1["n"] == 2
    assert score("mtbench", "mt_bench", "score_turn2")[0]["value"] == pytest.approx((4 + 3) / 2)
    assert score("mtbench", "mt_bench", "score_avg")[0]["value"] == pytest.approx((8 + 6 + 4 + 3) / 4)
    assert mt["judge"]["model"] == "judge-x" and mt["judge"]["api_key_env"] == "JUDGE_KEY"
    assert mt["raw_output"] == "mtbench/mt_bench/model_judgment/judge-x_single.jsonl"
    assert (results / "tiny" / mt["raw_output"]).exists()
    # Arena-Hard: q0 -> 2 games x 3 (strong) model wins, q1 -> 2 x 1 baseline wins; two players: BT = win rate
    arena, rec = score("arenahard", "arena_hard_v0.1", "score")
    assert arena["value"] == pytest.approx(100 * 6 / 8, abs=1e-3) and rec["judge"]["n_battles"] == 8
    assert arena["ci95"][0] <= arena["value"] <= arena["ci95"][1]
    # AlpacaEval: model preference 0.75 and 0.1 -> WR 42.5; no df_gamed.csv offline -> LC null with the reason
    wr, rec = score("alpacaeval", "alpaca_eval_2", "win_rate")
    assert wr["value"] == pytest.approx((75 + 10) / 2) and wr["n"] == 2
    lc, _ = score("alpacaeval", "alpaca_eval_2", "length_controlled_win_rate")
    assert lc["value"] is None and lc["unavailable"]
    assert f"tiny/alpacaeval: alpaca_eval_2 length_controlled_win_rate = null ({lc['unavailable']})" in stdout

    lb = tmp_path / "lb"
    assert main(["leaderboard", "--results", str(results), "--output", str(lb)]) == 0
    csv = (lb / "judged.csv").read_text().splitlines()
    assert csv[0] == ("Model,Method,Source,MT-Bench T1,MT-Bench T2,MT-Bench Avg,AlpacaEval 2 WR,AlpacaEval 2 LC WR,"
                      "Arena-Hard")
    lo, hi = arena["ci95"]
    # ± is the standard error of the mean (sd with ddof 1 / sqrt n): turn 1 [8, 6] -> 1.00, turn 2 [4, 3] -> 0.50,
    # all four turns -> 1.11, AlpacaEval preferences [75, 10] -> 32.50
    assert csv[1] == ("tiny,base,measured,7.00 ± 1.00,3.50 ± 0.50,5.25 ± 1.11,42.50 ± 32.50,–,"
                      f"75.00 (-{75 - lo:.2f}/+{hi - 75:.2f})")
    md = (lb / "judged.md").read_text()
    assert f"- AlpacaEval 2 LC WR –: {lc['unavailable']} (runs: tiny)" in md
    assert "- smoke run (alpacaeval --limit 2): not comparable to published numbers (runs: tiny)" in md
    before = {p.relative_to(lb): p.read_bytes() for p in _files(lb)}
    assert main(["leaderboard", "--results", str(results), "--output", str(lb)]) == 0
    assert {p.relative_to(lb): p.read_bytes() for p in _files(lb)} == before  # deterministic

    for p in _files(results, lb):  # the key never reaches a file
        assert KEY.encode() not in p.read_bytes(), p
    assert KEY not in stdout


def _model_of(results):
    return read_result(results / "tiny" / "mtbench.json")["run"]["model"]


def test_judge_without_key_names_the_variable(unjudged, data_dir, tmp_path, monkeypatch, capsys):
    _, _, first = unjudged
    results = tmp_path / "results"
    shutil.copytree(first, results)
    monkeypatch.delenv("NO_SUCH_JUDGE_KEY", raising=False)
    rc = main(["eval", "--model", _model_of(first), "--benchmarks", "mtbench", "--limit", "2", "--max-new-tokens", "16",
               "--data-dir", str(data_dir), "--run-id", "tiny", "--output", str(results),
               "--judge-model", "judge-x", "--judge-base-url", "http://127.0.0.1:9/v1",
               "--judge-api-key-env", "NO_SUCH_JUDGE_KEY"])
    assert rc == 0
    reason = "not judged: missing an API key in the environment variable NO_SUCH_JUDGE_KEY"
    assert read_result(results / "tiny/mtbench.json")["scores"][0]["unavailable"] == reason
    assert reason in capsys.readouterr().out


def test_leaderboard_notes_reason_for_unjudged_run(unjudged, tmp_path):
    _, _, results = unjudged
    assert main(["leaderboard", "--results", str(results), "--output", str(tmp_path / "lb")]) == 0
    csv = (tmp_path / "lb" / "judged.csv").read_text().splitlines()
    assert csv[1] == "tiny,base,measured,–,–,–,–,–,–"
    md = (tmp_path / "lb" / "judged.md").read_text()
    # one note per condition, naming the runs it applies to
    assert ("- MT-Bench T1, MT-Bench T2, MT-Bench Avg, AlpacaEval 2 WR, AlpacaEval 2 LC WR, Arena-Hard –: "
            "not judged: missing a judge model (--judge-model) (runs: tiny)") in md


def test_openai_generation_endpoint_and_judge(data_dir, tmp_path, monkeypatch, capsys):
    """--backend openai --gen-base-url: answers come from an OpenAI-compatible server (here a second loopback
    fake), with its own key; neither key reaches a file."""
    gen_key = "sk-generation-9a8b7c6d"
    monkeypatch.setenv("GEN_KEY", gen_key)
    monkeypatch.setenv("JUDGE_KEY", KEY)
    with FakeOpenAI(responder=lambda r: f"answer {len(r['messages'])}") as gen, \
            FakeOpenAI(responder=lambda r: "Rating: [[3]]" if "### User:" in r["messages"][-1]["content"]
                       else "Rating: [[5]]") as judge:
        rc = main(["eval", "--model", "served-model", "--run-id", "served", "--benchmarks", "mtbench", "--limit", "2",
                   "--backend", "openai", "--gen-base-url", gen.base_url, "--gen-api-key-env", "GEN_KEY",
                   "--max-new-tokens", "32", "--data-dir", str(data_dir), "--output", str(tmp_path / "results"),
                   "--judge-model", "j", "--judge-base-url", judge.base_url, "--judge-api-key-env", "JUDGE_KEY"])
        assert rc == 0 and gen.n_requests == 4 and judge.n_requests == 4
        gen_url = gen.base_url
        sent = gen.requests[0][1]
        assert sent["model"] == "served-model" and sent["max_tokens"] == 32  # the cap, below MT-Bench's 1024
        assert {k.lower(): v for k, v in gen.requests[0][0].items()}["authorization"] == f"Bearer {gen_key}"
    rec = read_result(tmp_path / "results/served/mtbench.json")
    s = {x["metric"]: x["value"] for x in rec["scores"] if x["task"] == "mt_bench"}
    assert s == {"score_turn1": 5.0, "score_turn2": 3.0, "score_avg": 4.0}
    assert rec["backend"] == {"name": "openai", "model": "served-model", "base_url": gen_url, "api_key_env": "GEN_KEY"}
    answers = [json.loads(line) for line in open(tmp_path / "results/served/mtbench/mt_bench/model_answer/served.jsonl")]
    assert answers[0]["choices"][0]["turns"] == ["answer 1", "answer 3"]  # turn 2 saw the first answer
    for p in _files(tmp_path / "results"):
        assert gen_key.encode() not in p.read_bytes() and KEY.encode() not in p.read_bytes(), p
    out = capsys.readouterr()
    assert gen_key not in out.out + out.err and KEY not in out.out + out.err


def test_arena_version_reaches_the_benchmark_and_v2_needs_baseline_answers(tiny_model, data_dir, tmp_path, monkeypatch, capsys):
    """--arena-version selects the question set; judging v2.0 in a data dir without its baseline answers
    stops with an error naming the missing file, and no result file is written."""
    from tests.conftest import data_dir_variant

    bare = data_dir_variant(data_dir, tmp_path / "data",
                            drop=("arena_hard/arena-hard-v2.0/model_answer/o3-mini-2025-01-31.jsonl",))
    args = ["eval", "--model", str(tiny_model), "--benchmarks", "arenahard", "--arena-version", "v2.0", "--limit", "1",
            "--max-new-tokens", "8", "--data-dir", str(bare)]
    assert main(args + ["--run-id", "v2", "--output", str(tmp_path / "a")]) == 0  # no judge: answers only
    rec = read_result(tmp_path / "a" / "v2" / "arenahard.json")
    assert {s["task"] for s in rec["scores"]} == {"arena_hard_v2.0"}
    assert (tmp_path / "a/v2/arenahard/arena_hard/arena-hard-v2.0/model_answer/v2.jsonl").exists()
    monkeypatch.setenv("JUDGE_KEY", KEY)
    capsys.readouterr()
    with FakeOpenAI(responder=lambda r: "[[A=B]]") as fake:
        rc = main(args + ["--run-id", "v2j", "--output", str(tmp_path / "b"), "--judge-model", "j",
                          "--judge-base-url", fake.base_url, "--judge-api-key-env", "JUDGE_KEY"])
    said = "".join(capsys.readouterr())
    assert rc != 0 and "arena-hard-v2.0" in said and "o3-mini" in said, said[-2000:]
    assert not (tmp_path / "b" / "v2j" / "arenahard.json").exists()


def test_arena_v2_judges_offline_against_the_shared_o3_mini_baseline(tiny_model, data_dir, tmp_path, monkeypatch):
    """With the o3-mini baseline answers in the data dir, v2.0 needs no --arena-baseline: every game a tie
    gives a score of exactly 50, and the baseline answer the judge saw is o3-mini's real answer."""
    baseline_file = data_dir / "arena_hard/arena-hard-v2.0/model_answer/o3-mini-2025-01-31.jsonl"
    if not baseline_file.exists():
        pytest.fail(f"{baseline_file} missing from the shared data")
    first_uid = json.loads((data_dir / "arena_hard/arena-hard-v2.0/question.jsonl").open().readline())["uid"]
    first = next(a for a in map(json.loads, baseline_file.open()) if a["uid"] == first_uid)
    seen = []

    def responder(request):
        seen.append(json.dumps(request))
        return "[[A=B]]"

    monkeypatch.setenv("JUDGE_KEY", KEY)
    with FakeOpenAI(responder=responder) as fake:
        rc = main(["eval", "--model", str(tiny_model), "--benchmarks", "arenahard", "--arena-version", "v2.0",
                   "--limit", "1", "--max-new-tokens", "8", "--data-dir", str(data_dir), "--run-id", "v2ok",
                   "--output", str(tmp_path / "c"), "--judge-model", "j", "--judge-base-url", fake.base_url,
                   "--judge-api-key-env", "JUDGE_KEY"])
    assert rc == 0
    rec = read_result(tmp_path / "c" / "v2ok" / "arenahard.json")
    score = next(s for s in rec["scores"] if s["metric"] == "score")
    assert score["value"] == pytest.approx(50.0, abs=1e-6)
    assert rec["conventions"]["baseline"] == "o3-mini-2025-01-31"
    baseline_text = first["messages"][-1]["content"]["answer"]  # v2.0 files: content is {"answer": ...}
    assert any(json.dumps(baseline_text[:200])[1:-1] in req for req in seen)


def test_mtbench_pairwise_through_eval(tiny_model, data_dir, tmp_path, monkeypatch):
    """--mtbench-mode pairwise grades against --mtbench-baseline in both orders. A judge that always
    says [[A]] contradicts itself once the order is swapped, so every game is a tie (FastChat's rule)."""
    common = ["eval", "--model", str(tiny_model), "--benchmarks", "mtbench", "--limit", "2", "--max-new-tokens", "8",
              "--data-dir", str(data_dir)]
    assert main(common + ["--run-id", "baseline", "--output", str(tmp_path / "base")]) == 0
    baseline = tmp_path / "base/baseline/mtbench/mt_bench/model_answer/baseline.jsonl"
    monkeypatch.setenv("JUDGE_KEY", KEY)
    with FakeOpenAI(responder=lambda r: "[[A]]") as fake:
        rc = main(common + ["--run-id", "cand", "--output", str(tmp_path / "pair"), "--mtbench-mode", "pairwise",
                            "--mtbench-baseline", str(baseline), "--judge-model", "j",
                            "--judge-base-url", fake.base_url, "--judge-api-key-env", "JUDGE_KEY"])
        n_requests = fake.n_requests
    assert rc == 0
    rec = read_result(tmp_path / "pair/cand/mtbench.json")
    got = {s["metric"]: s["value"] for s in rec["scores"] if s["task"] == "mt_bench_pairwise"}
    assert got["win_rate"] == 0 and got["loss_rate"] == 0 and got["win_rate_adjusted"] == 0.5
    # 2 questions x 2 turns x 2 orders; the tiny model's greedy answers equal the baseline's, so the
    # swapped game is the very same request and comes from the cache
    assert rec["judge"]["calls"] + rec["judge"]["cache_hits"] == 2 * 2 * 2
    assert n_requests == rec["judge"]["calls"]
