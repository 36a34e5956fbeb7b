"""AlpacaEval 2: 805 instructions judged against gpt4_1106_preview by the ``weighted_alpaca_eval_gpt4_turbo``
annotator. The annotator's config and prompt template are read at run time from the data directory; the judge
is asked for the log-probabilities of the two model identifiers and the weighted preference is computed from
them (alpaca_eval's logprob parser: preference = 2 - P(first shown)). Win rate = mean(preference - 1) x 100.

Length-controlled win rate: alpaca_eval's ``length_controlled_v1`` GLM (logistic regression of the
preference on tanh(std-normalised length difference), instruction difficulty and a not-gamed-baseline
indicator, regularised towards the gamed baselines), predicted with the length difference set to 0. It needs
``df_gamed.csv`` from the hub dataset tatsu-lab/alpaca_eval (or a local copy in the data dir); without it the
LC value is null with the reason. The GLM is fitted here (numpy); alpaca_eval's own fit is used when the
package is importable and online.
"""
from __future__ import annotations

import hashlib
import math
import re
import sys
from pathlib import Path

import numpy as np

from align.atomic import write_json_atomic
from harness.generation import SamplingSettings
from harness.judge import JsonlStore, JudgeCache, JudgeClient, JudgeConfig
from harness.judged import common
from harness.judged.data import DataError, find, offline, read_json

ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
REFERENCE = "alpaca_eval/reference_outputs/gpt4_1106_preview.json"
MAX_NEW_TOKENS = 2048
GEN_TEMPERATURE = 0.0  # greedy; papers differ (DGPO sampled AlpacaEval answers at 0.5): --gen-temperature
LAMBDA_GAMED = 0.2  # length_controlled_v1: weight of the gamed baselines (split over two)


# ---------- data ----------
def load_reference(data_dir=None, limit: int | None = None) -> list[dict]:
    path = find(REFERENCE, data_dir)
    rows = read_json(path)
    for i, r in enumerate(rows):
        for f in ("instruction", "output", "generator"):
            if f not in r:
                raise DataError(f"{path}: entry {i}: missing field '{f}'")
    return rows[:limit] if limit else rows


def load_annotator(data_dir=None) -> dict:
    import yaml

    cfg_path = find(f"alpaca_eval/{ANNOTATOR}/configs.yaml", data_dir)
    cfg = yaml.safe_load(cfg_path.read_text())[ANNOTATOR]
    # upstream points into a sibling folder; the data dir keeps the template beside the config
    tpl_name = Path(cfg["prompt_template"]).name
    tpl_path = cfg_path.parent / tpl_name
    if not tpl_path.exists():
        tpl_path = find(f"alpaca_eval/{ANNOTATOR}/{tpl_name}", data_dir)
    parser = cfg.get("completion_parser_kwargs", {})
    if cfg.get("fn_completion_parser") != "logprob_parser":
        raise DataError(f"{cfg_path}: field 'fn_completion_parser': only logprob_parser is supported")
    kwargs = dict(cfg.get("completions_kwargs", {}))
    kwargs.pop("model_name", None)  # the judge model is ours to choose
    return {"template": tpl_path.read_text(encoding="utf-8"), "completions_kwargs": kwargs,
            "numerator": parser["numerator_token"], "denominators": list(parser["denominator_tokens"]),
            "upstream_judge": cfg.get("completions_kwargs", {}).get("model_name"), "config": str(cfg_path)}


# ---------- prompt and parse ----------
def fill(template: str, **values: str) -> str:
    """Replace ``{name}`` placeholders in one pass (the template also has literal braces; an output
    containing ``{output_2}`` must stay as it is)."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def chatml_messages(prompt: str) -> list[dict]:
    """The annotator template is ChatML text; the chat endpoint wants messages."""
    blocks = re.findall(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|\Z)", prompt, flags=re.S)
    if not blocks:
        return [{"role": "user", "content": prompt.strip()}]
    return [{"role": role, "content": text.strip()} for role, text in blocks]


def is_swapped(instruction: str) -> bool:
    """Shown order of (baseline, model), fixed per instruction so reruns hit the cache."""
    return hashlib.sha256(instruction.encode("utf-8")).digest()[0] % 2 == 1


def shown_preference(top_logprobs, numerator: str, denominators: list[str]) -> float | None:
    """alpaca_eval's logprob parser: 2 - P(numerator | denominators); None when no label is among the top."""
    lp = {t: l for t, l in (top_logprobs or []) if t in set(denominators) | {numerator}}
    if not lp:
        return None
    den = np.logaddexp.reduce([lp.get(t, -math.inf) for t in denominators])
    return float(2 - math.exp(lp.get(numerator, -math.inf) - den))


# ---------- metrics ----------
def win_rate(preferences) -> dict:
    """alpaca_eval's head-to-head summary of preferences in [1, 2] (2: the model wins; 0 means a draw)."""
    p = np.array([1.5 if x == 0 else x for x in preferences if x is not None and not np.isnan(x)], dtype=float)
    p = p[(p >= 1) & (p <= 2)] - 1
    return {"win_rate": float(p.mean() * 100) if len(p) else None,
            "standard_error": float(p.std(ddof=1) / np.sqrt(len(p)) * 100) if len(p) > 1 else None,
            "n_wins": int((p > 0.5).sum()), "n_wins_base": int((p < 0.5).sum()),
            "n_draws": int((p == 0.5).sum()), "n_total": int(len(p))}


GLM_COLUMNS = ("np.tanh(std_delta_len)", "instruction_difficulty", "not_gamed_baseline.astype(float)")


def _design(delta_len_std, difficulty, not_gamed) -> np.ndarray:
    return np.column_stack([np.tanh(delta_len_std), difficulty, np.asarray(not_gamed, dtype=float)])


def _continuous_log_loss(y_true, y_pred, true_prob, true_sample_weight=None):
    """alpaca_eval's CV score for soft labels: rows are duplicated with labels 1 and 0, so the label and the
    row's true probability give back the soft target of that row."""
    target = np.where(np.asarray(y_true) == 1, true_prob, 1 - np.asarray(true_prob))
    q = np.clip(y_pred, 1e-15, 1 - 1e-15)
    ll = target * np.log(q) + (1 - target) * np.log(1 - q)
    return -np.mean(ll if true_sample_weight is None else ll * true_sample_weight)


def fit_glm_cv(X: np.ndarray, p: np.ndarray, w: np.ndarray, n_splits: int = 5) -> np.ndarray:
    """L1-regularised logistic regression on soft targets ``p`` with sample weights ``w``, C chosen by grouped
    5-fold cross-validation on the continuous log loss: alpaca_eval 0.6.x's ``fit_LogisticRegressionCV``
    (liblinear, random_state 123, no intercept). Returns the coefficients."""
    import sklearn
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GroupKFold

    n = len(p)
    Xd, y = np.vstack([X, X]), np.concatenate([np.ones(n, int), np.zeros(n, int)])
    true_prob, true_w = np.concatenate([p, 1 - p]), np.concatenate([w, w])
    groups = np.concatenate([np.arange(n), np.arange(n)])
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(_continuous_log_loss, response_method="predict_proba", greater_is_better=False)
        scorer = scorer.set_score_request(true_sample_weight=True, true_prob=True)
        # l1_ratios=(1,) is penalty="l1" (deprecated under that name in scikit-learn 1.8)
        model = LogisticRegressionCV(cv=GroupKFold(n_splits=n_splits), scoring=scorer, random_state=123, dual=False,
                                     l1_ratios=(1.0,), solver="liblinear", fit_intercept=False,
                                     use_legacy_attributes=False)
        model.set_fit_request(sample_weight=True)
        model.fit(Xd, y, sample_weight=true_prob * true_w, groups=groups, true_sample_weight=true_w,
                  true_prob=true_prob)
    return np.asarray(model.coef_).reshape(-1)[: X.shape[1]]


def lc_win_rate(annotations: list[dict], df_gamed, n_bootstrap: int = 0, seed: int = 0) -> dict:
    """length_controlled_v1 as alpaca_eval 0.6.x computes it (metrics/glm_winrate.py). ``annotations``: rows with
    index, output_1 (baseline), output_2 (model), preference in [1, 2] or None; ``df_gamed``: df_gamed.csv.

    Features come from every annotation (the length std included); only rows with a preference are fitted,
    together with the gamed baselines weighted lambda/2; the LC win rate is the mean predicted preference with
    the length difference set to 0, its standard error the standard error of that mean (alpaca_eval's own).
    ``n_bootstrap`` > 0 adds a bootstrap standard error over instructions (not upstream; slow)."""
    idx = np.array([a["index"] for a in annotations])
    diff = np.array([len(a["output_1"]) - len(a["output_2"]) for a in annotations], dtype=float)
    std = diff / diff.std(ddof=1)  # pandas .std(): ddof=1
    pref = np.array([np.nan if a.get("preference") is None else float(a["preference"]) for a in annotations])
    y = np.where(pref == 0, 1.5, pref) - 1
    # upstream looks the difficulty up by the *row label* of df_gamed's first row per instruction
    difficulty_of = df_gamed.drop_duplicates("index")["instruction_difficulty"]
    missing = [int(i) for i in idx if i not in difficulty_of.index]
    if missing:
        raise DataError(f"df_gamed.csv: field 'instruction_difficulty' has no row for instruction indices {missing[:5]}")
    diffc = difficulty_of.loc[idx].to_numpy(dtype=float)
    not_gamed = df_gamed["not_gamed_baseline"].astype(bool).to_numpy()
    Xg = _design(df_gamed["std_delta_len"].to_numpy(float), df_gamed["instruction_difficulty"].to_numpy(float), not_gamed)
    yg = df_gamed["preference"].to_numpy(float)
    wg = np.where(not_gamed, 1.0, LAMBDA_GAMED / 2)
    Xm = _design(std, diffc, np.ones(len(annotations)))
    Xtest = _design(np.zeros(len(annotations)), diffc, np.ones(len(annotations)))
    ok = ~np.isnan(y)

    def fit(sel):
        keep = sel[ok[sel]]
        Xt, yt, wt = np.vstack([Xg, Xm[keep]]), np.concatenate([yg, y[keep]]), np.concatenate([wg, np.ones(len(keep))])
        fin = ~np.isnan(yt)
        beta = fit_glm_cv(Xt[fin], yt[fin], wt[fin])
        return 1 / (1 + np.exp(-(Xtest[sel] @ beta))), beta

    pred, beta = fit(np.arange(len(annotations)))
    out = {"length_controlled_winrate": float(pred.mean() * 100),
           "lc_standard_error": float(pred.std(ddof=1) / np.sqrt(len(pred)) * 100),
           "weights": dict(zip(GLM_COLUMNS, map(float, beta))),
           "implementation": "alpaca_eval 0.6.x length_controlled_v1 (scikit-learn LogisticRegressionCV, L1, "
                             "grouped 5-fold CV); standard error of the mean predicted preference"}
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        boots = [fit(np.sort(rng.integers(0, len(annotations), len(annotations))))[0].mean() * 100
                 for _ in range(n_bootstrap)]
        out["lc_bootstrap_standard_error"] = float(np.std(boots, ddof=1)) if n_bootstrap > 1 else None
    return out


def load_df_gamed(data_dir=None):
    import pandas as pd

    path = find("alpaca_eval/df_gamed.csv", data_dir, required=False)
    if path is None:
        return None, ("df_gamed.csv (instruction difficulty + gamed baselines) is not available: "
                      "put it in $HARNESS_DATA_DIR/alpaca_eval/ or run online (hub dataset tatsu-lab/alpaca_eval)")
    df = pd.read_csv(path)
    for f in ("index", "instruction_difficulty", "preference", "std_delta_len", "not_gamed_baseline"):
        if f not in df.columns:
            raise DataError(f"{path}: missing column '{f}'")
    return df, None


def _lc_with_alpaca_eval(annotations: list[dict]) -> dict | None:
    """alpaca_eval's own LC (it downloads its inputs from the hub), if the package imports and we're online."""
    if offline():
        return None
    try:
        import pandas as pd
        from alpaca_eval.metrics.glm_winrate import get_length_controlled_winrate
    except Exception:  # noqa: BLE001 - optional extra; any import failure means "not available"
        return None
    df = pd.DataFrame([a for a in annotations if a.get("preference") is not None]).set_index("index", drop=False)
    out = get_length_controlled_winrate(df, save_weights_dir=None)
    return {"length_controlled_winrate": float(out["length_controlled_winrate"]),
            "lc_standard_error": float(out["lc_standard_error"]),
            "implementation": "alpaca_eval.metrics.glm_winrate"}


# ---------- generation and judging ----------
def generate_outputs(generator, refs: list[dict], path: Path, model_name: str, chunk: int = 32,
                     temperature: float = GEN_TEMPERATURE) -> list[dict]:
    """model_outputs.json in alpaca_eval's format; resumable through a JSONL beside it."""
    partial = JsonlStore(path.with_suffix(".partial.jsonl"))
    done = {r["index"] for r in partial.records}
    todo = [i for i in range(len(refs)) if i not in done]
    convs = [[{"role": "user", "content": refs[i]["instruction"]}] for i in todo]

    def on_chunk(start, gens):
        for i, g in zip(todo[start:start + len(gens)], gens):
            partial.append({"index": i, "output": g.text, "n_tokens": g.n_tokens})

    common.generate_chunked(generator, convs, SamplingSettings(max_new_tokens=MAX_NEW_TOKENS, temperature=temperature),
                            chunk, on_chunk, "alpacaeval answers")
    by_idx = {r["index"]: r for r in partial.records}
    outputs = [{"instruction": r["instruction"], "output": by_idx[i]["output"], "generator": model_name,
                "dataset": r.get("dataset")} for i, r in enumerate(refs) if i in by_idx]
    _write_json(path, outputs)
    return outputs


def _write_json(path: Path, obj) -> None:
    write_json_atomic(path, obj, ensure_ascii=False)


def _row(i, refs, outputs, pref, swapped, raw) -> dict:
    return {"index": i, "instruction": refs[i]["instruction"], "output_1": refs[i]["output"],
            "generator_1": refs[i]["generator"], "output_2": outputs[i]["output"],
            "generator_2": outputs[i]["generator"], "dataset": refs[i].get("dataset"),
            "annotator": ANNOTATOR, "preference": pref, "is_swapped": swapped, "raw_completion": raw}


def annotate(client: JudgeClient, ann: dict, refs: list[dict], outputs: list[dict], path: Path) -> JsonlStore:
    store = JsonlStore(path)
    done = {r["index"] for r in store.records}
    items = [i for i in range(len(outputs)) if i not in done]
    for i in [i for i in items if outputs[i]["output"] == refs[i]["output"]]:
        # identical outputs are a draw without asking the judge, as alpaca_eval does
        store.append(_row(i, refs, outputs, 1.5, False, None))
        items.remove(i)

    def request(i):
        base, model = refs[i]["output"], outputs[i]["output"]
        first, second = (model, base) if is_swapped(refs[i]["instruction"]) else (base, model)
        prompt = fill(ann["template"], instruction=refs[i]["instruction"], output_1=first, output_2=second)
        return {"messages": chatml_messages(prompt), **ann["completions_kwargs"]}

    async def judge_one(cl, i):
        return await cl.complete(request(i))

    def on_done(i, reply):
        if reply.error:
            return
        shown = shown_preference(reply.top_logprobs, ann["numerator"], ann["denominators"])
        swapped = is_swapped(refs[i]["instruction"])
        pref = None if shown is None else (3 - shown if swapped else shown)
        store.append(_row(i, refs, outputs, pref, swapped, {"text": reply.text, "top_logprobs": reply.top_logprobs}))

    client.map(items, judge_one, on_done, desc="alpacaeval judging")
    store.sync()
    return store


def run(generator, judge_cfg: JudgeConfig | None, out_dir: Path, limit: int | None = None, *, run: dict | None = None,
        data_dir=None, answers_path: Path | None = None, lc_bootstrap: int = 0,
        gen_temperature: float | None = None):
    """AlpacaEval 2 for one model (generated by ``generator`` or read from ``answers_path``): its scores and files,
    a ``BenchmarkOutput``."""
    bench = Path(out_dir) / "alpaca_eval"
    bench.mkdir(parents=True, exist_ok=True)
    refs = load_reference(data_dir, limit)
    temperature = GEN_TEMPERATURE if gen_temperature is None else float(gen_temperature)
    if generator is not None:
        run = common.run_info(generator, run)
        answers_path = bench / "model_outputs.json"
        outputs = generate_outputs(generator, refs, answers_path, run["run_id"], temperature=temperature)
    else:
        outputs = read_json(answers_path)
        if not isinstance(outputs, list) or not outputs:
            raise DataError(f"{answers_path}: expected a JSON list of outputs (alpaca_eval model_outputs.json)")
        outputs = outputs[: len(refs)]
        for i, o in enumerate(outputs):
            for f in ("instruction", "output", "generator"):
                if f not in o:
                    raise DataError(f"{answers_path}: entry {i}: missing field '{f}'")
        run = run or common.base_run(outputs[0]["generator"])
    for i, (o, r) in enumerate(zip(outputs, refs)):
        if o["instruction"] != r["instruction"]:
            raise DataError(f"{answers_path}: entry {i}: field 'instruction' does not match the AlpacaEval instruction")
    avg_len = float(np.mean([len(o["output"]) for o in outputs]))
    conventions = {"annotator": ANNOTATOR, "baseline": "gpt4_1106_preview", "n_instructions": len(refs),
                   "model_outputs": str(answers_path), "max_new_tokens": MAX_NEW_TOKENS, "temperature": temperature,
                   "temperature_source": "default" if gen_temperature is None else "set (--gen-temperature)",
                   "order": "baseline/model order randomised per instruction (sha256 of the instruction)"}
    missing = common.judge_missing(judge_cfg)
    if missing:
        reason = "not judged: missing " + "; ".join(missing)
        print(f"alpacaeval: outputs written to {answers_path}; {reason}", file=sys.stderr)
        return common.output(run, generator, [common.unavailable("alpaca_eval_2", "win_rate", reason),
                             {"task": "alpaca_eval_2", "metric": "avg_length", "value": avg_len, "n": len(outputs)}],
                             judge={"configured": False, "missing": missing}, conventions=conventions)
    ann = load_annotator(data_dir)
    judge_cfg.cache_dir = judge_cfg.cache_dir or str(Path(out_dir) / "judge_cache")
    client = JudgeClient(judge_cfg, JudgeCache(judge_cfg.cache_dir))
    path = bench / f"annotations_{common.safe_name(judge_cfg.model)}.jsonl"
    store = annotate(client, ann, refs, outputs, path)
    rows = sorted((r for r in store.records if r["index"] < len(refs)), key=lambda r: r["index"])
    unparseable = sum(r["preference"] is None for r in rows)
    _write_json(bench / "annotations.json", rows)
    wr = win_rate([r["preference"] for r in rows])
    scores = [{"task": "alpaca_eval_2", "metric": "win_rate", "value": wr["win_rate"], "stderr": wr["standard_error"],
               "n": wr["n_total"]},
              {"task": "alpaca_eval_2", "metric": "avg_length", "value": avg_len, "n": len(outputs)}]
    lc = _lc_with_alpaca_eval(rows)
    if lc is None:
        df_gamed, why = load_df_gamed(data_dir)
        lc = lc_win_rate(rows, df_gamed, lc_bootstrap) if df_gamed is not None and wr["n_total"] > 2 else None
        why = why or ("too few annotations for the GLM" if lc is None else None)
    if lc is not None:
        scores.insert(1, {"task": "alpaca_eval_2", "metric": "length_controlled_win_rate",
                          "value": lc["length_controlled_winrate"], "stderr": lc["lc_standard_error"], "n": wr["n_total"]})
        conventions["length_control"] = {k: v for k, v in lc.items() if k not in ("length_controlled_winrate", "lc_standard_error")}
    else:
        scores.insert(1, common.unavailable("alpaca_eval_2", "length_controlled_win_rate", why))
    judge_info = {**judge_cfg.describe(), "configured": True, **client.stats.to_json(), "unparseable": unparseable,
                  "unjudged": len(refs) - len(rows), "expected": len(refs), "annotations": str(path), "upstream_judge": ann["upstream_judge"],
                  "request": ann["completions_kwargs"], **{k: wr[k] for k in ("n_wins", "n_wins_base", "n_draws")}}
    print(f"alpacaeval: {client.stats.summary()}; {unparseable} unparseable verdicts", file=sys.stderr)
    return common.output(run, generator, scores, judge=judge_info, conventions=conventions,
                         raw_file=str(bench / "annotations.json"))
