from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F

from align.losses.core import LossOutput, PairLogps, register, require_reference


@register("dpop", needs_reference=True, recipe="smaug-dpop")
def dpop_loss(
    lp: PairLogps,
    beta: Annotated[float, "β of the DPO term"] = 0.3,
    dpop_lambda: Annotated[float, "λ: weight of the penalty on log π(y_w) falling below the reference"] = 50.0,
    form: Annotated[Literal["corrected", "printed"],
                    "corrected: λ·penalty inside β (the authors' form); printed: Smaug Eq. 3 exactly as printed"] = "corrected",
) -> LossOutput:
    """DPO-Positive (Pal et al. 2024, "Smaug", Eq. 3): DPO plus a penalty on the chosen answer losing likelihood.

    penalty = max(0, log π_ref(y_w|x) − log π(y_w|x)), zero while the policy keeps y_w at or above the reference.
    ``form="corrected"`` (default, the authors' released form): −log σ(β[(ρ_w − ρ_l) − λ·penalty]).
    ``form="printed"`` (Eq. 3 as printed in arXiv:2402.13228): the penalty sits outside log σ,
    −log σ(β(ρ_w − ρ_l)) + λ·penalty, so with λ = 50 it dominates the loss.
    """
    require_reference(lp, "dpop")
    rho_w = lp.chosen - lp.ref_chosen
    rho_l = lp.rejected - lp.ref_rejected
    penalty = torch.clamp(lp.ref_chosen - lp.chosen, min=0)
    if form == "corrected":
        losses = -F.logsigmoid(beta * ((rho_w - rho_l) - dpop_lambda * penalty))
    else:
        losses = -F.logsigmoid(beta * (rho_w - rho_l)) + dpop_lambda * penalty
    extra = {"dpop/penalty": penalty.detach().mean(), "dpop/penalty_active": (penalty > 0).float().mean()}
    return LossOutput(losses, (beta * rho_w).detach(), (beta * rho_l).detach(), extra)
