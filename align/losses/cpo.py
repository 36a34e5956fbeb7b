from __future__ import annotations

from typing import Annotated

import torch.nn.functional as F

from align.losses.core import LossOutput, PairLogps, register, token_means


@register("cpo", needs_reference=False)
def cpo_loss(
    lp: PairLogps,
    beta: Annotated[float, "β: scale of the log-prob gap in the preference term"] = 0.01,
    alpha: Annotated[float, "α: weight of the NLL term on the chosen answer"] = 1.0,
) -> LossOutput:
    """CPO (Xu et al. 2024): −log σ(β log π(y_w|x) − β log π(y_l|x)) + α·NLL(y_w), reference-free.

    The preference term is the paper's Eq. 3 on summed log-probs; NLL(y_w) = −log π(y_w|x)/|y_w| per token,
    as in TRL's CPOTrainer (which averages over all chosen tokens of the batch: equal for one pair).
    """
    m_w, _ = token_means(lp)
    losses = -F.logsigmoid(beta * (lp.chosen - lp.rejected)) - alpha * m_w
    return LossOutput(losses, (beta * lp.chosen).detach(), (beta * lp.rejected).detach(), {"nll": -m_w.detach().mean()})
