"""Loss values computed by hand, and gradient signs."""
import math

import pytest
import torch

from align.losses import LOSSES, PairLogps, get_loss
from align.losses.dgpo import dgpo_loss
from align.losses.dpo import dpo_loss
from align.losses.dpop import dpop_loss


def lp(c, r, rc=None, rr=None, nc=1, nr=1, grad=False):
    t = lambda x: torch.tensor([float(x)], requires_grad=grad)  # noqa: E731
    return PairLogps(t(c), t(r), torch.tensor([nc]), torch.tensor([nr]),
                     None if rc is None else t(rc), None if rr is None else t(rr))


def nls(x):  # -log sigmoid(x)
    return math.log1p(math.exp(-x))


def test_registry_says_which_losses_need_a_reference():
    assert get_loss("dpo").needs_reference and get_loss("dpop").needs_reference
    assert not get_loss("dgpo").needs_reference
    assert {"dpo", "dpop", "dgpo"} <= set(LOSSES)
    with pytest.raises(KeyError, match="unknown loss"):
        get_loss("ipo-typo")


def test_dpo_hand_computed():
    # rho_w = -10 - -11 = 1, rho_l = -12 - -11 = -1 -> beta*(2) = 0.2
    out = dpo_loss(lp(-10, -12, -11, -11), beta=0.1)
    assert out.losses.item() == pytest.approx(nls(0.2), abs=1e-6)
    assert out.chosen_rewards.item() == pytest.approx(0.1) and out.rejected_rewards.item() == pytest.approx(-0.1)


def test_dpop_penalty_inactive_equals_dpo():
    # policy chosen (-10) above reference (-11): penalty 0, DPOP == DPO at the same beta
    a = dpop_loss(lp(-10, -12, -11, -11), beta=0.3, dpop_lambda=50)
    b = dpo_loss(lp(-10, -12, -11, -11), beta=0.3)
    assert a.losses.item() == pytest.approx(b.losses.item(), abs=1e-7)
    assert a.extra["dpop/penalty"].item() == 0


def test_dpop_penalty_active_corrected_and_printed_forms():
    # chosen fell: ref_c=-10, c=-10.5 -> penalty 0.5; rho_w=-0.5, rho_l=-14+12=-2 -> margin 1.5
    corrected = dpop_loss(lp(-10.5, -14, -10, -12), beta=0.3, dpop_lambda=50).losses.item()
    # -log σ(0.3 * (1.5 - 25)) = -log σ(-7.05) = 7.050867
    assert corrected == pytest.approx(7.050867, abs=1e-5)
    # Smaug Eq. 3 as printed: -[log σ(β(ρ_w − ρ_l)) − λ·penalty] = -log σ(0.45) + 25 = 0.493249 + 25
    printed = dpop_loss(lp(-10.5, -14, -10, -12), beta=0.3, dpop_lambda=50, form="printed").losses.item()
    assert printed == pytest.approx(25.493249, abs=1e-5)
    # penalty inactive: both forms are DPO at the same β
    assert dpop_loss(lp(-10, -12, -11, -11), form="printed").losses.item() == pytest.approx(nls(0.3 * 2), abs=1e-6)


def test_dpop_printed_form_gradient_is_dpo_plus_lambda():
    # printed form: d/d log π(y_w) = -β σ(-β m) - λ while the penalty is active (the log σ term is DPO's)
    x = lp(-10.5, -14, -10, -12, grad=True)
    dpop_loss(x, beta=0.3, dpop_lambda=50, form="printed").losses.sum().backward()
    assert x.chosen.grad.item() == pytest.approx(-0.3 / (1 + math.exp(0.45)) - 50, abs=1e-5)
    assert x.rejected.grad.item() == pytest.approx(0.3 / (1 + math.exp(0.45)), abs=1e-6)


def test_dgpo_hand_computed_length_normalised():
    # summed -20 over 10 tokens -> -2; -30 over 10 -> -3. weight = e^-2 + e^-3
    out = dgpo_loss(lp(-20, -30, nc=10, nr=10), beta=2.5)
    w = math.exp(-2) + math.exp(-3)
    assert out.losses.item() == pytest.approx(nls(2.5 * w * 1.0), abs=1e-6)
    raw = dgpo_loss(lp(-2, -3), beta=2.5, length_normalize=False).losses.item()
    assert raw == pytest.approx(out.losses.item(), abs=1e-6)


@pytest.mark.parametrize("name,kw", [("dpo", {}), ("dpop", {}), ("dpop", {"form": "printed"}), ("dgpo", {}),
                                     ("dgpo", {"detach_weight": True})])
@pytest.mark.parametrize("chosen", [-9.0, -12.0])  # DPOP penalty off / on
def test_raising_chosen_logp_lowers_loss(name, kw, chosen):
    x = lp(chosen, -12, -10, -11, nc=3, nr=3, grad=True)
    get_loss(name).fn(x, **kw).losses.sum().backward()
    assert x.chosen.grad.item() < 0
    assert x.rejected.grad.item() > 0


def test_dgpo_keeps_gradient_on_500_token_answers():
    # 500 tokens at ~-2.3 nats each: the raw sequence probability is e^-1150 = 0 in fp32.
    x = lp(-1150.0, -1300.0, nc=500, nr=500, grad=True)
    dgpo_loss(x, beta=2.5).losses.sum().backward()
    g = x.chosen.grad.item()
    assert math.isfinite(g) and g < -1e-6
    # The ablation without length normalisation underflows: the weight is 0 and so is the signal.
    y = lp(-1150.0, -1300.0, nc=500, nr=500, grad=True)
    out = dgpo_loss(y, beta=2.5, length_normalize=False)
    out.losses.sum().backward()
    assert out.extra["dgpo/weight"].item() == 0.0 and y.chosen.grad.item() == 0.0
