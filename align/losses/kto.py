from __future__ import annotations

from typing import Annotated

import torch

from align.losses.core import LossOutput, PairLogps, register, require_reference


@register("kto", needs_reference=True, needs=("mismatched",))
def kto_loss(
    lp: PairLogps,
    beta: Annotated[float, "β: scale of the implied reward"] = 0.01,
    desirable_weight: Annotated[float, "λ_D (λ_w): weight of the chosen (desirable) answer's term"] = 1.0,
    undesirable_weight: Annotated[float, "λ_U (λ_l): weight of the rejected (undesirable) answer's term"] = 1.0,
) -> LossOutput:
    """KTO (Ethayarajh et al. 2024, Eq. 7) on paired data: each pair gives a desirable example (y_w) and an
    undesirable one (y_l); the pair's loss is the mean of their two losses,
    ½[λ_D(1 − σ(β(ρ_w − z))) + λ_U(1 − σ(β(z − ρ_l)))], ρ = log π(y|x) − log π_ref(y|x).

    The reference point z = max(0, mean(log π(y'|x) − log π_ref(y'|x))) over mismatched pairs (each prompt with
    another pair's answers, both of them), without gradient, as TRL's KTOTrainer estimates it.
    """
    require_reference(lp, "kto")
    if lp.mismatched_chosen is None or lp.ref_mismatched_chosen is None:
        raise ValueError("loss 'kto' needs log-probs of mismatched prompt/answer pairs")
    kl = torch.cat([lp.mismatched_chosen - lp.ref_mismatched_chosen, lp.mismatched_rejected - lp.ref_mismatched_rejected])
    z = kl.detach().mean().clamp(min=0)
    rho_w = lp.chosen - lp.ref_chosen
    rho_l = lp.rejected - lp.ref_rejected
    losses = 0.5 * (desirable_weight * (1 - torch.sigmoid(beta * (rho_w - z)))
                    + undesirable_weight * (1 - torch.sigmoid(beta * (z - rho_l))))
    return LossOutput(losses, (beta * rho_w).detach(), (beta * rho_l).detach(), {"kto/z": z})
