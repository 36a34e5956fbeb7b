"""Bradley-Terry ratings from pairwise battles (Arena-Hard's ``compute_mle_elo``) with bootstrap.

A battle is (model_a, model_b, winner) with winner in {"model_a", "model_b", "tie"}; a tie counts as half a
win for each side (upstream duplicates the data and splits ties the same way). Ratings are on the Elo
scale (400 * log10 odds) with the anchor model fixed at 1000.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from harness.judged.stats import fit_logistic

SCALE, BASE, INIT = 400.0, 10.0, 1000.0
OUTCOME = {"model_a": 1.0, "tie": 0.5, "model_b": 0.0}


def _compress(battles) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Unique (a, b, outcome) rows and their counts: the fit only needs counts. Rows are sorted, so the
    bootstrap below draws the same resamples whatever order the battles came in."""
    counts = Counter((a, b, OUTCOME[w]) for a, b, w in battles)
    models = sorted({m for a, b, _ in counts for m in (a, b)})
    keys = sorted(counts)
    ia = np.array([models.index(a) for a, _, _ in keys])
    ib = np.array([models.index(b) for _, b, _ in keys])
    y = np.array([o for _, _, o in keys])
    n = np.array([counts[k] for k in keys], dtype=float)
    return models, np.column_stack([ia, ib]), y, n


def _fit(models, pairs, y, n, anchor) -> dict[str, float]:
    free = [i for i in range(len(models)) if models[i] != anchor]  # the anchor's coefficient is 0
    col = {m: j for j, m in enumerate(free)}
    X = np.zeros((len(y), len(free)))
    for r, (a, b) in enumerate(pairs):
        if a in col:
            X[r, col[a]] += math.log(BASE)
        if b in col:
            X[r, col[b]] -= math.log(BASE)
    beta = fit_logistic(X, y, n)
    coef = np.zeros(len(models))
    coef[free] = beta
    return {m: INIT + SCALE * coef[i] for i, m in enumerate(models)}


def fit(battles, anchor: str) -> dict[str, float]:
    models, pairs, y, n = _compress(battles)
    if anchor not in models:
        raise ValueError(f"anchor {anchor!r} is in no battle")
    return _fit(models, pairs, y, n, anchor)


def bootstrap(battles, anchor: str, rounds: int = 100, seed: int = 0) -> list[dict[str, float]]:
    """Resample battles with replacement (multinomial over the unique rows, same law as resampling rows)."""
    models, pairs, y, n = _compress(battles)
    rng = np.random.default_rng(seed)
    total = int(n.sum())
    out = []
    for _ in range(rounds):
        m = rng.multinomial(total, n / total).astype(float)
        keep = m > 0
        out.append(_fit(models, pairs[keep], y[keep], m[keep], anchor))
    return out


def win_rate(rating: float, baseline_rating: float) -> float:
    """Predicted probability (x100) of beating the baseline."""
    return 100.0 / (1.0 + BASE ** ((baseline_rating - rating) / SCALE))
