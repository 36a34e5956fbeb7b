"""Training memory at large vocabularies: chunked log-probs against full logits and TRL's DPOTrainer.

    python benchmarks/train_memory.py [--vocabs 32000 128256 --max-length 1024 --batch-size 2 --pairs 8]

Prints one JSON object (``--out`` also writes it). For each vocabulary, a small Llama
(hidden 256, 2 layers: the vocabulary is what matters) with a BPE tokenizer trained
here on HH-RLHF text, its embedding padded to the vocabulary size, trains one epoch
of the longest real HH-RLHF harmless-base pairs that fit in ``--max-length`` tokens,
in four configurations, each in its own spawned process (``train_throughput.worker``):

  ours_dpo               align.trainer.train, chunked log-probs (the default)
  ours_dpo_full_logits   align.trainer.train --full-logits
  trl_stock              trl.DPOTrainer, live reference model
  trl_precompute         trl.DPOTrainer, precompute_ref_log_probs=True

Same batches in the same order, constant learning rate (per-step losses compared),
fp32, reference pass in batches of ``--batch-size`` pairs on both sides.
``peak_rss_delta_mb`` is the process's peak RSS (ru_maxrss) minus its RSS after
imports; ``steps_per_s`` is over steps 2.. (step 1 warms up); ``end_to_end_s`` covers
tokenisation, loading, reference pass and all steps. Configurations run interleaved
(``--repeats``) and the best time / median memory is kept: a busy machine only slows runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

import train_throughput as tt  # noqa: E402  (same workers, same timing and memory accounting)

CONFIGS = ("ours_dpo", "ours_dpo_full_logits", "trl_stock", "trl_precompute")


def longest_pairs(model: Path, data_dir: Path, n: int, max_length: int) -> tuple[list, int]:
    """The ``n`` longest HH-RLHF pairs whose full sequences fit in ``max_length``, and the epoch's token count."""
    from transformers import AutoTokenizer

    from align.data import load_preference_data
    from align.encoding import encode_pair

    tok = AutoTokenizer.from_pretrained(model)
    pairs, _ = load_preference_data([str(data_dir / tt.HH_FILE)], skip_invalid=True)
    sized = []
    for i, p in enumerate(pairs):
        e = encode_pair(tok, p, i, 10**9, 10**9)
        longest = len(e.prompt_ids) + max(len(e.chosen_ids), len(e.rejected_ids))
        if longest <= max_length:
            sized.append((longest, 2 * len(e.prompt_ids) + len(e.chosen_ids) + len(e.rejected_ids), i))
    sized.sort(reverse=True)
    if len(sized) < n:
        raise SystemExit(f"{data_dir / tt.HH_FILE}: only {len(sized)} pairs fit in {max_length} tokens, {n} asked")
    chosen = sorted(sized[:n], key=lambda x: x[2])
    return [pairs[i] for _, _, i in chosen], sum(t for _, t, _ in chosen)


def one_vocab(vocab: int, args, data_dir: Path) -> dict:
    model = tt.bench_model(args.hidden, args.layers, vocab, data_dir)
    pairs, tokens = longest_pairs(model, data_dir, args.pairs, args.max_length)
    runs, n_steps = tt.run_interleaved(model, pairs, args, args.batch_size, f"vocab {vocab}")
    res = tt.summarise(runs, n_steps, tokens)
    keep = ("peak_rss_mb", "peak_rss_delta_mb", "rss_after_imports_mb", "steps_per_s", "tokens_per_s",
            "tokens_per_s_per_run", "end_to_end_s", "step_losses", "logps")
    out = {"longest_sequence_tokens": args.max_length, "epoch_tokens": tokens, "steps": n_steps,
           "results": {k: {f: v[f] for f in keep if f in v} for k, v in res.items()}}
    r = res
    if {"ours_dpo", "trl_precompute"} <= set(r):
        out["ours_peak_growth_vs_trl_precompute"] = r["ours_dpo"]["peak_rss_delta_mb"] / r["trl_precompute"]["peak_rss_delta_mb"]
    if {"ours_dpo", "trl_stock"} <= set(r):
        out["ours_peak_growth_vs_trl_stock"] = r["ours_dpo"]["peak_rss_delta_mb"] / r["trl_stock"]["peak_rss_delta_mb"]
    if {"ours_dpo", "ours_dpo_full_logits"} <= set(r):
        out["ours_peak_growth_chunked_vs_full"] = r["ours_dpo"]["peak_rss_delta_mb"] / r["ours_dpo_full_logits"]["peak_rss_delta_mb"]
        out["ours_steps_per_s_chunked_vs_full"] = r["ours_dpo"]["steps_per_s"] / r["ours_dpo_full_logits"]["steps_per_s"]
    if "ours_dpo" in r:
        out["max_step_loss_diff_vs_ours_dpo"] = {
            k: max(abs(a - b) for a, b in zip(r["ours_dpo"]["step_losses"], v["step_losses"])) for k, v in r.items()}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocabs", type=int, nargs="+", default=[32000, 128256])
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--machine-note", default="")
    ap.add_argument("--data-dir")
    ap.add_argument("--out", help="also write the JSON here (atomically)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    data_dir = Path(args.data_dir or os.environ.get("HARNESS_DATA_DIR") or ROOT.parent / "shared" / "data")

    import torch
    import transformers
    import trl

    report = {
        "benchmark": "train_memory",
        "settings": {"model": f"Llama hidden={args.hidden} layers={args.layers}, tied embeddings", "pairs": args.pairs,
                     "batch_size": args.batch_size, "max_length": args.max_length, "precision": "fp32",
                     "lr": args.lr, "lr_schedule": "constant", "threads": args.threads, "repeats": args.repeats,
                     "data": f"{tt.HH_FILE}: the {args.pairs} longest pairs that fit", "machine_note": args.machine_note,
                     "memory": "per-process ru_maxrss (spawned) minus RSS after imports",
                     "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                  "trl": trl.__version__}},
        "vocabularies": {},
    }
    from align.atomic import write_json_atomic

    for v in args.vocabs:  # written after each vocabulary: a run cut short keeps what it measured
        report["vocabularies"][str(v)] = one_vocab(v, args, data_dir)
        if args.out:
            write_json_atomic(Path(args.out), report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
