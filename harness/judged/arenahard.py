"""Arena-Hard (v0.1, v2.0) following arena-hard-auto's protocol and, per version, its own scoring code.

Questions and baseline answers come from an arena-hard-auto data directory; the judge settings (prompt
template, verdict regexes, temperature, max_tokens, attempts) from the version's YAML config, read at run time.
Each question is judged twice against its category's baseline with the order swapped.

v0.1 is judged and scored as the published v0.1 leaderboard was (arena-hard-auto @0489bf3, the 2024 judge config
``judge_config_v0.1_2024.yaml``): verdicts by the 2024 rule (``arena_rules``), Bradley-Terry with the baseline
anchored, 95 % bootstrap interval. v2.0 follows the current code (@196f6b8): per-category baselines
(hard prompts: o3-mini-2025-01-31, creative writing: gemini-2.0-flash-001) and system prompts (upstream keeps
them in utils/judge_utils.py, read from ``arena_hard/judge_utils.py`` in the data dir when present; the hard-prompt
one equals the 2024 config's system prompt, used when that file is absent), score = mean of the per-battle
scores over 100 bootstrap resamples per model. With style control (either version) the score comes from the
style-controlled Bradley-Terry fit of the current code (``arena_style``): median and quantiles of the bootstrap.
Every bootstrap resamples battles in a canonical order with a fixed seed: the result does not depend on the
order in which judgments finished.
"""
from __future__ import annotations

import ast
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np

from harness.evaluation import BenchmarkFlags
from harness.generation import SamplingSettings
from harness.judge import JsonlStore, JudgeCache, JudgeClient, JudgeConfig
from harness.judged import arena_rules, arena_score, arena_style, common
from harness.judged.alpacaeval import fill
from harness.judged.data import DataError, find, read_jsonl

VERSIONS = {
    "v0.1": {"dir": "arena-hard-v0.1", "config": "judge_config_v0.1_2024.yaml", "rule": "2024",
             "baselines": {"arena-hard-v0.1": "gpt-4-0314"}},
    "v2.0": {"dir": "arena-hard-v2.0", "config": "arena-hard-v2.0.yaml", "rule": "current",
             "baselines": {"hard_prompt": "o3-mini-2025-01-31", "creative_writing": "gemini-2.0-flash-001"}},
}
JUDGE_SETTINGS_FILE = "arena_hard/judge_utils.py"
SYSTEM_PROMPT_SOURCE = "arena_hard/judge_config_v0.1_2024.yaml"
MAX_NEW_TOKENS = 4096
GEN_TEMPERATURE = 0.0  # gen_answer_config / api_config of arena-hard-auto
STRONG_WEIGHT = arena_rules.STRONG_WEIGHT
CONTINUE = "continue your judgment and finish by outputting a final verdict label"


def task_name(version: str, category: str) -> str:
    """The primary category (the first listed; upstream's default) keeps the plain task name."""
    first = next(iter(VERSIONS[version]["baselines"]))
    return f"arena_hard_{version}" + ("" if category == first else f"/{category}")


# ---------- data ----------
def _judge_settings(path: Path) -> dict:
    """JUDGE_SETTINGS of upstream utils/judge_utils.py, read as data (string constants only, nothing executed)."""
    def value(node, env):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name) and node.id in env:
            return env[node.id]
        if isinstance(node, ast.Dict):
            return {value(k, env): value(v, env) for k, v in zip(node.keys, node.values)}
        raise ValueError(ast.dump(node)[:60])

    env: dict = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                env[node.targets[0].id] = value(node.value, env)
            except ValueError:
                continue
    settings = env.get("JUDGE_SETTINGS")
    if not isinstance(settings, dict):
        raise DataError(f"{path}: no JUDGE_SETTINGS dictionary of string constants")
    return settings


def load_config(version: str, data_dir=None) -> dict:
    """Judge settings of a version; ``systems`` maps category -> (system prompt, source) where one is known."""
    import yaml

    v = VERSIONS[version]
    path = find(f"arena_hard/{v['config']}", data_dir)
    cfg = yaml.safe_load(path.read_text()) or {}
    patterns = cfg.get("regex_patterns") or ([cfg["regex_pattern"]] if cfg.get("regex_pattern") else None)
    if not patterns or "prompt_template" not in cfg:
        raise DataError(f"{path}: needs fields 'regex_patterns' (or 'regex_pattern') and 'prompt_template'")
    template = cfg["prompt_template"]
    template = template[0] if isinstance(template, list) else template
    systems, missing = {}, {}
    if cfg.get("system_prompt"):
        systems = {c: (cfg["system_prompt"], str(path)) for c in v["baselines"]}
    else:
        js_path = find(JUDGE_SETTINGS_FILE, data_dir, required=False)
        js = _judge_settings(js_path) if js_path else {}
        for c in v["baselines"]:
            if js.get(c, {}).get("system_prompt"):
                systems[c] = (js[c]["system_prompt"], str(js_path))
        if "hard_prompt" in v["baselines"] and "hard_prompt" not in systems:
            src = find(SYSTEM_PROMPT_SOURCE, data_dir)  # upstream's hard-prompt prompt is this text, unchanged
            system = (yaml.safe_load(src.read_text()) or {}).get("system_prompt")
            if not system:
                raise DataError(f"{src}: missing field 'system_prompt'")
            systems["hard_prompt"] = (system, str(src))
        for c in v["baselines"]:
            if c not in systems:
                missing[c] = (f"its judge system prompt is in upstream utils/judge_utils.py, not in the data dir "
                              f"(put that file at $HARNESS_DATA_DIR/{JUDGE_SETTINGS_FILE} or run online)")
    return {"template": template, "systems": systems, "missing_system": missing, "patterns": patterns,
            "rule": v["rule"], "temperature": float(cfg.get("temperature", 0.0)),
            "max_tokens": int(cfg.get("max_tokens", 4096)),
            # the current code makes one call per game; the 2024 config sets its own number
            "attempts": int(cfg.get("number_of_judgment_attempts", 1)), "config": str(path),
            "upstream_judge": cfg.get("judge_model")}


def load_questions(version: str, data_dir=None, limit=None) -> list[dict]:
    path = find(f"arena_hard/{VERSIONS[version]['dir']}/question.jsonl", data_dir)
    out = []
    for i, q in enumerate(read_jsonl(path), 1):
        uid = q.get("uid") or q.get("question_id")
        prompt = q.get("prompt") or (q.get("turns") or [{}])[0].get("content")
        if uid is None or prompt is None:
            raise DataError(f"{path}: line {i}: needs 'uid' and 'prompt' (or question_id and turns)")
        category = q.get("category") or next(iter(VERSIONS[version]["baselines"]))
        if category not in VERSIONS[version]["baselines"]:
            raise DataError(f"{path}: line {i}: field 'category': {category!r} has no known baseline "
                            f"(expected one of {', '.join(VERSIONS[version]['baselines'])})")
        out.append({"uid": uid, "prompt": prompt, "category": category})
    return out[:limit] if limit else out


def answer_text(rec: dict) -> str:
    """An arena-hard answer record, current (messages) or older (choices/turns) layout."""
    if "messages" in rec:
        content = rec["messages"][-1]["content"]
        return content["answer"] if isinstance(content, dict) else content
    return rec["choices"][0]["turns"][0]["content"]


def answer_meta(rec: dict) -> dict | None:
    """Style metadata (token_len and markdown counts) of an answer; counts are computed when absent.
    None when the answer has no token length."""
    meta = dict(rec.get("metadata") or rec.get("conv_metadata") or {})
    if "token_len" not in meta and "choices" in rec:
        meta["token_len"] = rec["choices"][0]["turns"][0].get("token_len")
    if meta.get("token_len") is None:
        return None
    if not all(k in meta for k in arena_style.FEATURES):
        meta.update(arena_style.markdown_counts(answer_text(rec)))
    return meta


def load_answers(path: Path) -> dict[str, dict]:
    """uid -> answer record; both layouts (``uid, model, messages`` and ``question_id, model_id, choices``)."""
    path = Path(path)
    out = {}
    for i, r in enumerate(read_jsonl(path), 1):
        uid = r.get("uid") or r.get("question_id")
        name = r.get("model") or r.get("model_id")
        if uid is None or name is None or not ("messages" in r or "choices" in r):
            raise DataError(f"{path}: line {i}: needs 'uid', 'model' and 'messages' "
                            "(or 'question_id', 'model_id' and 'choices')")
        try:
            answer_text(r)
        except (KeyError, IndexError, TypeError):
            raise DataError(f"{path}: line {i}: field '{'messages' if 'messages' in r else 'choices'}' "
                            "holds no answer text") from None
        out[uid] = r
    if not out:
        raise DataError(f"{path}: no answers")
    return out


def avg_tokens(answers: dict[str, dict], uids=None) -> tuple[float | None, int]:
    """Mean token length of the answers that record one (upstream's leaderboard column prints int() of it)."""
    tokens = [m["token_len"] for u, a in answers.items() if (uids is None or u in uids) and (m := answer_meta(a))]
    return (float(np.mean(tokens)) if tokens else None), len(tokens)


def parse_verdict(judgment: str, patterns: list[str], rule: str = "current") -> str | None:
    return arena_rules.parse(judgment, patterns, rule)[0]


def model_of(answers: dict[str, dict]) -> str:
    first = next(iter(answers.values()))
    return first.get("model") or first.get("model_id")


def baselines_for(version: str, questions, data_dir=None, supplied=None) -> dict[str, dict]:
    """category -> {"name", "path", "answers"} or {"name", "unavailable"}. ``supplied``: answer files; one whose
    model is a category's upstream baseline serves that category, any other one serves every category."""
    v = VERSIONS[version]
    files = [Path(p) for p in ([supplied] if isinstance(supplied, (str, Path)) else (supplied or []))]
    loaded = {}
    for p in files:
        ans = load_answers(p)
        loaded[model_of(ans)] = (p, ans)
    custom = [m for m in loaded if m not in v["baselines"].values()]
    if len(custom) > 1:
        raise DataError(f"baseline answers: more than one file names a model that is no upstream baseline ({custom})")
    cats = sorted({q["category"] for q in questions}, key=list(v["baselines"]).index)
    out = {}
    for c in cats:
        name = custom[0] if custom else v["baselines"][c]
        if name in loaded:
            out[c] = {"name": name, "path": str(loaded[name][0]), "answers": loaded[name][1]}
            continue
        rel = f"arena_hard/{v['dir']}/model_answer/{name}.jsonl"
        path = find(rel, data_dir, required=False)
        if path is None:
            out[c] = {"name": name, "rel": rel,
                      "unavailable": f"baseline answers {name} not found ($HARNESS_DATA_DIR/{rel}); "
                                     "pass them with --arena-baseline / --baseline-answers"}
        else:
            out[c] = {"name": name, "path": str(path), "answers": load_answers(path)}
    if cats and all("answers" not in b for b in out.values()):
        find(out[cats[0]]["rel"], data_dir)  # raises DataError naming the missing file
    return out


# ---------- generation and judging ----------
def generate_answers(generator, questions, path: Path, model: str, temperature: float = GEN_TEMPERATURE,
                     chunk: int = 16) -> dict[str, dict]:
    store = JsonlStore(path)
    done = {r["uid"] for r in store.records}
    todo = [q for q in questions if q["uid"] not in done]

    def on_chunk(start, gens):
        for q, g in zip(todo[start:start + len(gens)], gens):
            # token_len: the generator's own tokenizer (upstream counts with tiktoken's gpt-4o encoding)
            meta = {"token_len": g.n_tokens, **arena_style.markdown_counts(g.text)}
            store.append({"uid": q["uid"], "ans_id": uuid.uuid4().hex[:22], "model": model,
                          "messages": [{"role": "user", "content": q["prompt"]},
                                       {"role": "assistant", "content": {"answer": g.text}}],
                          "tstamp": time.time(), "metadata": meta})

    common.generate_chunked(generator, [[{"role": "user", "content": q["prompt"]}] for q in todo],
                            SamplingSettings(max_new_tokens=MAX_NEW_TOKENS, temperature=temperature), chunk, on_chunk,
                            "arena-hard answers")
    return {r["uid"]: r for r in store.records}


def judge(client: JudgeClient, jc: dict, questions, answers, bases: dict, path: Path, model: str) -> JsonlStore:
    """Judge every question whose category has a baseline and a system prompt; resumable through ``path``."""
    store = JsonlStore(path)
    done = {r["uid"] for r in store.records if r["model"] == model}
    items = [q for q in questions if q["uid"] in answers and q["uid"] not in done
             and "answers" in bases.get(q["category"], {}) and q["uid"] in bases[q["category"]]["answers"]
             and q["category"] in jc["systems"]]

    async def game(cl, q, first, second):
        user = fill(jc["template"], QUESTION=q["prompt"], ANSWER_A=first, ANSWER_B=second,
                    question_1=q["prompt"], answer_1=first, answer_2=second)
        messages = [{"role": "system", "content": jc["systems"][q["category"]][0]}, {"role": "user", "content": user}]
        judgment, verdict, why = "", None, None
        for _ in range(max(1, jc["attempts"])):
            reply = await cl.complete({"messages": messages, "temperature": jc["temperature"],
                                       "max_tokens": jc["max_tokens"]})
            if reply.error:
                return None
            # the 2024 code accumulates attempts, each after a newline; the current one keeps its single reply
            judgment = judgment + "\n" + reply.text if jc["rule"] == "2024" else reply.text
            verdict, why, again = arena_rules.parse(judgment, jc["patterns"], jc["rule"])
            if not again:
                break
            messages = messages + [{"role": "assistant", "content": reply.text}, {"role": "user", "content": CONTINUE}]
        return {"score": verdict, "why": why, "judgment": judgment, "user_prompt": user}

    async def judge_one(cl, q):
        mine, theirs = answer_text(answers[q["uid"]]), answer_text(bases[q["category"]]["answers"][q["uid"]])
        return [await game(cl, q, theirs, mine), await game(cl, q, mine, theirs)]

    def on_done(q, games):
        if None in games:
            return
        store.append({"uid": q["uid"], "category": q["category"], "judge": client.cfg.model, "model": model,
                      "baseline": bases[q["category"]]["name"], "games": games, "tstamp": time.time()})

    client.map(items, judge_one, on_done, desc="arena-hard judging")
    store.sync()
    return store


def _add_flags(g) -> None:
    g.add_argument("--arena-version", choices=list(VERSIONS), default="v0.1",
                   help="Arena-Hard version: v0.1 (500 prompts, baseline gpt-4-0314, judged and scored with the 2024 "
                        "rules of the published v0.1 leaderboard) or v2.0 (500 hard prompts against o3-mini and 250 "
                        "creative-writing prompts against gemini-2.0-flash-001, current upstream rules). Default v0.1.")
    g.add_argument("--arena-baseline", nargs="+", metavar="FILE",
                   help="Baseline answers JSONL for Arena-Hard (default: the data dir's own: gpt-4-0314 for v0.1, "
                        "o3-mini-2025-01-31 for v2.0 hard prompts). A file whose model is a category's upstream "
                        "baseline (v2.0: o3-mini-2025-01-31 for hard prompts, gemini-2.0-flash-001 for creative "
                        "writing) serves that category; another model serves every category.")
    g.add_argument("--arena-style-control", choices=["off", *arena_style.CONTROLS], default="off",
                   help="Arena-Hard style control: length and/or markdown features (headers, lists, bold) as "
                        "covariates of the Bradley-Terry fit (upstream's show_result --control-features); default "
                        "off; recorded in the result.")


def _options(args) -> dict:
    style = getattr(args, "arena_style_control", "off")
    return {"version": getattr(args, "arena_version", "v0.1"), "baseline_answers": getattr(args, "arena_baseline", None),
            "style_control": None if style == "off" else style}


FLAGS = BenchmarkFlags("arenahard", _add_flags, _options)  # `harness eval` and `harness judge` read these


def run(generator, judge_cfg: JudgeConfig | None, out_dir: Path, limit: int | None = None, *, run: dict | None = None,
        data_dir=None, version: str = "v0.1", answers_path=None, baseline_answers=None, bootstrap_rounds: int = 100,
        style_control: str | bool | None = None, gen_temperature: float | None = None):
    """One model: generated by ``generator`` or read from ``answers_path``; its scores and files (a BenchmarkOutput)."""
    return run_many(generator, judge_cfg, out_dir, limit, runs=[run] if run else None, data_dir=data_dir,
                    version=version, answers_paths=[answers_path] if generator is None else None,
                    baseline_answers=baseline_answers, bootstrap_rounds=bootstrap_rounds, style_control=style_control,
                    gen_temperature=gen_temperature)[0]


def run_many(generator, judge_cfg: JudgeConfig | None, out_dir: Path, limit: int | None = None, *,
             runs: list[dict] | None = None, data_dir=None, version: str = "v0.1", answers_paths=None,
             baseline_answers=None, bootstrap_rounds: int = 100, style_control: str | bool | None = None,
             gen_temperature: float | None = None) -> list:
    """Judge one generated model or several saved answer files; all models are scored together (as upstream
    scores every model of its judgment folder), one BenchmarkOutput each."""
    if version not in VERSIONS:
        raise ValueError(f"unknown Arena-Hard version {version!r}; choose from {', '.join(VERSIONS)}")
    style_control = "both" if style_control is True else (style_control or None)
    if style_control and style_control not in arena_style.CONTROLS:
        raise ValueError(f"style control {style_control!r}: choose from {', '.join(arena_style.CONTROLS)}")
    bench = Path(out_dir) / "arena_hard" / VERSIONS[version]["dir"]
    questions = load_questions(version, data_dir, limit)
    temperature = GEN_TEMPERATURE if gen_temperature is None else float(gen_temperature)
    models, answers, paths = [], {}, {}
    if generator is not None:
        run0 = common.run_info(generator, (runs or [None])[0])
        runs = [run0]
        m = run0["run_id"]
        paths[m] = bench / "model_answer" / f"{m}.jsonl"
        answers[m] = generate_answers(generator, questions, paths[m], m, temperature)
        models.append(m)
    else:
        for p in answers_paths:
            ans = load_answers(Path(p))
            m = model_of(ans)
            if m in answers:
                raise DataError(f"{p}: model {m!r} is also in {paths[m]}")
            models.append(m)
            answers[m], paths[m] = ans, Path(p)
        runs = runs or [common.base_run(m) for m in models]
    uids = {q["uid"] for q in questions}
    conventions = {"version": version, "rule": VERSIONS[version]["rule"], "style_control": style_control or False,
                   "strong_verdict_weight": STRONG_WEIGHT, "bootstrap_rounds": bootstrap_rounds,
                   "bootstrap_seed": arena_score.BOOTSTRAP_SEED, "n_questions": len(questions),
                   "max_new_tokens": MAX_NEW_TOKENS, "temperature": temperature,
                   "temperature_source": "default" if gen_temperature is None else "set (--gen-temperature)",
                   "scorer": _scorer_text(version, style_control)}

    def tok_score(m):
        value, n = avg_tokens(answers[m], uids)
        return {"task": f"arena_hard_{version}", "metric": "avg_tokens", "value": value, "n": n,
                **({} if n else {"unavailable": "no token lengths in the answers"})}

    missing = common.judge_missing(judge_cfg)
    cats = sorted({q["category"] for q in questions}, key=list(VERSIONS[version]["baselines"]).index)
    if missing:
        reason = "not judged: missing " + "; ".join(missing)
        print(f"arena-hard: answers in {', '.join(map(str, paths.values()))}; {reason}", file=sys.stderr)
        return [common.output(r, generator,
                              [common.unavailable(task_name(version, c), "score", reason) for c in cats] + [tok_score(m)],
                              judge={"configured": False, "missing": missing},
                              conventions={**conventions, "answers": str(paths[m]),
                                           "baselines": {c: VERSIONS[version]["baselines"][c] for c in cats}})
                for m, r in zip(models, runs)]
    jc = load_config(version, data_dir)
    bases = baselines_for(version, questions, data_dir, baseline_answers)
    for c in cats:
        if "answers" in bases[c] and c in jc["missing_system"]:
            bases[c] = {"name": bases[c]["name"], "path": bases[c]["path"], "unavailable": jc["missing_system"][c]}
    conventions.update(judge_config=jc["config"], judge_attempts=jc["attempts"], regex_patterns=jc["patterns"],
                       baseline=bases[cats[0]]["name"] if cats else None,
                       baselines={c: {"baseline": b["name"], "answers": b.get("path"),
                                      **({"unavailable": b["unavailable"]} if "unavailable" in b else {}),
                                      **({"system_prompt_from": jc["systems"][c][1]} if c in jc["systems"] else {})}
                                  for c, b in bases.items()})
    if style_control:
        _check_style_metadata(questions, answers, bases)
    judge_cfg.cache_dir = judge_cfg.cache_dir or str(Path(out_dir) / "judge_cache")
    client = JudgeClient(judge_cfg, JudgeCache(judge_cfg.cache_dir))
    jdir = bench / "model_judgment" / common.safe_name(judge_cfg.model)
    records, uncounted = {}, {}
    for m in models:
        store = judge(client, jc, questions, answers[m], bases, jdir / f"{common.safe_name(m)}.jsonl", m)
        records[m] = [r for r in store.records if r["model"] == m and r["uid"] in uids]
    scores = {m: [] for m in models}
    per_cat = {m: {} for m in models}
    for c in cats:
        task = task_name(version, c)
        if "answers" not in bases[c]:
            for m in models:
                scores[m].append(common.unavailable(task, "score", bases[c]["unavailable"]))
            continue
        rows = {}
        for m in models:
            got, bad = arena_score.counted([r for r in records[m] if r["category"] == c], jc["patterns"], jc["rule"])
            uncounted.setdefault(m, []).extend(dict(u, category=c) for u in bad)
            rows[m] = got
        have = {m: r for m, r in rows.items() if r}
        meta = None
        if style_control:
            meta = {m: {u: answer_meta(a) for u, a in answers[m].items()} for m in have}
            meta[bases[c]["name"]] = {u: answer_meta(a) for u, a in bases[c]["answers"].items()}
        result = arena_score.score_category(jc["rule"], have, meta, bases[c], style_control, bootstrap_rounds) if have else {}
        for m in models:
            n_q = len({u for u, _, _ in rows[m]})
            if m not in result:
                scores[m].append(common.unavailable(task, "score", "no counted verdicts"))
                continue
            r = result[m]
            scores[m].append({"task": task, "metric": "score", "value": r["score"], "ci95": r["ci95"], "n": n_q})
            per_cat[m][c] = {"n_battles": len(rows[m]), "ci90": r["ci90"],
                             **{k: v for k, v in r.items() if k not in ("score", "ci95", "ci90")}}
    out = []
    for m, r in zip(models, runs):
        bad = sorted(uncounted.get(m, []), key=lambda u: (u["category"], u["uid"], u["reason"]))
        expected = sum(1 for q in questions if q["uid"] in answers[m] and "answers" in bases.get(q["category"], {})
                       and q["uid"] in bases[q["category"]]["answers"])
        judge_info = {**judge_cfg.describe(), "configured": True, **client.stats.to_json(),
                      "uncounted_games": len(bad), "uncounted_reasons": dict(sorted(Counter(u["reason"] for u in bad).items())),
                      "uncounted": bad[:200], "unjudged": expected - len(records[m]), "expected": expected,
                      "judgments": str(jdir / f"{common.safe_name(m)}.jsonl"), "upstream_judge": jc["upstream_judge"],
                      "n_battles": sum(c.get("n_battles", 0) for c in per_cat[m].values())}
        conv = {**conventions, "answers": str(paths[m]), "per_category": per_cat[m],
                **({"scored_with": [x for x in models if x != m]} if len(models) > 1 else {})}
        if per_cat[m].get(cats[0], {}).get("rating") is not None:
            conv["bt_rating"] = per_cat[m][cats[0]]["rating"]
        print(f"arena-hard {m}: {client.stats.summary()}; {len(bad)} uncounted games"
              + (f" ({dict(Counter(u['reason'] for u in bad))})" if bad else ""), file=sys.stderr)
        out.append(common.output(r, generator, scores[m] + [tok_score(m)], judge=judge_info, conventions=conv,
                                 raw_file=judge_info["judgments"]))
    return out


def _check_style_metadata(questions, answers: dict, bases: dict) -> None:
    """Before any judge call: style control needs the token length of every answer it will compare."""
    lacking = set()
    for q in questions:
        b = bases.get(q["category"], {})
        if q["uid"] not in b.get("answers", {}):
            continue
        if answer_meta(b["answers"][q["uid"]]) is None:
            lacking.add(f"{b['name']} ({b['path']})")
        lacking.update(m for m in answers if q["uid"] in answers[m] and answer_meta(answers[m][q["uid"]]) is None)
    if lacking:
        raise DataError("style control needs every answer's token length (metadata.token_len or "
                        f"conv_metadata.token_len); missing in {', '.join(sorted(lacking))}")


def _scorer_text(version: str, style_control) -> str:
    if style_control:
        return (f"style-controlled Bradley-Terry ({style_control}) of arena-hard-auto's current show_result.py: "
                "median of the bootstrap win rates against the baseline")
    if arena_score.SCORERS[VERSIONS[version]["rule"]] == "bt":
        return "arena-hard-auto 2024 show_result.py: Bradley-Terry win rate against the baseline, 95 % bootstrap interval"
    return ("arena-hard-auto current show_result.py: mean battle score over bootstrap resamples (upstream prints the "
            "5-95 % interval: per_category.ci90; ci95 is 2.5-97.5 % of the same resamples)")
