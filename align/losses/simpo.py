from __future__ import annotations

from typing import Annotated

import torch.nn.functional as F

from align.losses.core import LossOutput, PairLogps, register, token_means


@register("simpo", needs_reference=False, recipe="simpo")
def simpo_loss(
    lp: PairLogps,
    beta: Annotated[float, "β: scale of the length-normalised reward"] = 2.5,
    gamma: Annotated[float, "γ: target reward margin"] = 1.0,
) -> LossOutput:
    """SimPO (Meng et al. 2024, Eq. 6): −log σ(β/|y_w|·log π(y_w|x) − β/|y_l|·log π(y_l|x) − γ), reference-free."""
    m_w, m_l = token_means(lp)
    losses = -F.logsigmoid(beta * (m_w - m_l) - gamma)
    return LossOutput(losses, (beta * m_w).detach(), (beta * m_l).detach())
