from __future__ import annotations

from typing import Annotated

from align.losses.core import LossOutput, PairLogps, register, require_reference


@register("ipo", needs_reference=True)
def ipo_loss(
    lp: PairLogps,
    tau: Annotated[float, "τ: regularisation; the log-ratio gap is pulled towards 1/(2τ)"] = 0.5,
    per_token: Annotated[bool, "average each log-ratio over its answer's tokens (TRL's DPOTrainer ipo) instead of "
                               "summing (the paper's Eq. 17)"] = False,
) -> LossOutput:
    """IPO (Azar et al. 2024, Eq. 17): (ρ_w − ρ_l − 1/(2τ))², ρ = log π(y|x) − log π_ref(y|x).

    Default: ρ summed over the answer's tokens, as the equation is written. TRL 1.16 divides each ρ by its
    answer's length first (``per_token=True`` reproduces it), a choice its code attributes to the IPO authors.
    """
    require_reference(lp, "ipo")
    rho_w = lp.chosen - lp.ref_chosen
    rho_l = lp.rejected - lp.ref_rejected
    if per_token:
        rho_w = rho_w / lp.chosen_tokens.clamp(min=1)
        rho_l = rho_l / lp.rejected_tokens.clamp(min=1)
    losses = (rho_w - rho_l - 1 / (2 * tau)) ** 2
    return LossOutput(losses, rho_w.detach(), rho_l.detach())
