"""Arena-Hard (v0.1, v2.0) following arena-hard-auto's protocol.

Questions and baseline answers come from an arena-hard-auto data directory; the judge settings (prompt
template, verdict regexes, temperature, max_tokens) from its YAML config, read at run time. Each question is
judged twice against the baseline with the order swapped; ``[[A>>B]]``-style verdicts, a strong verdict
counting as 3 battles. Score: Bradley-Terry fit with the baseline anchored, bootstrapped, reported as the
predicted win rate against the baseline with a 95 % interval. No style control.

The current configs carry no system prompt (upstream keeps it in code); when a config has none, the
system prompt of the 2024 v0.1 config (``judge_config_v0.1_2024.yaml``) in the same data dir is used and the
record says so.
"""
from __future__ import annotations

import re
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from harness.generation import SamplingSettings
from harness.judge import JsonlStore, JudgeCache, JudgeClient, JudgeConfig
from harness.judged import bt, common
from harness.judged.alpacaeval import fill
from harness.judged.data import DataError, find, read_jsonl

VERSIONS = {
    "v0.1": {"dir": "arena-hard-v0.1", "config": "arena-hard-v0.1.yaml", "baseline": "gpt-4-0314"},
    "v2.0": {"dir": "arena-hard-v2.0", "config": "arena-hard-v2.0.yaml", "baseline": "o3-mini-2025-01-31"},
}
SYSTEM_PROMPT_SOURCE = "arena_hard/judge_config_v0.1_2024.yaml"
MAX_NEW_TOKENS = 4096
STRONG_WEIGHT = 3
JUDGE_ATTEMPTS = 2  # number_of_judgment_attempts of the 2024 judge config; current configs do not set it
# verdict (A: first shown) -> (winner, weight); the mirrored spellings mean the same thing
VERDICTS = {"A>>B": ("A", STRONG_WEIGHT), "A>B": ("A", 1), "A=B": ("tie", 1), "B>A": ("B", 1),
            "B>>A": ("B", STRONG_WEIGHT), "B<<A": ("A", STRONG_WEIGHT), "B<A": ("A", 1), "B=A": ("tie", 1),
            "A<B": ("B", 1), "A<<B": ("B", STRONG_WEIGHT)}
CONTINUE = "continue your judgment and finish by outputting a final verdict label"


# ---------- data ----------
def load_config(version: str, data_dir=None) -> dict:
    import yaml

    v = VERSIONS[version]
    path = find(f"arena_hard/{v['config']}", data_dir)
    cfg = yaml.safe_load(path.read_text()) or {}
    patterns = cfg.get("regex_patterns") or ([cfg["regex_pattern"]] if cfg.get("regex_pattern") else None)
    if not patterns or "prompt_template" not in cfg:
        raise DataError(f"{path}: needs fields 'regex_patterns' and 'prompt_template'")
    template = cfg["prompt_template"]
    template = template[0] if isinstance(template, list) else template
    system, source = cfg.get("system_prompt"), str(path)
    if not system:
        src = find(SYSTEM_PROMPT_SOURCE, data_dir)
        system = (yaml.safe_load(src.read_text()) or {}).get("system_prompt")
        if not system:
            raise DataError(f"{src}: missing field 'system_prompt'")
        source = str(src)
    return {"template": template, "system": system, "system_source": source, "patterns": patterns,
            "temperature": float(cfg.get("temperature", 0.0)), "max_tokens": int(cfg.get("max_tokens", 4096)),
            "attempts": int(cfg.get("number_of_judgment_attempts", JUDGE_ATTEMPTS)), "config": str(path),
            "upstream_judge": cfg.get("judge_model")}


def load_questions(version: str, data_dir=None, limit=None) -> list[dict]:
    path = find(f"arena_hard/{VERSIONS[version]['dir']}/question.jsonl", data_dir)
    out = []
    for i, q in enumerate(read_jsonl(path), 1):
        uid = q.get("uid") or q.get("question_id")
        prompt = q.get("prompt") or (q.get("turns") or [{}])[0].get("content")
        if uid is None or prompt is None:
            raise DataError(f"{path}: line {i}: needs 'uid' and 'prompt' (or question_id and turns)")
        out.append({"uid": uid, "prompt": prompt, "category": q.get("category")})
    return out[:limit] if limit else out


def answer_text(rec: dict) -> str:
    """An arena-hard answer record, new (messages) or old (choices/turns) layout."""
    if "messages" in rec:
        content = rec["messages"][-1]["content"]
        return content["answer"] if isinstance(content, dict) else content
    return rec["choices"][0]["turns"][0]["content"]


def load_answers(path: Path) -> dict[str, dict]:
    rows = read_jsonl(path)
    return {r.get("uid") or r.get("question_id"): r for r in rows}


# ---------- verdicts and battles ----------
def parse_verdict(judgment: str, patterns: list[str]) -> str | None:
    """First pattern with a match wins; the last match of it is the verdict (arena-hard-auto's rule)."""
    for p in patterns:
        matches = [m for m in re.findall(p, judgment.upper()) if m != ""]
        if matches:
            return matches[-1].strip("\n")
    return None


def battles_from(judgments: list[dict], model: str, baseline: str) -> tuple[list[tuple], int]:
    """Game 1 shows (baseline, model), game 2 (model, baseline). Returns battles and the unparseable count."""
    out, bad = [], 0
    for r in judgments:
        for g, (a, b) in zip(r["games"], ((baseline, model), (model, baseline))):
            v = VERDICTS.get(g["score"] or "")
            if v is None:
                bad += 1
                continue
            winner = {"A": "model_a", "B": "model_b", "tie": "tie"}[v[0]]
            out.extend([(a, b, winner)] * v[1])
    return out, bad


# ---------- generation and judging ----------
def generate_answers(generator, questions, path: Path, model: str, chunk: int = 16) -> dict[str, dict]:
    store = JsonlStore(path)
    done = {r["uid"] for r in store.records}
    todo = [q for q in questions if q["uid"] not in done]

    def on_chunk(start, gens):
        for q, g in zip(todo[start:start + len(gens)], gens):
            store.append({"uid": q["uid"], "ans_id": uuid.uuid4().hex[:22], "model": model,
                          "messages": [{"role": "user", "content": q["prompt"]},
                                       {"role": "assistant", "content": {"answer": g.text}}],
                          "tstamp": time.time(), "metadata": {"token_len": g.n_tokens}})

    common.generate_chunked(generator, [[{"role": "user", "content": q["prompt"]}] for q in todo],
                            SamplingSettings(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0), chunk, on_chunk,
                            "arena-hard answers")
    return {r["uid"]: r for r in store.records}


def judge(client: JudgeClient, jc: dict, questions, answers, base, path: Path, model: str, baseline: str) -> JsonlStore:
    store = JsonlStore(path)
    done = {r["uid"] for r in store.records if r["model"] == model}
    items = [q for q in questions if q["uid"] in answers and q["uid"] in base and q["uid"] not in done]

    async def game(cl, q, first, second):
        user = fill(jc["template"], QUESTION=q["prompt"], ANSWER_A=first, ANSWER_B=second,
                    question_1=q["prompt"], answer_1=first, answer_2=second)
        messages = [{"role": "system", "content": jc["system"]}, {"role": "user", "content": user}]
        judgment, verdict = "", None
        for attempt in range(jc["attempts"]):
            reply = await cl.complete({"messages": messages, "temperature": jc["temperature"],
                                       "max_tokens": jc["max_tokens"]})
            if reply.error:
                return None
            judgment += ("\n" if judgment else "") + reply.text
            verdict = parse_verdict(judgment, jc["patterns"])
            if verdict is not None:
                break
            messages = messages + [{"role": "assistant", "content": reply.text}, {"role": "user", "content": CONTINUE}]
        return {"score": verdict, "judgment": judgment, "user_prompt": user}

    async def judge_one(cl, q):
        mine, theirs = answer_text(answers[q["uid"]]), answer_text(base[q["uid"]])
        return [await game(cl, q, theirs, mine), await game(cl, q, mine, theirs)]

    def on_done(q, games):
        if None in games:
            return
        store.append({"uid": q["uid"], "category": q["category"], "judge": client.cfg.model, "model": model,
                      "baseline": baseline, "games": games, "tstamp": time.time()})

    client.map(items, judge_one, on_done, desc="arena-hard judging")
    store.sync()
    return store


def score(battles, model: str, baseline: str, rounds: int = 100, seed: int = 0) -> dict:
    ratings = bt.fit(battles, anchor=baseline)
    boots = [b[model] for b in bt.bootstrap(battles, baseline, rounds, seed)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"score": bt.win_rate(ratings[model], 1000.0), "ci95": [bt.win_rate(lo, 1000.0), bt.win_rate(hi, 1000.0)],
            "rating": ratings[model]}


def run(generator, judge_cfg: JudgeConfig | None, out_dir: Path, limit: int | None = None, *, run: dict | None = None,
        data_dir=None, version: str = "v0.1", answers_path: Path | None = None, baseline_answers: Path | None = None,
        bootstrap_rounds: int = 100) -> dict:
    if version not in VERSIONS:
        raise ValueError(f"unknown Arena-Hard version {version!r}; choose from {', '.join(VERSIONS)}")
    started = common.now_iso()
    bench = Path(out_dir) / "arena_hard" / VERSIONS[version]["dir"]
    questions = load_questions(version, data_dir, limit)
    if generator is not None:
        run = common.run_info(generator, run)
        model = run["run_id"]
        answers_path = bench / "model_answer" / f"{model}.jsonl"
        answers = generate_answers(generator, questions, answers_path, model)
    else:
        answers = load_answers(answers_path)
        model = next(iter(answers.values()))["model"]
        run = run or common.base_run(model)
    tokens = [a.get("metadata", {}).get("token_len") for a in answers.values() if a.get("metadata")]
    avg_tokens = float(np.mean(tokens)) if tokens else None
    baseline = VERSIONS[version]["baseline"]
    conventions = {"version": version, "baseline": baseline, "style_control": False, "strong_verdict_weight": STRONG_WEIGHT,
                   "bootstrap_rounds": bootstrap_rounds, "answers": str(answers_path), "n_questions": len(questions),
                   "max_new_tokens": MAX_NEW_TOKENS, "temperature": 0.0}
    tok_score = {"task": f"arena_hard_{version}", "metric": "avg_tokens", "value": avg_tokens, "n": len(tokens)}
    missing = common.judge_missing(judge_cfg)
    if missing:
        reason = "not judged: missing " + "; ".join(missing)
        print(f"arena-hard: answers written to {answers_path}; {reason}", file=sys.stderr)
        return common.make_record("arenahard", run, generator,
                                  [common.unavailable(f"arena_hard_{version}", "score", reason), tok_score],
                                  judge={"configured": False, "missing": missing}, conventions=conventions,
                                  started_at=started)
    jc = load_config(version, data_dir)
    base_rel = f"arena_hard/{VERSIONS[version]['dir']}/model_answer/{baseline}.jsonl"
    base = load_answers(Path(baseline_answers) if baseline_answers else find(base_rel, data_dir))
    conventions.update(judge_config=jc["config"], judge_attempts=jc["attempts"], system_prompt_from=jc["system_source"], regex_patterns=jc["patterns"])
    judge_cfg.cache_dir = judge_cfg.cache_dir or str(Path(out_dir) / "judge_cache")
    client = JudgeClient(judge_cfg, JudgeCache(judge_cfg.cache_dir))
    path = bench / "model_judgment" / common.safe_name(judge_cfg.model) / f"{model}.jsonl"
    store = judge(client, jc, questions, answers, base, path, model, baseline)
    uids = {q["uid"] for q in questions}
    rows = [r for r in store.records if r["model"] == model and r["uid"] in uids]
    battles, unparseable = battles_from(rows, model, baseline)
    task = f"arena_hard_{version}"
    if battles:
        s = score(battles, model, baseline, bootstrap_rounds)
        scores = [{"task": task, "metric": "score", "value": s["score"], "ci95": s["ci95"], "n": len(rows)}, tok_score]
        conventions["bt_rating"] = s["rating"]
    else:
        scores = [common.unavailable(task, "score", "no parseable verdicts"), tok_score]
    judge_info = {**judge_cfg.describe(), "configured": True, **client.stats.to_json(), "unparseable": unparseable,
                  "unjudged": len(questions) - len(rows), "expected": len(questions), "judgments": str(path), "upstream_judge": jc["upstream_judge"],
                  "n_battles": len(battles)}
    print(f"arena-hard: {client.stats.summary()}; {unparseable} unparseable verdicts", file=sys.stderr)
    return common.make_record("arenahard", run, generator, scores, judge=judge_info, conventions=conventions,
                              started_at=started, raw_output=str(path))
