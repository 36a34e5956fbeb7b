"""`preference_heldout`: what preference training did to held-out pairs of the default data's family.

For each held-out pair (``align.data.arithmetic_preference_pairs`` from a seed of its own, every
prompt of the default training pairs left out) the model's and its base model's summed
log-probs of the chosen and the rejected answer, tokenised exactly as in training
(``align.encoding``). Scores, each with its standard error over pairs:

- ``pref_accuracy``: share of pairs with log π(y_w) > log π(y_l);
- ``delta_chosen_logp`` / ``delta_rejected_logp``: log π(y) − log π_base(y), summed over the answer;
- ``..._per_token``: the same divided by the answer's token count.

An untrained model is its own base: its deltas are 0. Every pair's values are kept in the raw
output for the leaderboard's paired bootstrap.
"""
from __future__ import annotations

import math

from harness.evaluation import BenchmarkOutput, EvalRequest, register_benchmark

TASK = "preference_heldout"
N_PAIRS = 256
HELDOUT_SEED = 7_500_002  # the default training pairs use seed 1
MAX_LENGTH, MAX_PROMPT_LENGTH = 512, 256
METRICS = ("pref_accuracy", "delta_chosen_logp", "delta_rejected_logp", "delta_chosen_logp_per_token",
           "delta_rejected_logp_per_token", "chosen_logp", "rejected_logp")


def heldout_pairs(n: int = N_PAIRS, seed: int = HELDOUT_SEED) -> list[dict]:
    from align.data import arithmetic_preference_pairs
    from harness.evaluation.arithmetic import training_questions

    exclude, seen, rows = training_questions(), set(), []
    for r in arithmetic_preference_pairs(4 * n, seed):
        if r["prompt"] not in exclude and r["prompt"] not in seen:
            seen.add(r["prompt"])
            rows.append(r)
    if len(rows) < n:
        raise ValueError(f"only {len(rows)} held-out pairs could be drawn (wanted {n})")
    return rows[:n]


def mean_se(xs: list[float]) -> tuple[float, float | None]:
    """Mean and its standard error (sample standard deviation / sqrt(n), as lm-eval)."""
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n)


def answer_logps(model_path: str, pairs: list[dict], device: str = "cpu", batch_size: int = 32):
    """[(chosen_logp, rejected_logp, chosen_tokens, rejected_tokens)] per pair, in order."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from align.data import PreferencePair
    from align.encoding import collate, encode_pairs
    from align.logps import concatenated_forward

    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    objs = [PreferencePair(prompt=[{"role": "user", "content": p["prompt"]}], chosen=p["chosen"],
                           rejected=p["rejected"], source=p["source"], origin=f"{TASK}:{i}") for i, p in enumerate(pairs)]
    encoded, too_long = encode_pairs(tok, objs, MAX_LENGTH, MAX_PROMPT_LENGTH, skip_invalid=False)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(device).eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = {k: v.to(device) for k, v in collate(encoded[start : start + batch_size], tok.pad_token_id).items()}
            c, r, nc, nr = concatenated_forward(model, batch)
            rows += list(zip(c.tolist(), r.tolist(), nc.tolist(), nr.tolist()))
    return rows


@register_benchmark(TASK)
def run_preference_heldout(req: EvalRequest) -> BenchmarkOutput:
    if req.backend != "hf":
        raise ValueError(f"benchmark '{TASK}' needs the model's log-probs: use --backend hf (got {req.backend})")
    run = req.run or {}
    trained = run.get("method") not in (None, "base")
    base = str(run.get("base_model")) if trained and run.get("base_model") else req.model
    device = req.backend_options.get("device") or _default_device()
    pairs = heldout_pairs()
    if req.limit is not None:
        pairs = pairs[: req.limit]
    mine = answer_logps(req.model, pairs, device)
    ref = answer_logps(base, pairs, device) if base != req.model else mine
    per = {
        "pref_accuracy": [1.0 if c > r else 0.0 for c, r, _, _ in mine],
        "delta_chosen_logp": [c - bc for (c, _, _, _), (bc, _, _, _) in zip(mine, ref)],
        "delta_rejected_logp": [r - br for (_, r, _, _), (_, br, _, _) in zip(mine, ref)],
        "delta_chosen_logp_per_token": [(c - bc) / max(1, n) for (c, _, n, _), (bc, _, _, _) in zip(mine, ref)],
        "delta_rejected_logp_per_token": [(r - br) / max(1, n) for (_, r, _, n), (_, br, _, _) in zip(mine, ref)],
        "chosen_logp": [c for c, _, _, _ in mine],
        "rejected_logp": [r for _, r, _, _ in mine],
    }
    scores = []
    for metric in METRICS:
        m, se = mean_se(per[metric])
        scores.append({"task": TASK, "metric": metric, "value": m, "stderr": se, "n": len(pairs), "shots": 0,
                       "unavailable": None})
    conventions = {
        "suite": "held-out preference pairs (this project)",
        "pairs": f"{len(pairs)} pairs from align.data.arithmetic_preference_pairs with seed {HELDOUT_SEED}, none "
                 "with a prompt of the default training pairs; tokenised as in training (chat template, "
                 f"max_length {MAX_LENGTH}, max_prompt_length {MAX_PROMPT_LENGTH})",
        "base_model": base,
        "deltas": "log π(y) − log π_base(y) per pair, summed over answer tokens and per token; 0 for an untrained model",
        "limit": req.limit,
        "data_sources": {TASK: "generated at run time (align.data.arithmetic_preference_pairs)"},
        "comparable_to_published": False,
        "settings": _settings(req),
    }
    raw = {"per_item": {f"{TASK}:{m}": [[i, v] for i, v in enumerate(per[m])] for m in METRICS},
           "per_pair": [{"chosen_logp": c, "rejected_logp": r, "chosen_tokens": nc, "rejected_tokens": nr,
                         "base_chosen_logp": bc, "base_rejected_logp": br}
                        for (c, r, nc, nr), (bc, br, _, _) in zip(mine, ref)]}
    return BenchmarkOutput(scores=scores, conventions=conventions, backend={"name": "hf", "device": device}, raw=raw)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _settings(req: EvalRequest) -> dict:
    return {"limit": req.limit, "n_pairs": N_PAIRS, "seed": HELDOUT_SEED}


run_preference_heldout.settings = _settings
