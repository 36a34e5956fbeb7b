"""MT-Bench with FastChat's protocol: two-turn answers with per-category temperatures, then GPT-4-style
single-answer grading (single-v1 / single-math-v1 and their -multi-turn forms, reference answers for
math, reasoning and coding) or pairwise grading against a baseline (pair-v2 / pair-math-v1, both orders).

Files follow FastChat's layout under ``<out_dir>/mt_bench/``: ``model_answer/<model>.jsonl`` and
``model_judgment/<judge>_single.jsonl`` / ``<judge>_pair.jsonl``, so FastChat's show_result.py reads them.
Questions, judge prompts and reference answers are read at run time from the data directory.
"""
from __future__ import annotations

import ast
import re
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

from harness.evaluation import BenchmarkFlags
from harness.generation import SamplingSettings
from harness.judge import JsonlStore, JudgeCache, JudgeClient, JudgeConfig
from harness.judged import common
from harness.judged.data import DataError, find, read_jsonl

# FastChat's sampling temperature per category (llm_judge/common.py); unknown categories get 0.7
TEMPERATURE = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
               "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
NEED_REF = {"math", "reasoning", "coding"}
MAX_NEW_TOKENS = 1024
JUDGE_MAX_TOKENS = 2048
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_FALLBACK = re.compile(r"\[(\d+\.?\d*)\]")


# ---------- data ----------
def load_questions(data_dir=None, limit: int | None = None) -> list[dict]:
    qs = read_jsonl(find("mt_bench/question.jsonl", data_dir), ("question_id", "category", "turns"))
    return qs[:limit] if limit else qs


def load_prompts(data_dir=None) -> dict[str, dict]:
    rows = read_jsonl(find("mt_bench/judge_prompts.jsonl", data_dir), ("name", "system_prompt", "prompt_template"))
    return {r["name"]: r for r in rows}


def load_references(data_dir=None) -> dict[int, list[str]]:
    rows = read_jsonl(find("mt_bench/reference_answer/gpt-4.jsonl", data_dir), ("question_id", "choices"))
    return {r["question_id"]: r["choices"][0]["turns"] for r in rows}


def load_answers(path: Path) -> dict[int, dict]:
    """A FastChat model_answer file: question_id -> record (the last one wins, as in FastChat)."""
    return {r["question_id"]: r for r in read_jsonl(Path(path), ("question_id", "model_id", "choices"))}


# ---------- generation ----------
def generate_answers(generator, questions: list[dict], path: Path, model_id: str, chunk: int = 16,
                     temperature: float | None = None) -> dict[int, dict]:
    """Two turns per question; the second turn sees the first answer. Resumes from ``path``.
    ``temperature``: one value for every category instead of FastChat's per-category table."""
    from tqdm import tqdm

    store = JsonlStore(path)
    done = {r["question_id"] for r in store.records}
    todo = [q for q in questions if q["question_id"] not in done]
    by_temp = defaultdict(list)
    for q in todo:
        by_temp[temperature if temperature is not None else TEMPERATURE.get(q["category"], 0.7)].append(q)
    with tqdm(total=len(todo), desc="mt-bench answers", unit="question", file=sys.stderr) as bar:
        for temp, qs in sorted(by_temp.items()):
            sampling = SamplingSettings(max_new_tokens=MAX_NEW_TOKENS, temperature=temp)
            for start in range(0, len(qs), chunk):
                part = qs[start:start + chunk]
                convs = [[{"role": "user", "content": q["turns"][0]}] for q in part]
                first = generator.generate(convs, sampling)
                for conv, g in zip(convs, first):
                    conv.append({"role": "assistant", "content": g.text})
                second_idx = [i for i, q in enumerate(part) if len(q["turns"]) > 1]
                second_convs = [convs[i] + [{"role": "user", "content": part[i]["turns"][1]}] for i in second_idx]
                second = dict(zip(second_idx, generator.generate(second_convs, sampling))) if second_convs else {}
                for i, q in enumerate(part):
                    turns = [first[i].text] + ([second[i].text] if i in second else [])
                    n_tokens = [first[i].n_tokens] + ([second[i].n_tokens] if i in second else [])
                    store.append({"question_id": q["question_id"], "answer_id": uuid.uuid4().hex[:22],
                                  "model_id": model_id, "choices": [{"index": 0, "turns": turns}],
                                  "tstamp": time.time(), "n_tokens": n_tokens})
                bar.update(len(part))
    return {r["question_id"]: r for r in store.records}


# ---------- prompts and verdicts ----------
def _ref_kwargs(q: dict, refs: dict, turn: int) -> dict:
    if q["category"] not in NEED_REF:
        return {}
    if q["question_id"] not in refs:
        raise DataError(f"mt_bench/reference_answer/gpt-4.jsonl: no reference for question_id {q['question_id']}")
    ref = refs[q["question_id"]]
    return {"ref_answer_1": ref[0], **({"ref_answer_2": ref[1]} if turn == 2 else {})}


def _request(prompt: dict, user: str) -> dict:
    return {"messages": [{"role": "system", "content": prompt["system_prompt"]}, {"role": "user", "content": user}],
            "temperature": 0, "max_tokens": JUDGE_MAX_TOKENS}


def single_prompt(q: dict, answer_turns: list[str], prompts: dict, refs: dict, turn: int) -> tuple[str, str]:
    name = ("single-math-v1" if q["category"] in NEED_REF else "single-v1") + ("-multi-turn" if turn == 2 else "")
    kw = _ref_kwargs(q, refs, turn)
    tpl = prompts[name]["prompt_template"]
    if turn == 2:
        user = tpl.format(question_1=q["turns"][0], question_2=q["turns"][1],
                          answer_1=answer_turns[0], answer_2=answer_turns[1], **kw)
    else:
        user = tpl.format(question=q["turns"][0], answer=answer_turns[0], **kw)
    return name, user


def pair_prompt(q: dict, a: list[str], b: list[str], prompts: dict, refs: dict, turn: int) -> tuple[str, str]:
    name = ("pair-math-v1" if q["category"] in NEED_REF else "pair-v2") + ("-multi-turn" if turn == 2 else "")
    kw = _ref_kwargs(q, refs, turn)
    tpl = prompts[name]["prompt_template"]
    if turn == 2:
        user = tpl.format(question_1=q["turns"][0], question_2=q["turns"][1], answer_a_1=a[0], answer_a_2=a[1],
                          answer_b_1=b[0], answer_b_2=b[1], **kw)
    else:
        user = tpl.format(question=q["turns"][0], answer_a=a[0], answer_b=b[0], **kw)
    return name, user


def parse_rating(judgment: str) -> float:
    """FastChat's parse: ``[[x]]``, else ``[x]``; -1 when neither is there."""
    m = RATING.search(judgment) or RATING_FALLBACK.search(judgment)
    return float(ast.literal_eval(m.group(1))) if m else -1


def parse_pair(judgment: str) -> str:
    for label, out in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
        if label in judgment:
            return out
    return "error"


# ---------- judging ----------
def judge_single(client: JudgeClient, questions, answers, prompts, refs, path: Path, model_id: str) -> JsonlStore:
    store = JsonlStore(path)
    judge_model = client.cfg.model
    done = {(r["question_id"], r["model"], r["turn"]) for r in store.records}
    items = []
    for q in questions:
        a = answers.get(q["question_id"])
        if a is None:
            continue
        turns = a["choices"][0]["turns"]
        for turn in (1, 2) if len(q["turns"]) > 1 and len(turns) > 1 else (1,):
            if (q["question_id"], model_id, turn) not in done:
                name, user = single_prompt(q, turns, prompts, refs, turn)
                items.append((q["question_id"], turn, name, user))

    async def judge_one(cl, item):
        return await cl.complete(_request(prompts[item[2]], item[3]))

    def on_done(item, reply):
        if reply.error:  # not written: a rerun retries it
            return
        qid, turn, name, user = item
        store.append({"question_id": qid, "model": model_id, "judge": [judge_model, name], "user_prompt": user,
                      "judgment": reply.text, "score": parse_rating(reply.text), "turn": turn, "tstamp": time.time()})

    client.map(items, judge_one, on_done, desc="mt-bench judging")
    store.sync()
    return store


def judge_pair(client: JudgeClient, questions, answers, base_answers, prompts, refs, path: Path,
               model_id: str, baseline_id: str) -> JsonlStore:
    store = JsonlStore(path)
    done = {(r["question_id"], r["model_1"], r["model_2"], r["turn"]) for r in store.records}
    items = []
    for q in questions:
        a, b = answers.get(q["question_id"]), base_answers.get(q["question_id"])
        if a is None or b is None:
            continue
        ta, tb = a["choices"][0]["turns"], b["choices"][0]["turns"]
        for turn in (1, 2) if len(q["turns"]) > 1 and len(ta) > 1 and len(tb) > 1 else (1,):
            if (q["question_id"], model_id, baseline_id, turn) not in done:
                items.append((q, turn, ta, tb))

    async def judge_one(cl, item):
        q, turn, ta, tb = item
        name, g1 = pair_prompt(q, ta, tb, prompts, refs, turn)
        _, g2 = pair_prompt(q, tb, ta, prompts, refs, turn)
        r1 = await cl.complete(_request(prompts[name], g1))
        r2 = await cl.complete(_request(prompts[name], g2))
        return name, g1, r1, g2, r2

    def on_done(item, result):
        q, turn, _, _ = item
        name, g1, r1, g2, r2 = result
        if r1.error or r2.error:
            return
        w1 = {"A": model_id, "B": baseline_id}.get(parse_pair(r1.text), parse_pair(r1.text))
        w2 = {"A": baseline_id, "B": model_id}.get(parse_pair(r2.text), parse_pair(r2.text))
        store.append({"question_id": q["question_id"], "model_1": model_id, "model_2": baseline_id,
                      "g1_winner": w1, "g2_winner": w2, "judge": [client.cfg.model, name],
                      "g1_user_prompt": g1, "g1_judgment": r1.text, "g2_user_prompt": g2, "g2_judgment": r2.text,
                      "turn": turn, "tstamp": time.time()})

    client.map(items, judge_one, on_done, desc="mt-bench pairwise")
    store.sync()
    return store


# ---------- scores ----------
def summarize_single(judgments: list[dict], questions: list[dict], model_id: str) -> tuple[list[dict], dict, int]:
    """Scores per turn, overall and per category (FastChat drops score -1); also the unparseable count."""
    import numpy as np

    cat = {q["question_id"]: q["category"] for q in questions}
    rows = [r for r in judgments if r["model"] == model_id and r["question_id"] in cat]
    ok = [r for r in rows if r["score"] != -1]
    scores = []
    for metric, sel in (("score_turn1", [r for r in ok if r["turn"] == 1]),
                        ("score_turn2", [r for r in ok if r["turn"] == 2]), ("score_avg", ok)):
        v = [r["score"] for r in sel]
        scores.append({"task": "mt_bench", "metric": metric, "value": float(np.mean(v)) if v else None,
                       "stderr": common.sem(v), "n": len(v),
                       **({} if v else {"unavailable": "no parseable judgments"})})
    per_cat = {}
    for c in sorted(set(cat.values())):
        v = [r["score"] for r in ok if cat[r["question_id"]] == c]
        if v:
            per_cat[c] = float(np.mean(v))
            scores.append({"task": f"mt_bench/{c}", "metric": "score", "value": per_cat[c],
                           "stderr": common.sem(v), "n": len(v)})
    return scores, per_cat, len(rows) - len(ok)


def summarize_pair(judgments: list[dict], model_id: str, baseline_id: str) -> tuple[list[dict], int]:
    """FastChat's rule: a win needs both orders to agree; disagreement or [[C]] is a tie."""
    rows = [r for r in judgments if r["model_1"] == model_id and r["model_2"] == baseline_id]
    win = loss = tie = 0
    for r in rows:
        if r["g1_winner"] == "tie" or r["g1_winner"] != r["g2_winner"]:
            tie += 1
        elif r["g1_winner"] == model_id:
            win += 1
        else:
            loss += 1
    errors = sum((r["g1_winner"] == "error") + (r["g2_winner"] == "error") for r in rows)
    n = len(rows)
    if not n:
        return [common.unavailable("mt_bench_pairwise", "win_rate", "no pairwise judgments")], errors
    return [{"task": "mt_bench_pairwise", "metric": "win_rate", "value": win / n, "n": n},
            {"task": "mt_bench_pairwise", "metric": "loss_rate", "value": loss / n, "n": n},
            {"task": "mt_bench_pairwise", "metric": "win_rate_adjusted", "value": (win + 0.5 * tie) / n, "n": n}], errors


def radar_png(per_category: dict[str, float], path: Path, label: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cats = list(per_category)
    angles = np.linspace(0, 2 * np.pi, len(cats), endpoint=False).tolist()
    vals = [per_category[c] for c in cats]
    fig, ax = plt.subplots(figsize=(5, 5), subplot_kw={"polar": True})
    ax.plot(angles + angles[:1], vals + vals[:1], marker="o", label=label)
    ax.fill(angles + angles[:1], vals + vals[:1], alpha=0.2)
    ax.set_xticks(angles)
    ax.set_xticklabels(cats)
    ax.set_ylim(0, 10)
    ax.set_title("MT-Bench score per category")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------- CLI flags (`harness eval` and `harness judge`) ----------
def _add_flags(g) -> None:
    g.add_argument("--mtbench-mode", choices=["single", "pairwise"], default="single",
                   help="MT-Bench grading: single-answer scores (default) or pairwise against --mtbench-baseline.")
    g.add_argument("--mtbench-baseline", help="FastChat model_answer JSONL of the baseline for pairwise MT-Bench.")


FLAGS = BenchmarkFlags("mtbench", _add_flags, lambda args: {
    "mode": getattr(args, "mtbench_mode", "single"), "baseline_answers": getattr(args, "mtbench_baseline", None)})


# ---------- entry point ----------
def run(generator, judge_cfg: JudgeConfig | None, out_dir: Path, limit: int | None = None, *, run: dict | None = None,
        data_dir=None, answers_path: Path | None = None, mode: str = "single",
        baseline_answers: Path | None = None, gen_temperature: float | None = None):
    """MT-Bench for one model (generated by ``generator`` or read from ``answers_path``): its scores and files,
    a ``BenchmarkOutput``."""
    out_dir = Path(out_dir)
    bench = out_dir / "mt_bench"
    questions = load_questions(data_dir, limit)
    if generator is not None:
        run = common.run_info(generator, run)
        model_id = run["run_id"]  # unique per run; FastChat keys everything by model_id
        answers_path = bench / "model_answer" / f"{model_id}.jsonl"
        answers = generate_answers(generator, questions, answers_path, model_id, temperature=gen_temperature)
    else:
        answers = load_answers(answers_path)
        model_id = next(iter(answers.values()))["model_id"]
        run = run or common.base_run(model_id)
    temps = TEMPERATURE if gen_temperature is None else {c: float(gen_temperature) for c in TEMPERATURE}
    conventions = {"protocol": "FastChat llm_judge", "mode": mode, "temperatures": temps,
                   "temperature_source": "FastChat per-category" if gen_temperature is None else "set (--gen-temperature)",
                   "max_new_tokens": MAX_NEW_TOKENS, "answers": str(answers_path), "n_questions": len(questions),
                   "chat_template": "the generator's own (no FastChat system prompt added)"}
    missing = common.judge_missing(judge_cfg)
    if missing:
        reason = "not judged: missing " + "; ".join(missing)
        print(f"mt-bench: answers written to {answers_path}; {reason}", file=sys.stderr)
        return common.output(run, generator, [common.unavailable("mt_bench", "score_avg", reason)],
                             judge={"configured": False, "missing": missing}, conventions=conventions)
    judge_cfg.cache_dir = judge_cfg.cache_dir or str(out_dir / "judge_cache")
    client = JudgeClient(judge_cfg, JudgeCache(judge_cfg.cache_dir))
    prompts, refs = load_prompts(data_dir), load_references(data_dir)
    jname = common.safe_name(judge_cfg.model)
    judge_info = {**judge_cfg.describe(), "configured": True}
    if mode == "pairwise":
        if baseline_answers is None:
            raise DataError("pairwise MT-Bench needs baseline answers (a FastChat model_answer/<model>.jsonl)")
        base = load_answers(baseline_answers)
        baseline_id = next(iter(base.values()))["model_id"]
        path = bench / "model_judgment" / f"{jname}_pair.jsonl"
        store = judge_pair(client, questions, answers, base, prompts, refs, path, model_id, baseline_id)
        scores, unparseable = summarize_pair(store.records, model_id, baseline_id)
        conventions["baseline"] = baseline_id
        expected = sum(2 if len(q["turns"]) > 1 else 1 for q in questions if q["question_id"] in base)
    else:
        path = bench / "model_judgment" / f"{jname}_single.jsonl"
        store = judge_single(client, questions, answers, prompts, refs, path, model_id)
        scores, per_cat, unparseable = summarize_single(store.records, questions, model_id)
        if per_cat:
            conventions["radar_png"] = str(radar_png(per_cat, bench / f"radar_{model_id}.png", model_id))
        expected = sum(2 if len(q["turns"]) > 1 else 1 for q in questions)
    judged = sum(1 for r in store.records if r.get("model", r.get("model_1")) == model_id)
    judge_info.update(client.stats.to_json(), unparseable=unparseable, unjudged=max(0, expected - judged), expected=expected,
                      judgments=str(path))
    print(f"mt-bench: {client.stats.summary()}; {unparseable} unparseable verdicts", file=sys.stderr)
    return common.output(run, generator, scores, judge=judge_info, conventions=conventions, raw_file=str(path))
