"""Per-document metrics that replace lm-eval's where lm-eval's is undefined for some models."""
from __future__ import annotations

import math


def mc2_log_space(loglikelihoods, labels) -> float:
    """TruthfulQA MC2: the normalised probability mass on the true answers, computed as
    exp(logsumexp(ll_true) - logsumexp(ll_all)).

    lm-eval exponentiates first (exp(ll) / sum exp(ll)): below about -745 nats every exp
    is 0.0 and the ratio is 0/0 = NaN. The two are the same number wherever lm-eval's is finite.
    """
    ll = [float(x) for x in loglikelihoods]
    true = [x for x, y in zip(ll, labels) if int(y) == 1]
    if not true:
        return 0.0
    return math.exp(_logsumexp(true) - _logsumexp(ll))


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in xs))


def process_results_mc2(doc, results):
    """lm-eval ``process_results`` hook for truthfulqa_mc2 (same signature and key as lm-eval's own)."""
    ll = [r[0] for r in results]
    return {"acc": mc2_log_space(ll, doc["mc2_targets"]["labels"])}
