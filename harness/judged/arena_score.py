"""Arena-Hard scores from stored judgments: verdicts re-read with the version's rule (``arena_rules``), then the
version's scorer — the 2024 Bradley-Terry (v0.1), the current mean battle score (v2.0) or the style-controlled
Bradley-Terry (``arena_style``). Every bootstrap resamples battles in a canonical order with a fixed seed."""
from __future__ import annotations

import numpy as np

from harness.judged import arena_rules, arena_style, bt

BOOTSTRAP_SEED = 0
SCORERS = {"2024": "bt", "current": "mean"}


def counted(records: list[dict], patterns: list[str], rule: str) -> tuple[list[tuple], list[dict]]:
    """(uid, game, score) rows of one model, re-read from the stored judgments with the version's rule,
    and the uncounted games with their reason."""
    rows, uncounted = [], []
    for r in sorted(records, key=lambda r: r["uid"]):  # canonical order: reports do not depend on finishing order
        games = []
        for g in r["games"]:
            if g is None:
                games.append(None)
                continue
            verdict, why, _ = arena_rules.parse(g["judgment"], patterns, rule)
            games.append({"score": verdict, "why": why})
        got, why = arena_rules.question_scores({"games": games}, rule)
        rows.extend((r["uid"], g, s) for g, s in got)
        uncounted.extend({"uid": r["uid"], "reason": w} for w in why)
    return sorted(rows), uncounted


def _winner(score: float) -> str:
    return {1.0: "model_b", 0.0: "model_a", 0.5: "tie"}[score]


def _interval(values) -> dict:
    lo95, hi95, lo90, hi90 = np.quantile(values, [0.025, 0.975, 0.05, 0.95])
    return {"ci95": [float(lo95), float(hi95)], "ci90": [float(lo90), float(hi90)]}


def score_bt(rows: dict[str, list], baseline: str, rounds: int, seed: int = BOOTSTRAP_SEED) -> dict[str, dict]:
    """2024 scorer: BT fit (all models together, baseline anchored), 95 % percentile interval."""
    battles = [(baseline, m, _winner(s)) for m in sorted(rows) for _, _, s in rows[m]]
    ratings = bt.fit(battles, anchor=baseline)
    boots = bt.bootstrap(battles, baseline, rounds, seed)
    return {m: {"score": bt.win_rate(ratings[m], 1000.0), "rating": ratings[m],
                **_interval([bt.win_rate(b[m], 1000.0) for b in boots])} for m in rows}


def score_mean(rows: dict[str, list], rounds: int, seed: int = BOOTSTRAP_SEED) -> dict[str, dict]:
    """Current scorer: per model, mean score over bootstrap resamples of its battles (upstream reports the mean
    of the bootstrap means and the 5-95 % quantiles)."""
    rng = np.random.default_rng(seed)
    out = {}
    for m in sorted(rows):
        s = np.array([x for _, _, x in rows[m]], dtype=float)
        means = s[rng.integers(0, len(s), (rounds, len(s)))].mean(axis=1) * 100
        out[m] = {"score": float(means.mean()), "raw_mean": float(s.mean() * 100), **_interval(means)}
    return out


def score_style(rows: dict[str, list], meta: dict[str, dict], base_meta: dict, control: str, rounds: int,
                seed: int = BOOTSTRAP_SEED) -> dict[str, dict]:
    """Style-controlled BT over all models together; median and quantiles of the bootstrap (upstream)."""
    models = sorted(rows)
    idx, feats, y = [], [], []
    for i, m in enumerate(models):
        for uid, _, s in rows[m]:
            idx.append(i)
            feats.append(arena_style.battle_features(arena_style.vector(meta[m][uid]),
                                                     arena_style.vector(base_meta[uid]))[0])
            y.append(s)
    idx, y = np.array(idx), np.array(y, dtype=float)
    X = arena_style.standardise(np.array(feats))[:, list(arena_style.CONTROLS[control])]
    point, coef = arena_style.fit(models, idx, X, y)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(rounds):
        take = rng.integers(0, len(y), len(y))
        boots.append(arena_style.fit(models, idx[take], X[take], y[take])[0])
    win = 100 / (1 + np.exp(-np.array(boots)))
    return {m: {"score": float(np.median(win[:, i])), "point_fit": float(100 / (1 + np.exp(-point[i]))),
                "style_coefficients": dict(zip([("length", "headers", "lists", "bold")[k]
                                                for k in arena_style.CONTROLS[control]], map(float, coef))),
                **_interval(win[:, i])} for i, m in enumerate(models)}


def score_category(rule: str, rows: dict[str, list], meta: dict | None, base: dict, style_control,
                   rounds: int) -> dict[str, dict]:
    """Scores of every model in ``rows`` for one category, with the version's scorer or style control. ``meta``: model -> uid -> style metadata, with the
    baseline's under ``base["name"]`` (style control only)."""
    if style_control:
        return score_style(rows, meta, meta[base["name"]], style_control, rounds)
    if SCORERS[rule] == "bt":
        return score_bt(rows, base["name"], rounds)
    return score_mean(rows, rounds)


