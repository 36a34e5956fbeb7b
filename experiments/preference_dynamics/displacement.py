"""Likelihood displacement and DGPO's chosen log-prob, every method on two low-edit-distance datasets.

Claims tested: DPO lowers log π(y_w|x) on low-edit-distance pairs while the margin grows and
DPOP does not (Smaug, Figs. 3 and 5); DGPO raises the chosen log-prob where DPO lowers it
(DGPO, Table 3). And why: DGPO with its weight detached (the control), and DGPO with β × 10
(AdamW normalises the gradient's scale).

Every method: the same base model, AdamW, schedule and number of optimizer steps; one run
per seed (the seed sets the batch order). The trajectory (checkpoints every EVAL_EVERY steps,
probed on the first TRAJECTORY_PAIRS training pairs) gives the comparison at matched preference accuracy; the final
model is also probed on held-out pairs.

    python experiments/preference_dynamics/displacement.py

Writes results/displacement.json (row by row; a re-run skips rows already there) and
results/displacement_*.png.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402

N_TRAIN = 128  # training pairs per dataset
STEPS = 32  # optimizer steps for every method (2 epochs of 128 pairs at batch 8)
EVAL_EVERY = 8  # checkpoint (and probe) interval
TRAJECTORY_PAIRS = 64  # the first 64 training pairs are probed at every checkpoint (CPU budget)
SEEDS = [0, 1, 2]
DATASETS = ["gsm8k-corrupt", "arithmetic-short"]
# The starting model per dataset: the pre-trained base is at chance on arithmetic-short, so that
# dataset starts from the base after a short arithmetic SFT stage (common.arithmetic_sft_model).
BASES = {"gsm8k-corrupt": lambda: common.base_model(N_TRAIN), "arithmetic-short": lambda: common.arithmetic_sft_model(N_TRAIN)}

# (label, registered loss, loss settings). Settings not given are the loss's own defaults.
# DPO β 0.01 is the DGPO paper's DPO baseline (its Table 6), 0.3 the Smaug paper's.
# The method-zoo losses run with their registered defaults ({}); a loss this checkout does not
# register is skipped and listed in the JSON's "skipped".
METHODS = [
    ("dpo β0.01", "dpo", {"beta": 0.01}),
    ("dpo β0.1", "dpo", {"beta": 0.1}),
    ("dpo β0.3", "dpo", {"beta": 0.3}),
    ("dpop", "dpop", {"beta": 0.3, "dpop_lambda": 50.0}),
    ("dgpo", "dgpo", {"beta": 2.5}),
    ("dgpo detached", "dgpo", {"beta": 2.5, "detach_weight": True}),
    ("dgpo β25", "dgpo", {"beta": 25.0}),
    ("sft", "sft", {}),
    ("ipo", "ipo", {}),
    ("cpo", "cpo", {}),
    ("kto", "kto", {}),
    ("rrhf", "rrhf", {}),
    ("slic", "slic", {}),
    ("orpo", "orpo", {}),
    ("simpo", "simpo", {}),
]
OUT = common.RESULTS / "displacement.json"
KEYS = ("acc", "d_chosen", "d_chosen_per_token", "d_rejected", "d_rejected_per_token", "share_chosen_below_base")


def train_settings(base: Path, data: Path, seed: int, output: Path) -> dict:
    return dict(model=str(base), data=[str(data)], output=str(output), max_steps=STEPS, seed=seed,
                save_steps=EVAL_EVERY, save_total_limit=1000, logging_steps=1, ref_batch_size=64, progress=False, skip_invalid=True,
                **common.OPTIM, **common.LENGTHS)


def gradient_decomposition(base: Path, data: Path, n: int = TRAJECTORY_PAIRS, batch: int = 8) -> dict:
    """DGPO's gradient at the starting model, split into the detached part (symmetric, like DPO's)
    and the part through the weight π_w+π_l (full minus detached, from the registered loss itself).
    ``chosen_rate``: first-order change of Σ log π(y_w|x) per token along each part's unit descent
    direction (> 0: a step along it raises the chosen answers)."""
    import torch
    from transformers import AutoModelForCausalLM

    from align.encoding import collate
    from align.logps import concatenated_forward
    from align.losses import PairLogps, get_loss

    probe = common.Probe(base, data, n)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    params = [p for p in model.parameters() if p.requires_grad]
    fn = get_loss("dgpo").fn

    def grad(what: str):
        model.zero_grad(set_to_none=True)
        for s in range(0, len(probe.encoded), batch):
            c, r, nc, nr = concatenated_forward(model, collate(probe.encoded[s : s + batch], probe.pad))
            if what == "chosen":
                (c / nc).sum().backward()
            else:
                fn(PairLogps(c, r, nc, nr), beta=2.5, length_normalize=True, detach_weight=what == "detached").losses.sum().backward()
        return torch.cat([p.grad.flatten() for p in params]).clone()

    full, detached, chosen = grad("full"), grad("detached"), grad("chosen")
    through = full - detached
    rate = {k: (-(g @ chosen) / g.norm()).item() for k, g in (("detached", detached), ("through_weight", through), ("full", full))}
    return {"n_pairs": len(probe.encoded), "norm_ratio_through_weight_to_detached": (through.norm() / detached.norm()).item(),
            "cosine_through_weight_detached": (through @ detached / (through.norm() * detached.norm())).item(),
            "chosen_rate": rate}


def measure(result: dict, datasets: list[str]) -> None:
    rows = result["rows"]
    for ds in datasets:
        base = BASES[ds]()
        train_path, held_path = common.DATASETS[ds](N_TRAIN)
        probe, held = common.Probe(base, train_path, TRAJECTORY_PAIRS), common.Probe(base, held_path)
        result["base"][ds] = {"model": base.name, "train": common.Probe(base, train_path).base_stats(), "train_probed": probe.base_stats(),
                              "held_out": held.base_stats(), "dgpo_gradient": gradient_decomposition(base, train_path)}
        for label, method, loss in METHODS:
            if not common.method_available(method):
                result["skipped"][label] = f"loss '{method}' not registered in this checkout"
                continue
            for seed in SEEDS:
                key = f"{ds} | {label} | seed {seed}"
                if key in rows:
                    continue
                out = common.WORK / "runs" / "displacement" / ds / label.replace(" ", "_") / f"seed{seed}"
                cfg = common.make_config(method, loss, **train_settings(base, train_path, seed, out))
                run = common.train_run(cfg)
                trajectory = [{"step": 0, **probe.summary(probe.c0, probe.r0)}]
                for step, weights in common.checkpoints(run):
                    trajectory.append({"step": step, **probe.summary(*probe.logps(weights))})
                rows[key] = {"dataset": ds, "label": label, "method": method, "loss": loss, "seed": seed,
                             "trajectory": trajectory, "held_out": held.summary(*held.logps(run / "model.safetensors"))}
                common.save_rows(OUT, result)
                print(f"{key:45s} acc {trajectory[-1]['acc']:.2f}  Δchosen {trajectory[-1]['d_chosen']:8.2f} "
                      f"({trajectory[-1]['d_chosen_per_token']:+.3f}/token)", flush=True)


def summarise(result: dict) -> None:
    """Mean ± std over seeds: final numbers (train and held-out) and numbers at matched accuracy."""
    rows = list(result["rows"].values())
    summary = {}
    for ds in DATASETS:
        mine = [r for r in rows if r["dataset"] == ds]
        labels = list(dict.fromkeys(r["label"] for r in mine))
        base_acc = result["base"][ds]["train_probed"]["acc"]
        finals = {lab: common.mean_std([r["trajectory"][-1]["acc"] for r in mine if r["label"] == lab])["mean"] for lab in labels}
        # Matched accuracy: halfway from the base to the best method's mean final accuracy.
        target = base_acc + 0.5 * (max(finals.values(), default=base_acc) - base_acc)
        per = {}
        for lab in labels:
            runs = [r for r in mine if r["label"] == lab]
            per[lab] = {
                "n_seeds": len(runs),
                "final_train": {k: common.mean_std([r["trajectory"][-1][k] for r in runs]) for k in KEYS},
                "final_held_out": {k: common.mean_std([r["held_out"][k] for r in runs]) for k in KEYS},
                "at_matched_accuracy": {k: common.mean_std([common.at_accuracy(r["trajectory"], target, k) for r in runs])
                                        for k in ("step", "d_chosen", "d_chosen_per_token", "d_rejected")},
            }
        summary[ds] = {"matched_accuracy_target": target, "methods": per}
    # β × 10 for DGPO: the same seed's runs side by side.
    scale = {}
    for ds in DATASETS:
        diffs = []
        for seed in SEEDS:
            a = result["rows"].get(f"{ds} | dgpo | seed {seed}")
            b = result["rows"].get(f"{ds} | dgpo β25 | seed {seed}")
            if a and b:
                diffs.append(max(abs(p["d_chosen"] - q["d_chosen"]) for p, q in zip(a["trajectory"], b["trajectory"])))
        scale[ds] = {"max_abs_diff_d_chosen_same_seed": max(diffs) if diffs else None, "n_seeds": len(diffs)}
    result["summary"] = summary
    result["dgpo_beta_x10"] = scale


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(result["rows"].values())
    labels = list(dict.fromkeys(r["label"] for r in rows))
    colors = {lab: plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")(i) for i, lab in enumerate(labels)}
    for what, ylabel in (("step", "optimizer step"), ("acc", "preference accuracy (training pairs)")):
        fig, axes = plt.subplots(1, len(DATASETS), figsize=(6 * len(DATASETS), 4.5))
        for ax, ds in zip(axes, DATASETS):
            for lab in labels:
                runs = [r for r in rows if r["dataset"] == ds and r["label"] == lab]
                for i, r in enumerate(runs):
                    xs = [p[what] for p in r["trajectory"]]
                    ys = [p["d_chosen_per_token"] for p in r["trajectory"]]
                    ax.plot(xs, ys, color=colors[lab], lw=1, marker="o" if what == "acc" else None, ms=2,
                            label=lab if i == 0 else None, alpha=0.8)
            ax.axhline(0, color="k", lw=0.6)
            if what == "acc":
                ax.axvline(result["summary"][ds]["matched_accuracy_target"], color="k", ls=":", lw=0.8)
            ax.set_xlabel(ylabel)
            ax.set_ylabel("Δ log π(y_w|x) per token vs base")
            ax.set_title(f"{ds} (one line per seed)")
        axes[-1].legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(common.RESULTS / f"displacement_chosen_vs_{what}.png", dpi=90)
        plt.close(fig)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=DATASETS, action="append",
                    help="measure only this dataset (repeatable; processes may share the JSON); default: all")
    args = ap.parse_args()
    result = {"setup": {"n_train": N_TRAIN, "steps": STEPS, "eval_every": EVAL_EVERY, "trajectory_pairs": TRAJECTORY_PAIRS, "seeds": SEEDS,
                        "optimiser": common.OPTIM, "lengths": common.LENGTHS,
                        "methods": [{"label": lab, "method": m, "loss": loss} for lab, m, loss in METHODS]},
              "base": {}, "skipped": {}, "rows": common.load_rows(OUT)}
    measure(result, args.dataset or DATASETS)
    result["rows"] = common.load_rows(OUT) | result["rows"]
    if args.dataset:
        common.save_rows(OUT, result)
        return
    summarise(result)
    common.write_json(OUT, result)
    plot(result)
    for ds, s in result["summary"].items():
        print(f"\n{ds}: matched accuracy {s['matched_accuracy_target']:.3f}")
        for lab, m in s["methods"].items():
            f, t = m["final_train"], m["at_matched_accuracy"]
            print(f"  {lab:14s} acc {common.fmt(f['acc'])}  Δchosen {common.fmt(f['d_chosen'])}  "
                  f"per token {common.fmt(f['d_chosen_per_token'], 3)}  | at matched acc: {common.fmt(t['d_chosen'])} "
                  f"(n={t['d_chosen']['n']})")


if __name__ == "__main__":
    main()
