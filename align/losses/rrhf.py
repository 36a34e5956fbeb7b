from __future__ import annotations

from typing import Annotated

import torch

from align.losses.core import LossOutput, PairLogps, register, token_means


@register("rrhf", needs_reference=False)
def rrhf_loss(
    lp: PairLogps,
    nll_weight: Annotated[float, "λ: weight of the NLL term on the chosen (best) answer"] = 1.0,
) -> LossOutput:
    """RRHF (Yuan et al. 2023) for two answers: max(0, p_l − p_w) + λ·NLL(y_w), p = log π(y|x)/|y|.

    The ranking loss is on length-normalised log-probs as in the paper; NLL(y_w) = −log π(y_w|x)/|y_w|,
    per token as in the authors' code. Not in TRL.
    """
    m_w, m_l = token_means(lp)
    losses = torch.clamp(m_l - m_w, min=0) - nll_weight * m_w
    return LossOutput(losses, m_w.detach(), m_l.detach())
