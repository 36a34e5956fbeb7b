"""sDPO in the paper's own setting (Kim et al. 2024): two sources, ordered easy-to-hard by the base
model's preference accuracy per source, against random chunks and against DPO on all data.

Sources: arithmetic-short and gsm8k-corrupt (N_PER_SOURCE training pairs each). sDPO runs T = 2
steps (one per chunk), each EPOCHS passes over its chunk with the previous model as reference;
DPO sees both sources at once for EPOCHS passes. Every arm takes the same number of pair
gradients and optimizer steps, with the same optimiser, β and seeds. Measured: the γ table of the
paper's Fig. 2 (mean log π(y_w|x) − log π(y_l|x) of S = M_0 and M_1 on each chunk), and the final
model's held-out preference accuracy and Δ chosen log-prob per source.

    python experiments/preference_dynamics/sdpo.py

Writes results/sdpo.json (row by row; a re-run skips rows already there) and results/sdpo.png.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402

N_PER_SOURCE = 128
EPOCHS = 1  # per sDPO chunk, and for DPO on all data: 256 pair gradients, 32 optimizer steps each arm
SEEDS = [0, 1, 2]
LOSS = ("dpo", {"beta": 0.1})  # the sDPO recipe (Zephyr's DPO β)
# (label, sDPO partition or None for DPO on all data, order of the --data sources)
ARMS = [
    ("sdpo easy-to-hard", "easy-to-hard", ("arithmetic", "gsm8k")),
    ("sdpo random", "random", ("arithmetic", "gsm8k")),
    ("sdpo hard-to-easy", "given", ("gsm8k", "arithmetic")),  # the reverse order, a control
    ("dpo all data", None, ("arithmetic", "gsm8k")),
]
PAPER = {"gamma_chunk2_under_S": -38.6, "gamma_chunk2_under_M1": -25.1, "table_3_H4_easy_to_hard": 74.31,
         "table_3_H4_random": 72.56}
OUT = common.RESULTS / "sdpo.json"


def sources() -> dict:
    gsm_train, gsm_held = common.DATASETS["gsm8k-corrupt"](N_PER_SOURCE)
    ari_train, ari_held = common.DATASETS["arithmetic-short"](N_PER_SOURCE)
    return {"arithmetic": (ari_train, ari_held), "gsm8k": (gsm_train, gsm_held)}


def run_arm(base: Path, src: dict, label: str, partition: str | None, order: tuple, seed: int) -> tuple[Path, dict | None]:
    from align.sdpo import train_sdpo

    method, loss = LOSS
    out = common.WORK / "runs" / "sdpo" / label.replace(" ", "_") / f"seed{seed}"
    settings = dict(model=str(base), data=[f"{s}={src[s][0]}" for s in order], output=str(out), epochs=EPOCHS,
                    seed=seed, save_steps=10_000, logging_steps=1, ref_batch_size=64, progress=False, skip_invalid=True,
                    **common.OPTIM, **common.LENGTHS)
    if partition is None:
        return common.train_run(common.make_config(method, loss, **settings)), None
    cfg = common.make_config(method, loss, resume=True, **settings)
    return out, train_sdpo(cfg, loss=method, partition=partition)


def measure(result: dict) -> None:
    base = common.arithmetic_sft_model(N_PER_SOURCE)  # the pre-trained base is at chance on arithmetic-short
    result["base_model"] = base.name
    src = sources()
    probes = {s: common.Probe(base, held) for s, (_, held) in src.items()}
    result["base"] = {s: {"train": common.Probe(base, tr).base_stats(), "held_out": probes[s].base_stats()}
                      for s, (tr, _) in src.items()}
    for label, partition, order in ARMS:
        for seed in SEEDS:
            key = f"{label} | seed {seed}"
            if key in result["rows"]:
                continue
            out, state = run_arm(base, src, label, partition, order, seed)
            row = {"label": label, "partition": partition, "seed": seed,
                   "optimizer_steps": json.loads((out / "run.json").read_text())["steps"],
                   "pairs_seen": json.loads((out / "run.json").read_text())["pairs_seen"],
                   "held_out": {s: p.summary(*p.logps(out / "model.safetensors")) for s, p in probes.items()}}
            if state is not None:
                row["chunks"] = [{"name": c["name"], "size": c["size"], "sources": c["sources"],
                                  "acc_M0": c["reward_accuracy_M0"], "gamma_M0": c["gamma_mean_M0"]} for c in state["chunks"]]
                row["gamma"] = {g["model"]: [c["gamma_mean"] for c in g["chunks"]] for g in state["gamma_ref"]}
            result["rows"][key] = row
            common.save_rows(OUT, result)
            print(key, {s: round(h["acc"], 3) for s, h in row["held_out"].items()}, row.get("gamma"), flush=True)


def summarise(result: dict) -> None:
    summary = {}
    for label, partition, _ in ARMS:
        runs = [r for r in result["rows"].values() if r["label"] == label]
        if not runs:
            continue
        s = {"n_seeds": len(runs), "optimizer_steps": sorted({r["optimizer_steps"] for r in runs}),
             "pairs_seen": sorted({r["pairs_seen"] for r in runs}), "held_out": {}}
        for source in runs[0]["held_out"]:
            s["held_out"][source] = {k: common.mean_std([r["held_out"][source][k] for r in runs])
                                     for k in ("acc", "d_chosen", "d_chosen_per_token")}
        s["held_out"]["mean acc (both sources)"] = common.mean_std(
            [sum(h["acc"] for h in r["held_out"].values()) / len(r["held_out"]) for r in runs])
        if partition is not None:
            s["chunk_order"] = [[c["name"] for c in r["chunks"]] for r in runs]
            s["gamma_chunk2"] = {m: common.mean_std([r["gamma"][m][1] for r in runs]) for m in runs[0]["gamma"]}
            s["gamma_chunk1"] = {m: common.mean_std([r["gamma"][m][0] for r in runs]) for m in runs[0]["gamma"]}
            s["gamma_chunk2_gain_M1_over_S"] = common.mean_std([r["gamma"]["M_1"][1] - r["gamma"]["M_0 (S)"][1] for r in runs])
        summary[label] = s
    result["summary"] = summary


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in result["summary"] if "gamma_chunk2" in result["summary"][a]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / max(1, len(arms))
    models = ["M_0 (S)", "M_1", "M_2"]
    for k, arm in enumerate(arms):
        s = result["summary"][arm]["gamma_chunk2"]
        axes[0].bar([j + k * width for j in range(3)], [s[m]["mean"] for m in models], width,
                    yerr=[s[m]["std"] for m in models], label=arm, capsize=3)
    axes[0].set_xticks([j + width * (len(arms) - 1) / 2 for j in range(3)], models)
    axes[0].axhline(0, color="k", lw=0.6)
    axes[0].set_title("γ on chunk 2 = mean log π(y_w|x) − log π(y_l|x)")
    axes[0].legend(fontsize=8)
    labels = list(result["summary"])
    srcs = [s for s in result["summary"][labels[0]]["held_out"] if s != "mean acc (both sources)"]
    width = 0.8 / len(labels)
    for k, lab in enumerate(labels):
        h = result["summary"][lab]["held_out"]
        axes[1].bar([j + k * width for j in range(len(srcs))], [h[s]["acc"]["mean"] for s in srcs], width,
                    yerr=[h[s]["acc"]["std"] for s in srcs], label=lab, capsize=3)
    for j, s in enumerate(srcs):
        axes[1].hlines(result["base"][s]["held_out"]["acc"], j - 0.1, j + 0.9, color="k", ls=":", lw=0.8)
    axes[1].set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(srcs))], srcs)
    axes[1].set_ylim(0, 1.05)
    axes[1].set_title("held-out preference accuracy (dotted: base), mean ± std over seeds")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(common.RESULTS / "sdpo.png", dpi=90)
    plt.close(fig)


def main() -> None:
    result = {"setup": {"n_per_source": N_PER_SOURCE, "epochs": EPOCHS, "seeds": SEEDS, "loss": LOSS,
                        "optimiser": common.OPTIM, "lengths": common.LENGTHS,
                        "arms": [{"label": a, "partition": p, "data_order": o} for a, p, o in ARMS]},
              "paper": PAPER, "base": {}, "rows": common.load_rows(OUT)}
    measure(result)
    summarise(result)
    common.write_json(OUT, result)
    plot(result)
    for lab, s in result["summary"].items():
        h = s["held_out"]
        extra = f"  γ chunk2 S→M_1 {common.fmt(s['gamma_chunk2_gain_M1_over_S'])}" if "gamma_chunk2_gain_M1_over_S" in s else ""
        print(f"{lab:20s} held-out acc {common.fmt(h['mean acc (both sources)'], 3)}{extra}")


if __name__ == "__main__":
    main()
