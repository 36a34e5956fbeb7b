"""Shared pieces of the training-dynamics experiments: base models, data, runs, log-prob probes.

Everything heavy is cached under ``experiments/preference_dynamics/.work`` (not committed),
so re-running an experiment only redoes what is missing. Committed outputs (JSON + PNG)
go to ``results/`` next to this file.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "results"
os.environ.setdefault("HARNESS_CACHE", str(WORK / "cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Sequence budget for GSM8K dialogues with the 1024-token BPE vocabulary (long pairs are truncated).
GSM8K_LENGTHS = {"max_length": 384, "max_prompt_length": 192}
HH_LENGTHS = {"max_length": 256, "max_prompt_length": 160}


def data_dir() -> Path:
    d = Path(os.environ.get("HARNESS_DATA_DIR") or HERE.parents[2] / "shared" / "data")
    if not d.exists():
        raise SystemExit(f"data directory {d} not found; set HARNESS_DATA_DIR")
    return d


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


# ---------------------------------------------------------------------- data
def gsm8k_pairs(split: str = "train", n: int = 256, seed: int = 0) -> Path:
    """gsm8k-corrupt pairs: a seeded sample of ``n`` from the GSM8K ``split``."""
    from align.builders import gsm8k_corrupt

    out = WORK / "data" / f"gsm8k-corrupt-{split}-{n}-s{seed}.jsonl"
    if not out.exists():
        gsm8k_corrupt(data_dir() / "gsm8k" / f"{split}.jsonl", out, seed=seed, limit=n)
    return out


def hh_pairs(n: int = 128, seed: int = 0) -> Path:
    from align.builders import hh_rlhf

    out = WORK / "data" / f"hh-harmless-{n}-s{seed}.jsonl"
    if not out.exists():
        hh_rlhf(data_dir() / "hh_rlhf" / "harmless-base" / "test.jsonl.gz", out, seed=seed, limit=n)
    return out


def _ids(path: Path) -> set[str]:
    return {json.loads(x)["id"] for x in path.read_text().splitlines() if x.strip()}


# ---------------------------------------------------------------- base model
def base_model(n_gsm8k: int = 2000, n_hh: int = 1000, steps: int = 250) -> Path:
    """One tiny Llama (1024-token BPE) pre-trained briefly on GSM8K train solutions and
    HH-RLHF harmless chosen dialogues, both rendered as chat dialogues. Rows that the
    preference pairs are built from are left out, so the pairs are unseen text."""
    from align.data import split_hh_dialogue
    from align.tiny import make_tiny_model, render_dialogue

    out = WORK / "models" / f"base-gsm8k{n_gsm8k}-hh{n_hh}-{steps}"
    if (out / "config.json").exists():
        return out
    held = _ids(gsm8k_pairs("train")) | _ids(hh_pairs())
    texts = []
    for i, line in enumerate((data_dir() / "gsm8k" / "train.jsonl").read_text().splitlines(), start=1):
        if f"train.jsonl:{i}" not in held and len(texts) < n_gsm8k:
            row = json.loads(line)
            texts.append(render_dialogue(row["question"], row["answer"]))
    src = data_dir() / "hh_rlhf" / "harmless-base" / "test.jsonl.gz"
    n_before = len(texts)
    for i, line in enumerate(gzip.open(src, "rt", encoding="utf-8").read().splitlines(), start=1):
        if f"test.jsonl.gz:{i}" in held or len(texts) - n_before >= n_hh:
            continue
        row = json.loads(line)
        try:
            prompt, chosen, _ = split_hh_dialogue(row["chosen"], row["rejected"])
        except ValueError:
            continue
        msgs = prompt + [{"role": "assistant", "content": chosen}]
        texts.append("<s>" + "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in msgs))
    return make_tiny_model(out, texts, vocab_size=1024, pretrain_steps=steps, seq_len=192, batch_size=12)


# ---------------------------------------------------------------------- runs
def train_run(name: str, model: Path, data: Path, **overrides) -> Path:
    """One ``align.trainer.train`` run under the tiny recipe; skipped when already done
    with the same configuration."""
    from align.config import build_config
    from align.trainer import train

    out = WORK / "runs" / name
    cfg = build_config("tiny", model=str(model), data=[str(data)], output=str(out), progress=False, **overrides)
    run_json = out / "run.json"
    if run_json.exists() and json.loads(run_json.read_text())["config"] == json.loads(json.dumps(cfg.to_dict())):
        return out
    train(cfg)
    return out


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]


def run_config(run: Path):
    from align.config import TrainConfig

    return TrainConfig(**json.loads((run / "run.json").read_text())["config"])


# ------------------------------------------------------------- probes
def encode(model: Path, data: Path, lengths: dict):
    from transformers import AutoTokenizer

    from align.data import load_preference_data
    from align.encoding import encode_pairs

    tok = AutoTokenizer.from_pretrained(str(model))
    pairs, _ = load_preference_data([str(data)])
    # Same skipping as the trainer with skip_invalid: prompts longer than max_length are dropped.
    encoded, _ = encode_pairs(tok, pairs, lengths["max_length"], lengths["max_prompt_length"], skip_invalid=True)
    return encoded, tok.pad_token_id


def sequence_logps(model: Path, data: Path, lengths: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log π(y_w|x), log π(y_l|x) of every pair (the trainer's own function)."""
    from align.config import build_config
    from align.trainer import compute_logps, load_model, make_accelerator

    encoded, pad = encode(model, data, lengths)
    cfg = build_config("tiny")
    return compute_logps(load_model(str(model), cfg), encoded, make_accelerator(cfg), pad, 32, desc=f"log-probs {model.name}")


@torch.no_grad()
def token_logps(model: Path, encoded, pad_id: int) -> list[tuple[list[float], list[float]]]:
    """Per-token log-probs of each pair's chosen and rejected answer tokens."""
    from transformers import AutoModelForCausalLM

    from align.encoding import collate

    m = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32).eval()
    out = []
    for start in range(0, len(encoded), 16):
        chunk = encoded[start : start + 16]
        batch = collate(chunk, pad_id)
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
        targets = batch["labels"][:, 1:]
        lp = torch.log_softmax(logits, -1).gather(2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        b = len(chunk)
        for i, e in enumerate(chunk):
            rows = []
            for row, ans in ((i, e.chosen_ids), (b + i, e.rejected_ids)):
                mask = targets[row] != -100
                rows.append(lp[row][mask].tolist()[: len(ans)])
            out.append((rows[0], rows[1]))
    return out


def first_difference(a: list[int], b: list[int]) -> int | None:
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return k
    return None if len(a) == len(b) else min(len(a), len(b))


def batch_indices_per_step(run: Path) -> list[list[int]]:
    """The pair indices each optimizer step trained on (the trainer's seeded order)."""
    from align.trainer import step_batches

    cfg = run_config(run)
    info = json.loads((run / "run.json").read_text())
    steps, epoch = [], 0
    while len(steps) < info["steps"]:
        steps.extend([i for m in micros for i in m] for micros in step_batches(info["data"]["n_pairs"], cfg, epoch, 1))
        epoch += 1
    return steps


def displacement_curve(run: Path, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor) -> dict:
    """Per step: mean log π(y) of the step's batch (from metrics.jsonl) minus the base
    model's mean log π_ref(y) on the same pairs. Needs logging_steps=1."""
    rows = read_metrics(run)
    steps = batch_indices_per_step(run)
    curve = {"step": [], "chosen": [], "rejected": [], "chosen_minus_ref": [], "rejected_minus_ref": []}
    for r in rows:
        idx = steps[r["step"] - 1]
        curve["step"].append(r["step"])
        curve["chosen"].append(r["logps/chosen"])
        curve["rejected"].append(r["logps/rejected"])
        curve["chosen_minus_ref"].append(r["logps/chosen"] - ref_chosen[idx].mean().item())
        curve["rejected_minus_ref"].append(r["logps/rejected"] - ref_rejected[idx].mean().item())
    return curve
