"""Paired bootstrap of a difference from the base row, on per-item scores kept in the raw output."""
from __future__ import annotations

import math

import numpy as np

N_RESAMPLES = 2000
SEED = 0  # fixed: regeneration is byte-identical


def _groups(ids: list) -> list[str]:
    # "subject/doc" ids (MMLU) are resampled within their subject and the score is the mean of subject means.
    return [str(i).rpartition("/")[0] for i in ids]


def aligned(base: list, run: list) -> tuple[list, np.ndarray, np.ndarray] | None:
    """Items both have, in one order; None when the runs were not scored on the same items."""
    b = {str(i): v for i, v in base if v is not None}
    r = {str(i): v for i, v in run if v is not None}
    if not b or set(b) != set(r):
        return None
    ids = sorted(b)
    return ids, np.array([b[i] for i in ids], float), np.array([r[i] for i in ids], float)


def paired_bootstrap(ids: list, base: np.ndarray, run: np.ndarray, *, n: int = N_RESAMPLES,
                     seed: int = SEED) -> tuple[float, float, float]:
    """(observed difference, 2.5 % and 97.5 % bootstrap quantiles) of score(run) - score(base).

    The score is the mean over items, or the mean of group means when ids are "group/item"."""
    rng = np.random.default_rng(seed)
    diff = run - base
    groups = _groups(ids)
    names = sorted(set(groups))
    idx = {g: np.array([k for k, x in enumerate(groups) if x == g]) for g in names}
    observed = float(np.mean([diff[idx[g]].mean() for g in names]))
    stats = np.zeros(n)
    for g in names:
        d = diff[idx[g]]
        stats += d[rng.integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    stats /= len(names)
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return observed, float(lo), float(hi)


def significant(base: list, run: list) -> bool | None:
    """True when the paired bootstrap's 95 % interval of the difference excludes 0; None if not testable."""
    found = aligned(base, run)
    if found is None:
        return None
    ids, b, r = found
    _, lo, hi = paired_bootstrap(ids, b, r)
    return bool(lo > 0 or hi < 0)


def mean_std(xs: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (over seeds)."""
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
