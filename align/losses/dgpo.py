from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F

from align.losses.core import LossOutput, PairLogps, register


@register("dgpo", needs_reference=False, recipe="dgpo")
def dgpo_loss(
    lp: PairLogps,
    beta: Annotated[float, "β: scale of the weighted log-prob gap"] = 2.5,
    length_normalize: Annotated[bool, "per-token mean log-probs (true) or raw sums (the ablation: the weight underflows)"] = True,
    detach_weight: Annotated[bool, "stop the gradient through the weight π_w + π_l (ablation)"] = False,
) -> LossOutput:
    """DGPO (DGPO paper, Eqs. 10-13), reference-free: −log σ(β(π_w + π_l)(log π_w − log π_l)).

    Raw sequence probabilities underflow to 0 for any real answer, which zeroes the
    loss's signal, so by default log π is the per-token mean and the weight
    π_w + π_l = exp(logaddexp(m_w, m_l)) is computed in log space and kept in the graph.
    """
    m_w, m_l = lp.chosen, lp.rejected
    if length_normalize:
        m_w = m_w / lp.chosen_tokens.clamp(min=1)
        m_l = m_l / lp.rejected_tokens.clamp(min=1)
    weight = torch.exp(torch.logaddexp(m_w, m_l))
    if detach_weight:
        weight = weight.detach()
    losses = -F.logsigmoid(beta * weight * (m_w - m_l))
    extra = {"dgpo/weight": weight.detach().mean()}
    return LossOutput(losses, (beta * m_w).detach(), (beta * m_l).detach(), extra)
