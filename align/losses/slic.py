from __future__ import annotations

from typing import Annotated

import torch

from align.losses.core import LossOutput, PairLogps, register, token_means


@register("slic", needs_reference=False)
def slic_loss(
    lp: PairLogps,
    delta: Annotated[float, "δ: margin of the hinge (the DGPO paper's Table 6 lists it as β = 1)"] = 1.0,
    nll_weight: Annotated[float, "λ: weight of the NLL term on the chosen answer"] = 1.0,
) -> LossOutput:
    """SLiC-HF (Zhao et al. 2023, calibration + regularisation): max(0, δ − log π(y_w|x) + log π(y_l|x)) + λ·NLL(y_w).

    The hinge is on summed log-probs; NLL(y_w) = −log π(y_w|x)/|y_w| per token, as TRL's CPOTrainer with
    ``loss_type="hinge"`` (β = 1/δ there; TRL averages the NLL over all chosen tokens of a batch: equal for one pair).
    """
    m_w, _ = token_means(lp)
    losses = torch.clamp(delta - lp.chosen + lp.rejected, min=0) - nll_weight * m_w
    return LossOutput(losses, lp.chosen.detach(), lp.rejected.detach())
