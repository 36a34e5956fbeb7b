"""Likelihood displacement on low-edit-distance pairs (DPOP paper, Pal et al. 2024, Figs. 3 and 5).

Claim tested: on pairs that differ in a few tokens, DPO lowers log π(y_w|x) of the
preferred answer (while widening the margin), DPOP keeps it at or above the reference.
DGPO (reference-free) is run on the same pairs for comparison.

    python experiments/preference_dynamics/likelihood_displacement.py

Writes results/likelihood_displacement.{json,png} and results/first_difference_tokens.png.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402

# Same optimiser for all three; β 0.3 for DPO and DPOP (the DPOP paper's setting) so the
# only difference between them is the penalty term (λ = 50); DGPO keeps its β = 2.5.
TRAIN = dict(lr=5e-4, epochs=1, batch_size=8, logging_steps=1, save_steps=10_000, ref_batch_size=32, **common.GSM8K_LENGTHS)
METHODS = {"dpo": dict(method="dpo", loss={"beta": 0.3}), "dpop": dict(method="dpop", loss={"beta": 0.3, "dpop_lambda": 50.0}),
           "dgpo": dict(method="dgpo")}
COLORS = {"dpo": "tab:red", "dpop": "tab:green", "dgpo": "tab:blue"}
OFFSETS = range(-4, 13)  # tokens around the first differing token
N_TOKEN_PAIRS = 96


def runs(base, data) -> dict:
    return {m: common.train_run(f"gsm8k-{m}", base, data, **kw, **TRAIN) for m, kw in METHODS.items()}


def summary(c0, r0, c1, r1) -> dict:
    return {"chosen_base": c0.mean().item(), "chosen_final": c1.mean().item(), "delta_chosen": (c1 - c0).mean().item(),
            "rejected_base": r0.mean().item(), "rejected_final": r1.mean().item(), "delta_rejected": (r1 - r0).mean().item(),
            "share_chosen_below_base": (c1 < c0).float().mean().item(),
            "preference_accuracy_base": (c0 > r0).float().mean().item(),
            "preference_accuracy_final": (c1 > r1).float().mean().item()}


def around_first_difference(base, finals: dict, data) -> dict:
    """Mean change (final − base) of per-token log-probs at offsets from the first token where
    chosen and rejected differ, as in the DPOP paper's Fig. 3 (right)."""
    encoded, pad = common.encode(base, data, common.GSM8K_LENGTHS)
    encoded = encoded[:N_TOKEN_PAIRS]
    firsts = [common.first_difference(e.chosen_ids, e.rejected_ids) for e in encoded]
    before = common.token_logps(base, encoded, pad)
    out = {"offsets": list(OFFSETS), "n_pairs": len(encoded)}
    base_curve = {"chosen": [], "rejected": []}
    for side, s in (("chosen", 0), ("rejected", 1)):
        for off in OFFSETS:
            vals = [before[i][s][k + off] for i, k in enumerate(firsts) if k is not None and 0 <= k + off < len(before[i][s])]
            base_curve[side].append(sum(vals) / max(len(vals), 1))
    out["base"] = base_curve
    for name, path in finals.items():
        after = common.token_logps(path, encoded, pad)
        out[name] = {}
        for side, s in (("chosen", 0), ("rejected", 1)):
            curve = []
            for off in OFFSETS:
                vals = [after[i][s][k + off] - before[i][s][k + off] for i, k in enumerate(firsts)
                        if k is not None and 0 <= k + off < len(before[i][s])]
                curve.append(sum(vals) / max(len(vals), 1))
            out[name][side] = curve
    return out


def plot_curves(curves: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m, c in curves.items():
        axes[0].plot(c["step"], c["chosen"], color=COLORS[m], label=f"{m} chosen")
        axes[0].plot(c["step"], c["rejected"], color=COLORS[m], ls="--", label=f"{m} rejected")
        axes[1].plot(c["step"], c["chosen_minus_ref"], color=COLORS[m], label=f"{m} chosen")
        axes[1].plot(c["step"], c["rejected_minus_ref"], color=COLORS[m], ls="--", label=f"{m} rejected")
    axes[0].set_title("log π(y|x) of each step's batch (summed)")
    axes[1].set_title("log π(y|x) − log π_ref(y|x), same pairs")
    axes[1].axhline(0, color="k", lw=0.6)
    for ax in axes:
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=7)
    fig.suptitle("gsm8k-corrupt pairs (one intermediate result changed): DPO vs DPOP vs DGPO")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def plot_tokens(tok: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, side in zip(axes, ("chosen", "rejected")):
        for m in METHODS:
            ax.plot(tok["offsets"], tok[m][side], marker="o", ms=3, color=COLORS[m], label=m)
        ax.axvline(0, color="k", lw=0.6, ls=":")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(f"{side}: change of per-token log-prob vs base")
        ax.set_xlabel("token offset from the first differing token")
        ax.legend(fontsize=8)
    fig.suptitle(f"Per-token log-prob change around the first difference ({tok['n_pairs']} pairs)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main() -> None:
    base = common.base_model()
    data = common.gsm8k_pairs("train")
    held = common.gsm8k_pairs("test", n=64)
    finals = runs(base, data)
    c0, r0 = common.sequence_logps(base, data, common.GSM8K_LENGTHS)
    h0 = common.sequence_logps(base, held, common.GSM8K_LENGTHS)
    result = {"base_model": str(base.relative_to(common.HERE)), "train": TRAIN, "methods": METHODS, "curves": {},
              "train_pairs": {}, "held_out_pairs": {}}
    for m, run in finals.items():
        result["curves"][m] = common.displacement_curve(run, c0, r0)
        result["train_pairs"][m] = summary(c0, r0, *common.sequence_logps(run, data, common.GSM8K_LENGTHS))
        result["held_out_pairs"][m] = summary(*h0, *common.sequence_logps(run, held, common.GSM8K_LENGTHS))
    result["first_difference"] = around_first_difference(base, finals, data)
    common.write_json(common.RESULTS / "likelihood_displacement.json", result)
    plot_curves(result["curves"], common.RESULTS / "likelihood_displacement.png")
    plot_tokens(result["first_difference"], common.RESULTS / "first_difference_tokens.png")
    for split in ("train_pairs", "held_out_pairs"):
        for m, s in result[split].items():
            print(f"{split:15s} {m:5s} Δchosen {s['delta_chosen']:8.2f}  Δrejected {s['delta_rejected']:8.2f}  "
                  f"acc {s['preference_accuracy_base']:.2f}->{s['preference_accuracy_final']:.2f}")


if __name__ == "__main__":
    main()
