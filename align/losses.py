"""Preference losses: pure functions of per-sequence log-probs, registered by name.

Each takes a ``PairLogps`` plus its hyperparameters and returns a ``LossOutput``
with per-pair losses and the implicit rewards that the trainer logs. The trainer
looks losses up here and knows nothing about any one of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass
class PairLogps:
    chosen: torch.Tensor  # summed log π(y_w|x), [B]
    rejected: torch.Tensor  # summed log π(y_l|x), [B]
    chosen_tokens: torch.Tensor  # answer token counts, [B]
    rejected_tokens: torch.Tensor
    ref_chosen: torch.Tensor | None = None  # summed log π_ref(y_w|x), [B]
    ref_rejected: torch.Tensor | None = None


@dataclass
class LossOutput:
    losses: torch.Tensor  # [B]
    chosen_rewards: torch.Tensor  # [B], detached
    rejected_rewards: torch.Tensor  # [B], detached
    extra: dict[str, torch.Tensor] | None = None  # method-specific metrics (scalars)


@dataclass(frozen=True)
class LossSpec:
    fn: Callable[..., LossOutput]
    needs_reference: bool
    defaults: dict


LOSSES: dict[str, LossSpec] = {}


def register(name: str, *, needs_reference: bool, **defaults):
    def wrap(fn):
        LOSSES[name] = LossSpec(fn, needs_reference, defaults)
        return fn

    return wrap


def get_loss(name: str) -> LossSpec:
    if name not in LOSSES:
        raise KeyError(f"unknown loss '{name}'; registered: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]


def _require_reference(lp: PairLogps, name: str):
    if lp.ref_chosen is None or lp.ref_rejected is None:
        raise ValueError(f"loss '{name}' needs reference log-probs")


@register("dpo", needs_reference=True, beta=0.1)
def dpo_loss(lp: PairLogps, beta: float = 0.1) -> LossOutput:
    """DPO (Rafailov et al. 2023, eq. 7): -log σ(β[(ρ_w) − (ρ_l)]), ρ = log π − log π_ref."""
    _require_reference(lp, "dpo")
    rho_w = lp.chosen - lp.ref_chosen
    rho_l = lp.rejected - lp.ref_rejected
    losses = -F.logsigmoid(beta * (rho_w - rho_l))
    return LossOutput(losses, (beta * rho_w).detach(), (beta * rho_l).detach())


@register("dpop", needs_reference=True, beta=0.3, dpop_lambda=50.0, penalty_inside_beta=True)
def dpop_loss(lp: PairLogps, beta: float = 0.3, dpop_lambda: float = 50.0, penalty_inside_beta: bool = True) -> LossOutput:
    """DPO-Positive (Pal et al. 2024, "Smaug").

    penalty = max(0, log π_ref(y_w) − log π(y_w)): positive only when the policy
    has pushed the chosen answer below the reference.
    Corrected form (default): -log σ(β[(ρ_w − ρ_l) − λ·penalty]).
    As first printed (``penalty_inside_beta=False``): -log σ(β(ρ_w − ρ_l) − λ·penalty).
    """
    _require_reference(lp, "dpop")
    rho_w = lp.chosen - lp.ref_chosen
    rho_l = lp.rejected - lp.ref_rejected
    penalty = torch.clamp(lp.ref_chosen - lp.chosen, min=0)
    if penalty_inside_beta:
        logits = beta * ((rho_w - rho_l) - dpop_lambda * penalty)
    else:
        logits = beta * (rho_w - rho_l) - dpop_lambda * penalty
    losses = -F.logsigmoid(logits)
    extra = {"dpop/penalty": penalty.detach().mean(), "dpop/penalty_active": (penalty > 0).float().mean()}
    return LossOutput(losses, (beta * rho_w).detach(), (beta * rho_l).detach(), extra)


@register("dgpo", needs_reference=False, beta=2.5, length_normalize=True, detach_weight=False)
def dgpo_loss(lp: PairLogps, beta: float = 2.5, length_normalize: bool = True, detach_weight: bool = False) -> LossOutput:
    """DGPO, reference-free: -log σ(β(π_w + π_l)(log π_w − log π_l)).

    Raw sequence probabilities underflow to 0 for any real answer, which zeroes the
    loss's signal, so by default log π is the per-token mean and the weight
    π_w + π_l = exp(logaddexp(m_w, m_l)) is computed in log space and kept in the
    graph. ``length_normalize=False`` and ``detach_weight=True`` are the ablations.
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
