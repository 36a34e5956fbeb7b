"""DGPO's chosen log-prob trend against DPO's (the DGPO paper's Table 3 comparison).

Same base model, same optimiser; DPO (β 0.3 as in likelihood_displacement.py, reference = base) and DGPO (β 2.5,
reference-free, per-token mean log-probs) on
  * gsm8k-corrupt pairs (low edit distance; the runs are shared with
    likelihood_displacement.py when it has already run with the same settings), and
  * HH-RLHF harmless-base pairs (high edit distance, real human preferences).

    python experiments/preference_dynamics/dgpo_trend.py

Writes results/dgpo_trend.{json,png}.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402
from likelihood_displacement import COLORS, TRAIN, summary  # noqa: E402

HH_TRAIN = {**TRAIN, **common.HH_LENGTHS, "epochs": 2, "skip_invalid": True}  # ~128 pairs x 2 passes ~ 32 steps; prompts over max_length dropped
METHODS = {"dpo": dict(method="dpo", loss={"beta": 0.3}), "dgpo": dict(method="dgpo")}


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = common.base_model()
    datasets = {"gsm8k-corrupt": (common.gsm8k_pairs("train"), TRAIN, common.GSM8K_LENGTHS, "gsm8k"),
                "hh-rlhf-harmless": (common.hh_pairs(), HH_TRAIN, common.HH_LENGTHS, "hh")}
    result = {"base_model": str(base.relative_to(common.HERE)), "methods": METHODS, "datasets": {}}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (name, (data, train, lengths, tag)) in zip(axes, datasets.items()):
        c0, r0 = common.sequence_logps(base, data, lengths)
        per = {}
        for m, kw in METHODS.items():
            run = common.train_run(f"{tag}-{m}", base, data, **kw, **train)
            curve = common.displacement_curve(run, c0, r0)
            per[m] = {"final": summary(c0, r0, *common.sequence_logps(run, data, lengths)), "curve": curve}
            ax.plot(curve["step"], curve["chosen_minus_ref"], color=COLORS[m], label=f"{m} chosen")
            ax.plot(curve["step"], curve["rejected_minus_ref"], color=COLORS[m], ls="--", label=f"{m} rejected")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(f"{name}: log π(y|x) − log π_base(y|x)")
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=7)
        result["datasets"][name] = {"n_pairs": len(c0), "train": train, **per}
    fig.tight_layout()
    fig.savefig(common.RESULTS / "dgpo_trend.png", dpi=100)
    plt.close(fig)
    common.write_json(common.RESULTS / "dgpo_trend.json", result)
    for name, d in result["datasets"].items():
        for m in METHODS:
            s = d[m]["final"]
            print(f"{name:17s} {m:5s} Δchosen {s['delta_chosen']:8.2f}  Δrejected {s['delta_rejected']:8.2f}  "
                  f"acc {s['preference_accuracy_base']:.2f}->{s['preference_accuracy_final']:.2f}")


if __name__ == "__main__":
    main()
