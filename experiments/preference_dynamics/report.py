"""The README's tables, printed as Markdown from the committed JSON (nothing is re-measured).

    python experiments/preference_dynamics/report.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, fmt  # noqa: E402


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def base_table(base: dict, names: dict) -> str:
    rows = []
    for ds, b in base.items():
        t = b["train"]
        rows.append([names.get(ds, ds), b.get("model", "?"), str(t["n_pairs"]), f"{t['chosen_tokens']:.1f}", f"{t['acc']:.3f}",
                     f"{t['margin_summed']:.3f}", f"{t['margin_per_token']:.4f}", f"{t['chosen_logp_per_token']:.3f}",
                     f"{t['dgpo_weight']:.3f}", f"{t['through_weight_ratio']:.4f}"])
    out = table(["pairs (train)", "starting model", "n", "answer tokens", "base acc", "margin, summed", "margin per token",
                 "log π(y_w) per token", "DGPO weight π_w+π_l", "through-weight term e^a(a−b)/w"], rows)
    grad_rows = []
    for ds, b in base.items():
        g = b.get("dgpo_gradient")
        if g:
            r = g["chosen_rate"]
            grad_rows.append([names.get(ds, ds), str(g["n_pairs"]), f"{g['norm_ratio_through_weight_to_detached']:.3f}",
                              f"{g['cosine_through_weight_detached']:.2f}", f"{r['detached']:+.2f}", f"{r['through_weight']:+.2f}",
                              f"{r['full']:+.2f}"])
    if grad_rows:
        out += "\n\nDGPO's gradient at the starting model (β 2.5), split into the detached part and the part through the weight:\n\n"
        out += table(["pairs", "n", "‖through-weight‖ / ‖detached‖", "cosine", "chosen rate: detached", "through weight", "full"],
                     grad_rows)
    return out


def displacement_tables(d: dict) -> str:
    out = []
    for ds, s in d["summary"].items():
        b = d["base"][ds]
        out.append(f"**{ds}** (starting model: acc {b['train_probed']['acc']:.3f} on the 64 probed training pairs "
                   f"({b['train']['acc']:.3f} on all), {b['held_out']['acc']:.3f} held-out; matched accuracy = "
                   f"{s['matched_accuracy_target']:.3f})\n")
        rows = []
        for lab, m in s["methods"].items():
            f, h, a = m["final_train"], m["final_held_out"], m["at_matched_accuracy"]
            reached = f"{a['d_chosen']['n']}/{m['n_seeds']}"
            rows.append([lab, fmt(f["acc"], 3), fmt(f["d_chosen"]), fmt(f["d_chosen_per_token"], 3), fmt(f["d_rejected"]),
                         fmt(f["d_rejected_per_token"], 3), fmt(h["acc"], 3), fmt(h["d_chosen_per_token"], 3),
                         f"{fmt(a['step'], 1)}", fmt(a["d_chosen"]), fmt(a["d_chosen_per_token"], 3), reached])
        out.append(table(["method", "acc (64 train pairs)", "Δ chosen", "Δ chosen /token", "Δ rejected", "Δ rejected /token",
                          "acc (held-out)", "Δ chosen /token (held-out)", "step at matched acc", "Δ chosen at matched acc",
                          "/token at matched acc", "seeds reaching it"], rows))
        out.append("")
    scale = d.get("dgpo_beta_x10", {})
    if scale:
        out.append("DGPO β 2.5 vs β 25, same seed: largest |difference| of Δ chosen (summed) over the trajectory: "
                   + "; ".join(f"{ds} {v['max_abs_diff_d_chosen_same_seed']:.3g} nats ({v['n_seeds']} seeds)"
                               for ds, v in scale.items() if v["max_abs_diff_d_chosen_same_seed"] is not None))
    if d.get("skipped"):
        out.append("\nNot run (loss not registered in this checkout): " + ", ".join(d["skipped"]))
    return "\n".join(out)


def sdpo_tables(d: dict) -> str:
    rows = []
    for lab, s in d["summary"].items():
        h = s["held_out"]
        srcs = [k for k in h if k != "mean acc (both sources)"]
        g = s.get("gamma_chunk2")
        rows.append([lab, ", ".join(map(str, s["optimizer_steps"])), ", ".join(map(str, s["pairs_seen"])),
                     " → ".join(s["chunk_order"][0]) if "chunk_order" in s else "all at once",
                     fmt(g["M_0 (S)"]) if g else "–", fmt(g["M_1"]) if g else "–",
                     fmt(s["gamma_chunk2_gain_M1_over_S"]) if g else "–"]
                    + [fmt(h[x]["acc"], 3) for x in srcs] + [fmt(h["mean acc (both sources)"], 3)]
                    + [fmt(h[x]["d_chosen"]) for x in srcs])
        header_srcs = srcs
    header = (["arm", "optimizer steps", "pair gradients", "chunk order", "γ chunk 2 under S", "γ chunk 2 under M_1",
               "gain"] + [f"held-out acc {x}" for x in header_srcs] + ["held-out acc, mean"]
              + [f"Δ chosen {x} (held-out)" for x in header_srcs])
    base = "; ".join(f"{s}: train acc {b['train']['acc']:.3f}, held-out acc {b['held_out']['acc']:.3f}"
                     for s, b in d["base"].items())
    return f"Base model per source: {base}\n\n" + table(header, rows)


def main() -> None:
    disp = RESULTS / "displacement.json"
    sdpo = RESULTS / "sdpo.json"
    if disp.exists():
        d = json.loads(disp.read_text())
        print("## base model\n\n" + base_table(d["base"], {}) + "\n")
        print("## displacement\n\n" + displacement_tables(d) + "\n")
    if sdpo.exists():
        print("## sdpo\n\n" + sdpo_tables(json.loads(sdpo.read_text())))


if __name__ == "__main__":
    main()
