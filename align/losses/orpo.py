from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F

from align.losses.core import LossOutput, PairLogps, register, token_means


def log1mexp(x):
    """log(1 − eˣ) for x < 0 without cancellation (branch at −ln 2)."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


@register("orpo", needs_reference=False)
def orpo_loss(
    lp: PairLogps,
    or_weight: Annotated[float, "λ: weight of the odds-ratio term"] = 1.0,
) -> LossOutput:
    """ORPO (Hong et al. 2024, Eqs. 6-7): NLL(y_w) − λ·log σ(log odds(y_w) − log odds(y_l)),
    odds(y) = P(y|x)/(1 − P(y|x)) with P = exp(per-token mean log π(y|x)).

    NLL(y_w) = −log π(y_w|x)/|y_w| over the answer tokens. TRL 1.16's ORPOTrainer differs there: its NLL
    covers prompt + answer tokens, averaged over the whole batch; its odds-ratio term is the same (λ is its ``beta``).
    """
    m_w, m_l = token_means(lp)
    log_odds = (m_w - m_l) - (log1mexp(m_w) - log1mexp(m_l))
    losses = -m_w - or_weight * F.logsigmoid(log_odds)
    return LossOutput(losses, (or_weight * m_w).detach(), (or_weight * m_l).detach(),
                      {"orpo/log_odds": log_odds.detach().mean()})
