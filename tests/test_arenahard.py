"""Arena-Hard: Bradley-Terry + bootstrap on synthetic battles with known strengths, verdict parsing with the
upstream regexes read from the config, and a loopback end-to-end run with hand-computed battles."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.judge import JudgeConfig
from harness.judged import arenahard as ah
from harness.judged import arena_rules, arena_score, arena_style, bt, run_judged_benchmark
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


V01 = r"\[\[([AB<>=]+)\]\]"


@pytest.mark.parametrize("text,verdict,why,again", [
    ("I cannot decide.", None, "no verdict label", True),
    ("Reasoning... My final verdict is: [[A>B]]", "A>B", None, False),
    ("At first [[B>>A]]; on reflection still [[B>>A]]", "B>>A", None, False),
    ("First [[A>B]], then I change my mind: [[B>>A]]", None, "conflicting verdicts ['A>B', 'B>>A']", False),
    ("lower case [[b>a]] is no match in 2024", None, "no verdict label", True),
])
def test_v01_parser_is_the_2024_rule(data_dir, text, verdict, why, again):
    jc = ah.load_config("v0.1", data_dir)
    assert jc["patterns"] == [V01] and jc["rule"] == "2024" and jc["attempts"] == 2
    assert arena_rules.parse(text, jc["patterns"], "2024") == (verdict, why, again)


@pytest.mark.parametrize("text,verdict", [
    ("I cannot decide.", None),
    ("Reasoning... My final verdict is: [[A>B]]", "A>B"),
    ("At first [[B>>A]]; on reflection still [[B>>A]]", "B>>A"),
    ("First [[A>B]], then I change my mind: [[B>>A]]", "B>>A"),  # the last match wins
    ("single bracket only [a=b]", "A=B"),  # upper-cased, second pattern
])
def test_v2_parser_is_the_current_rule(data_dir, text, verdict):
    jc = ah.load_config("v2.0", data_dir)
    assert jc["patterns"][0] == V01 and jc["rule"] == "current" and jc["attempts"] == 1
    assert ah.parse_verdict(text, jc["patterns"], "current") == verdict


def test_counting_per_version():
    """2024: each game on its own, mirrored labels not counted; current: mirrored labels count and a question
    with one game lacking a verdict is dropped whole."""
    games = [{"score": "B<A", "why": None}, {"score": "A>>B", "why": None}]  # baseline wins g1; model wins g2 strongly
    assert arena_rules.question_scores({"games": games}, "2024") == (
        [(1, 1.0)] * 3, ["game 1: label 'B<A' not counted by the 2024 scorer"])
    assert arena_rules.question_scores({"games": games}, "current") == ([(0, 0.0), (1, 1.0), (1, 1.0), (1, 1.0)], [])
    one = [{"score": None, "why": "no verdict label"}, {"score": "A>B", "why": None}]
    assert arena_rules.question_scores({"games": one}, "2024") == ([(1, 1.0)], ["game 1: no verdict label"])
    assert arena_rules.question_scores({"games": one}, "current") == (
        [], ["game 1: no verdict label", "other game dropped with it"])


def _records(rng, model, n=40):
    labels = ["A>>B", "A>B", "A=B", "B>A", "B>>A", "no label here"]
    return [{"uid": f"q{i:03d}", "model": model, "games": [{"judgment": f"[[{rng.choice(labels)}]]"},
                                                            {"judgment": f"[[{rng.choice(labels)}]]"}]}
            for i in range(n)]


@pytest.mark.parametrize("version", ["v0.1", "v2.0"])
def test_scores_do_not_depend_on_judgment_order(version):
    """The same judgments in another order (as concurrent judging finishes them) give byte-identical scores."""
    import json

    rng = np.random.default_rng(3)
    recs = {m: _records(rng, m) for m in ("m1", "m2")}
    rule = ah.VERSIONS[version]["rule"]

    def scored(order_seed):
        r = np.random.default_rng(order_seed)
        rows = {m: arena_score.counted([recs[m][i] for i in r.permutation(len(recs[m]))], [V01], rule)[0] for m in recs}
        base = {"name": "base"}
        return json.dumps(arena_score.score_category(ah.VERSIONS[version]["rule"], rows, None, base, None, 50), sort_keys=True)

    first = scored(0)
    assert scored(1) == first and scored(2) == first


def test_style_control_recovers_planted_strength_under_length_bias():
    """Three models with planted strengths against the baseline; the judge also favours longer answers, and the
    strongest model writes the shortest ones. With length control the recovered strength differences match the
    planted ones; without it they are pulled toward the length ranking."""
    rng = np.random.default_rng(7)
    truth = {"m1": 0.0, "m2": 0.8, "m3": 1.6}  # log-odds against the baseline
    mean_len = {"m1": 900, "m2": 500, "m3": 250}
    planted_gamma = 1.2
    rows, meta, base_meta = {}, {}, {}
    lens_base = {}
    n = 2000
    for i in range(n):
        lens_base[f"q{i}"] = int(rng.integers(300, 700))
        base_meta[f"q{i}"] = {"token_len": lens_base[f"q{i}"], "header_count": 0, "list_count": 0, "bold_count": 0}
    feats = {}
    for m in truth:
        meta[m] = {}
        for i in range(n):
            L = max(20, int(rng.normal(mean_len[m], 250)))
            meta[m][f"q{i}"] = {"token_len": L, "header_count": 0, "list_count": 0, "bold_count": 0}
            feats[(m, i)] = (L - lens_base[f"q{i}"]) / (L + lens_base[f"q{i}"])
    allf = np.array(list(feats.values()))
    mu, sd = allf.mean(), allf.std(ddof=1)
    for m in truth:
        rows[m] = []
        for i in range(n):
            z = truth[m] + planted_gamma * (feats[(m, i)] - mu) / sd
            rows[m].append((f"q{i}", 0, float(rng.random() < 1 / (1 + np.exp(-z)))))
    logit = lambda p: math.log(p / (100 - p))  # noqa: E731
    sc = arena_score.score_style(rows, meta, base_meta, "length", rounds=20)
    plain = arena_score.score_mean(rows, rounds=20)
    for a, b in (("m1", "m2"), ("m2", "m3"), ("m1", "m3")):
        planted = truth[b] - truth[a]
        assert logit(sc[b]["score"]) - logit(sc[a]["score"]) == pytest.approx(planted, abs=0.3)
        assert abs(logit(plain[b]["score"]) - logit(plain[a]["score"]) - planted) > 0.4
    assert sc["m1"]["style_coefficients"]["length"] == pytest.approx(planted_gamma, abs=0.25)
    assert sc["m3"]["ci95"][0] < sc["m3"]["score"] < sc["m3"]["ci95"][1]


def test_markdown_counts_follow_upstream():
    text = "# Title\n## Sub\n1. one\n2. two\n- a\n  * b\n**bold** and __also__\n```\n# not a header\n- nor a list\n```\n"
    c = arena_style.markdown_counts(text)
    assert sum(c["header_count"].values()) == 2 and c["header_count"]["h2"] == 1
    assert c["list_count"] == {"ordered": 2, "unordered": 2} and c["bold_count"] == {"**": 1, "__": 1}


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
        assert rec["judge"]["uncounted_games"] == 2 and rec["judge"]["n_battles"] == 18
        assert rec["judge"]["uncounted_reasons"] == {"game 1: no verdict label": 1, "game 2: no verdict label": 1}
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


@pytest.mark.parametrize("model", ["claude-3-opus-20240229", "gemma-2b-it", "gpt-4-0314", "gpt-4-turbo-2024-04-09",
                                   "llama-3-70b-instruct", "llama-3-8b-instruct", "mixtral-8x7b-instruct-v0.1",
                                   "tulu-2-dpo-70b"])
def test_avg_tokens_equals_published_column(data_dir, model):
    """The older-layout answer files carry token lengths; their mean is the published leaderboard's avg_tokens."""
    import csv

    lb = {r["model"]: r for r in csv.DictReader(
        (data_dir / "arena_hard/leaderboard/arena_hard_leaderboard_20240731.csv").open())}
    answers = ah.load_answers(data_dir / f"arena_hard/arena-hard-v0.1/model_answer_hf_format/{model}.jsonl")
    value, n = ah.avg_tokens(answers)
    assert n == 500 and int(value) == int(float(lb[model]["avg_tokens"]))


def test_v2_categories_scored_separately_each_against_its_baseline(data_dir, tmp_path, monkeypatch):
    """Hard prompts against o3-mini (shared data), creative writing against gemini-2.0-flash-001 with its own
    system prompt. Offline without gemini's answers and upstream's judge_utils.py, creative writing is
    unavailable with the reason and costs no judge call; supplied, it is scored on its own."""
    import json

    from tests.conftest import data_dir_variant

    monkeypatch.setenv("OPENAI_API_KEY", "sk-v2-cats-123456")
    d = data_dir_variant(data_dir, tmp_path / "data", drop=("arena_hard/arena-hard-v2.0/question.jsonl",))
    src = [json.loads(line) for line in (data_dir / "arena_hard/arena-hard-v2.0/question.jsonl").open()]
    qs = [q for q in src if q["category"] == "hard_prompt"][:2] + [q for q in src if q["category"] == "creative_writing"][:2]
    (d / "arena_hard/arena-hard-v2.0/question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in qs))

    def answers(path, model, tag, sel):
        path.write_text("".join(json.dumps({"uid": q["uid"], "model": model, "messages": [
            {"role": "user", "content": q["prompt"]}, {"role": "assistant", "content": {"answer": f"{tag} {q['uid']}"}}],
            "metadata": {"token_len": 10}}) + "\n" for q in sel))
        return path

    mine = answers(tmp_path / "mine.jsonl", "mine", "MINE", qs)
    gemini = answers(tmp_path / "gemini.jsonl", "gemini-2.0-flash-001", "GEMINI", qs[2:])
    systems = []

    def judge(request):
        user, system = request["messages"][1]["content"], request["messages"][0]["content"]
        systems.append(system)
        if "GEMINI" not in user:
            return "[[A=B]]"
        a = user.split("<|The Start of Assistant A's Answer|>")[1]
        return "[[A>B]]" if a.lstrip().startswith("MINE") else "[[B>A]]"  # mine wins every creative game

    with FakeOpenAI(responder=judge) as fake:
        cfg = JudgeConfig(model="judge", base_url=fake.base_url, progress=False)
        rec = vars(ah.run_many(None, cfg, tmp_path / "o1", answers_paths=[mine], data_dir=d, version="v2.0",
                               bootstrap_rounds=20)[0])
        assert fake.n_requests == 4  # hard prompts only
        s = {x["task"]: x for x in rec["scores"] if x["metric"] == "score"}
        assert s["arena_hard_v2.0"]["value"] == pytest.approx(50.0)
        cw = s["arena_hard_v2.0/creative_writing"]
        assert cw["value"] is None and "gemini-2.0-flash-001" in cw["unavailable"]
        assert rec["conventions"]["baselines"]["hard_prompt"]["baseline"] == "o3-mini-2025-01-31"
        assert rec["conventions"]["baselines"]["hard_prompt"]["system_prompt_from"].endswith("judge_config_v0.1_2024.yaml")

        (d / "arena_hard/judge_utils.py").write_text(
            'HARD = "HARD SYSTEM PROMPT"\nJUDGE_SETTINGS = {"hard_prompt": {"baseline": "o3-mini-2025-01-31", '
            '"system_prompt": HARD}, "creative_writing": {"baseline": "gemini-2.0-flash-001", '
            '"system_prompt": "CREATIVE SYSTEM PROMPT"}}\n')
        systems.clear()
        rec = vars(ah.run_many(None, cfg, tmp_path / "o2", answers_paths=[mine], data_dir=d, version="v2.0",
                               baseline_answers=[gemini], bootstrap_rounds=20)[0])
        s = {x["task"]: x for x in rec["scores"] if x["metric"] == "score"}
        assert s["arena_hard_v2.0"]["value"] == pytest.approx(50.0)
        assert s["arena_hard_v2.0/creative_writing"]["value"] == pytest.approx(100.0)
        assert sorted(set(systems)) == ["CREATIVE SYSTEM PROMPT", "HARD SYSTEM PROMPT"] and len(systems) == 8
        b = rec["conventions"]["baselines"]
        assert b["creative_writing"]["baseline"] == "gemini-2.0-flash-001" and b["creative_writing"]["answers"] == str(gemini)


def test_rescoring_the_same_judgments_is_byte_identical_whatever_their_order(data_dir, tmp_path, monkeypatch):
    """Rerun on the same judgments (all from the cache/store) and on the judgment file shuffled: same scores,
    conventions and judge counts, byte for byte."""
    import json
    import random

    monkeypatch.setenv("OPENAI_API_KEY", "sk-rerun-123456")
    hf = data_dir / "arena_hard/arena-hard-v0.1/model_answer_hf_format"
    files = [hf / "llama-3-8b-instruct.jsonl", hf / "gemma-2b-it.jsonl"]
    labels = iter(["[[A>>B]]", "[[A>B]]", "[[A=B]]", "[[B>A]]", "[[B>>A]]", "[[A>B]] no, [[B>A]]", "none"] * 100)
    with FakeOpenAI(responder=lambda r: next(labels)) as fake:
        cfg = JudgeConfig(model="judge", base_url=fake.base_url, progress=False)

        def stable():
            recs = [vars(o) for o in ah.run_many(None, cfg, tmp_path / "o", 10, answers_paths=files, data_dir=data_dir,
                                                  bootstrap_rounds=30)]
            keep = ("scores", "conventions")
            return json.dumps([{k: r[k] for k in keep} | {"uncounted": r["judge"]["uncounted"]} for r in recs],
                              sort_keys=True)

        first = stable()
        n = fake.n_requests
        assert stable() == first and fake.n_requests == n
        for f in (tmp_path / "o/arena_hard/arena-hard-v0.1/model_judgment/judge").glob("*.jsonl"):
            lines = f.read_text().splitlines()
            random.Random(5).shuffle(lines)
            f.write_text("\n".join(lines) + "\n")
        assert stable() == first and fake.n_requests == n
    assert '"uncounted_games"' not in first and "conflicting verdicts" in first
