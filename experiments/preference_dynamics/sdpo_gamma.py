"""sDPO's reference-model effect (Kim et al. 2024, Fig. 2) and easy-to-hard vs random chunks.

sDPO with T = 2 on the gsm8k-corrupt pairs (one source, so the two chunks are the
quantiles of the base model's margin log π(y_w|x) − log π(y_l|x); easy-to-hard puts the
larger margins first) and the paper's ablation with a random split. For each run the
γ_ref table of sdpo.json: mean γ = log π_ref(y_w|x) − log π_ref(y_l|x) of S (= M_0) and M_1
on each chunk; the paper's claim is that M_1 is a "more aligned" reference on chunk 2
(higher γ) than S. The final models are compared with plain DPO on all pairs (same
optimiser, same total number of optimizer steps) on held-out GSM8K test pairs.

    python experiments/preference_dynamics/sdpo_gamma.py

Writes results/sdpo_gamma.{json,png}.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402
from likelihood_displacement import TRAIN, summary  # noqa: E402

SDPO_TRAIN = {**TRAIN, "loss": {"beta": 0.1}}  # the sDPO recipe's DPO β
PAPER = {"gamma_chunk2_under_S": -38.60, "gamma_chunk2_under_M1": -25.10}


def run_sdpo(base, data, partition: str) -> dict:
    from align.config import build_config
    from align.sdpo import train_sdpo

    out = common.WORK / "runs" / f"sdpo-{partition}"
    cfg = build_config("tiny", model=str(base), data=[str(data)], output=str(out), progress=False, resume=True, **SDPO_TRAIN)
    state = train_sdpo(cfg, loss="dpo", steps=2, partition=partition)
    return {"output": out, "state": state}


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = common.base_model()
    data = common.gsm8k_pairs("train")
    held = common.gsm8k_pairs("test", n=64)
    h0 = common.sequence_logps(base, held, common.GSM8K_LENGTHS)
    result = {"paper": PAPER, "train": SDPO_TRAIN, "runs": {}}
    for partition in ("easy-to-hard", "random"):
        r = run_sdpo(base, data, partition)
        state = r["state"]
        table = {row["model"]: [c["gamma_mean"] for c in row["chunks"]] for row in state["gamma_ref"]}
        acc = {row["model"]: [c["reward_accuracy"] for c in row["chunks"]] for row in state["gamma_ref"]}
        result["runs"][partition] = {
            "chunks": [{k: c[k] for k in ("name", "size", "reward_accuracy_M0", "gamma_mean_M0")} for c in state["chunks"]],
            "gamma_mean": table, "reward_accuracy": acc,
            "gamma_chunk2_under_S": table["M_0 (S)"][1], "gamma_chunk2_under_M1": table["M_1"][1],
            "held_out": summary(*h0, *common.sequence_logps(r["output"], held, common.GSM8K_LENGTHS)),
        }
    # Plain DPO on all pairs with the same β and optimizer-step budget (sDPO: 2 steps x 1 epoch of half the data).
    dpo = common.train_run("gsm8k-dpo-beta0.1", base, data, method="dpo", **SDPO_TRAIN)
    result["runs"]["dpo (all at once)"] = {"held_out": summary(*h0, *common.sequence_logps(dpo, held, common.GSM8K_LENGTHS)),
                                           "optimizer_steps": json.loads((dpo / "run.json").read_text())["steps"]}
    common.write_json(common.RESULTS / "sdpo_gamma.json", result)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, partition in zip(axes, ("easy-to-hard", "random")):
        t = result["runs"][partition]["gamma_mean"]
        models = list(t)
        width = 0.8 / len(models)
        for k, m in enumerate(models):
            ax.bar([j + k * width for j in range(2)], t[m], width, label=m)
        ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(2)], ["chunk 1", "chunk 2"])
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylabel("mean γ = log π(y_w|x) − log π(y_l|x)")
        ax.set_title(f"sDPO, {partition} chunks")
        ax.legend(fontsize=8)
    fig.suptitle(f"γ of each model on each chunk (paper, chunk 2: S {PAPER['gamma_chunk2_under_S']}, "
                 f"M_1 {PAPER['gamma_chunk2_under_M1']})")
    fig.tight_layout()
    fig.savefig(common.RESULTS / "sdpo_gamma.png", dpi=100)
    plt.close(fig)
    for name, r in result["runs"].items():
        extra = f"  γ chunk2: S {r['gamma_chunk2_under_S']:.2f}  M_1 {r['gamma_chunk2_under_M1']:.2f}" if "gamma_mean" in r else ""
        h = r["held_out"]
        print(f"{name:18s} held-out acc {h['preference_accuracy_final']:.3f}  Δchosen {h['delta_chosen']:.2f}{extra}")


if __name__ == "__main__":
    main()
