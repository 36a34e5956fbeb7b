"""The DGPO paper's baselines as losses: values worked out by hand on one pair, gradient signs,
the KTO reference point, and each method training on the tiny model."""
from __future__ import annotations

import json
import math

import pytest
import torch

from tests.conftest import train_two_processes
from align.losses import LOSSES, PairLogps, get_loss


def t(x, grad=False):
    return torch.tensor([float(x)], requires_grad=grad)


def pair(c, r, rc=None, rr=None, nc=3, nr=4, grad=False, kl=(0.0, 0.0)):
    """One pair. kl: log π − log π_ref of the mismatched (prompt, chosen) and (prompt, rejected) pairs."""
    lp = PairLogps(t(c, grad), t(r, grad), torch.tensor([nc]), torch.tensor([nr]),
                   None if rc is None else t(rc), None if rr is None else t(rr))
    lp.mismatched_chosen, lp.mismatched_rejected = t(-5.0 + kl[0], grad), t(-6.0 + kl[1], grad)
    lp.ref_mismatched_chosen, lp.ref_mismatched_rejected = t(-5.0), t(-6.0)
    return lp


# Pair A: log π(y_w) = -6 over 3 tokens (mean -2), log π(y_l) = -12 over 4 tokens (mean -3);
# reference -7 and -10, so ρ_w = 1, ρ_l = -2.
A = dict(c=-6, r=-12, rc=-7, rr=-10)
# Pair B: the chosen answer is less likely per token (mean -3) than the rejected one (mean -2).
B = dict(c=-9, r=-8, rc=-9, rr=-8)

HAND = [
    ("sft", A, {}, 2.0),  # -(-6/3)
    ("ipo", A, {}, 4.0),  # (1 - (-2) - 1/(2·0.5))^2 = 2^2
    ("ipo", A, {"per_token": True}, 1 / 36),  # (1/3 + 2/4 - 1)^2 = (-1/6)^2
    ("ipo", A, {"tau": 0.25}, 1.0),  # (3 - 2)^2
    ("cpo", A, {}, 2.6635971),  # -log σ(0.01·(−6 + 12)) + 1·2
    ("cpo", B, {}, 3.6981597),  # -log σ(0.01·(−9 + 8)) + 3
    ("rrhf", A, {}, 2.0),  # max(0, -3 - (-2)) = 0, + NLL 2
    ("rrhf", B, {}, 4.0),  # max(0, -2 - (-3)) = 1, + NLL 3
    ("rrhf", B, {"nll_weight": 0.0}, 1.0),
    ("slic", A, {}, 2.0),  # max(0, 1 + 6 - 12) = 0, + NLL 2
    ("slic", B, {}, 5.0),  # max(0, 1 + 9 - 8) = 2, + NLL 3
    ("slic", B, {"delta": 0.0, "nll_weight": 0.5}, 2.5),  # max(0, 1) + 0.5·3
    # log odds = (−2 − (−3)) − (log(1 − e^−2) − log(1 − e^−3)) = 1.0943443; NLL 2 − log σ(1.0943443)
    ("orpo", A, {}, 2.2887508),
    ("simpo", A, {}, 0.2014133),  # -log σ(2.5·(−2 − (−3)) − 1) = -log σ(1.5)
    ("simpo", A, {"beta": 1.0, "gamma": 0.0}, math.log1p(math.exp(-1.0))),
]


@pytest.mark.parametrize("name,p,kw,expected", HAND, ids=[f"{n}-{i}" for i, (n, *_) in enumerate(HAND)])
def test_hand_computed_losses(name, p, kw, expected):
    assert get_loss(name).fn(pair(**p), **kw).losses.item() == pytest.approx(expected, abs=1e-6)


def test_kto_reference_point_from_mismatched_pairs():
    kto = get_loss("kto").fn
    # mismatched log-ratios 0.4 and 0.2 -> z = 0.3; β = 0.5:
    # ½[(1 − σ(0.5·(1 − 0.3))) + (1 − σ(0.5·(0.3 + 2)))] = ½[0.4133824 + 0.2404891]
    out = kto(pair(**A, kl=(0.4, 0.2)), beta=0.5)
    assert out.losses.item() == pytest.approx(0.3269358, abs=1e-6) and out.extra["kto/z"].item() == pytest.approx(0.3)
    # a negative KL estimate is clamped to 0: ½[(1 − σ(0.5)) + (1 − σ(1))]
    assert kto(pair(**A, kl=(-0.4, -0.2)), beta=0.5).losses.item() == pytest.approx(0.3232410, abs=1e-6)
    w = kto(pair(**A, kl=(0.4, 0.2)), beta=0.5, desirable_weight=2.0, undesirable_weight=0.0).losses.item()
    assert w == pytest.approx(0.4133824, abs=1e-6)
    # no gradient through z
    x = pair(**A, kl=(0.4, 0.2), grad=True)
    kto(x, beta=0.5).losses.sum().backward()
    assert x.mismatched_chosen.grad is None and x.mismatched_rejected.grad is None
    with pytest.raises(ValueError, match="mismatched"):
        kto(PairLogps(t(-1), t(-2), torch.tensor([1]), torch.tensor([1]), t(-1), t(-2)))
    assert get_loss("kto").needs == ("mismatched",)


def test_registry_declares_reference_needs():
    need = {n for n, s in LOSSES.items() if s.needs_reference}
    assert need == {"dpo", "dpop", "ipo", "kto"}
    assert {"sft", "ipo", "cpo", "kto", "rrhf", "slic", "orpo", "simpo"} <= set(LOSSES)
    table6 = {"ipo": {"tau": 0.5}, "cpo": {"alpha": 1.0, "beta": 0.01},
              "kto": {"desirable_weight": 1.0, "undesirable_weight": 1.0, "beta": 0.01}, "rrhf": {"nll_weight": 1.0},
              "slic": {"delta": 1.0, "nll_weight": 1.0}, "orpo": {"or_weight": 1.0}, "simpo": {"beta": 2.5, "gamma": 1.0}}
    for name, defaults in table6.items():  # DGPO paper, Table 6
        assert {k: v for k, v in get_loss(name).defaults.items() if k in defaults} == defaults, name


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_signs_at_the_reference(name):
    """Policy = reference, chosen less likely per token than rejected: every loss pushes log π(y_w) up
    (d loss / d log π(y_w) < 0) and log π(y_l) down (> 0); SFT leaves y_l alone."""
    x = pair(**B, grad=True)
    get_loss(name).fn(x).losses.sum().backward()
    assert x.chosen.grad.item() < 0
    if name == "sft":
        assert x.rejected.grad is None or x.rejected.grad.item() == 0
    else:
        assert x.rejected.grad.item() > 0


def test_ipo_pushes_back_past_its_target():
    x = pair(**A, grad=True)  # gap ρ_w − ρ_l = 3 > 1/(2τ) = 1
    get_loss("ipo").fn(x).losses.sum().backward()
    assert x.chosen.grad.item() == pytest.approx(2 * 2.0) and x.rejected.grad.item() == pytest.approx(-4.0)


# ------------------------------------------------------------------ training
from tests.test_trainer import cfg, margin  # noqa: E402  (the trainer tests' helpers; prefs is a conftest fixture)

ZOO = ["sft", "ipo", "cpo", "kto", "rrhf", "slic", "orpo", "simpo"]


@pytest.mark.parametrize("method", ZOO)
def test_each_method_trains_and_raises_the_margin(tiny_model, prefs, tmp_path, method):  # noqa: F811
    import json

    from align.trainer import train

    out = tmp_path / method
    run = train(cfg(tiny_model, prefs, out, method=method, max_steps=8, save_steps=100))
    assert run["completed"] and run["loss"]["name"] == method
    assert margin(out, prefs, tiny_model) > margin(tiny_model, prefs, tiny_model) + 0.1
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(math.isfinite(r["loss"]) for r in rows)
    if method == "kto":  # the reference point is logged, ≥ 0, and has moved off 0 once the policy moved
        assert all(r["kto/z"] >= 0 for r in rows) and (run["reference_cache"] is not None)


def test_kto_under_accelerate_two_processes_matches_one(tiny_model, prefs, tmp_path):  # noqa: F811
    """KTO's extra inputs (mismatched pairs) under `accelerate launch` with 2 CPU processes: its reference point
    covers the whole micro-batch, so training equals one process with the same global batch."""
    from safetensors.torch import load_file

    from align.trainer import train

    one = tmp_path / "one"
    train(cfg(tiny_model, prefs, one, method="kto", batch_size=8, max_steps=3, save_steps=100))
    two = tmp_path / "two"
    r = train_two_processes(tiny_model, prefs, two, "kto")
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    z1 = [json.loads(x)["kto/z"] for x in (one / "metrics.jsonl").read_text().splitlines()]
    z2 = [json.loads(x)["kto/z"] for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert z1 == pytest.approx(z2, abs=1e-5)
