from __future__ import annotations

from align.losses.core import LossOutput, PairLogps, register, token_means


@register("sft", needs_reference=False)
def sft_loss(lp: PairLogps) -> LossOutput:
    """SFT: negative log-likelihood of the chosen answer per token, −log π(y_w|x)/|y_w|; the rejected answer is unused.

    The DGPO paper's SFT baseline. Per token, as TRL's SFT and DPOTrainer ``loss_type="sft"`` (which average
    over all chosen tokens of a batch rather than per answer: the same for one pair or equal lengths).
    Rewards logged: the per-token mean log-probs.
    """
    m_w, m_l = token_means(lp)
    return LossOutput(-m_w, m_w.detach(), m_l.detach())
