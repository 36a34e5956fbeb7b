from __future__ import annotations

from typing import Annotated

import torch.nn.functional as F

from align.losses.core import LossOutput, PairLogps, register, require_reference


@register("dpo", needs_reference=True, recipe="zephyr-dpo")
def dpo_loss(lp: PairLogps, beta: Annotated[float, "β: strength of the KL constraint to the reference"] = 0.1) -> LossOutput:
    """DPO (Rafailov et al. 2023, Eq. 7): −log σ(β(ρ_w − ρ_l)), ρ = log π(y|x) − log π_ref(y|x) summed over tokens."""
    require_reference(lp, "dpo")
    rho_w = lp.chosen - lp.ref_chosen
    rho_l = lp.rejected - lp.ref_rejected
    losses = -F.logsigmoid(beta * (rho_w - rho_l))
    return LossOutput(losses, (beta * rho_w).detach(), (beta * rho_l).detach())
