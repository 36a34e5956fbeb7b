"""Shared pieces of the training-dynamics experiments: base model, data, configs, runs, probes, statistics.

Heavy things (models, runs) are cached under ``.work/`` next to this file (not committed), so a
re-run only redoes what is missing. Committed outputs (JSON + PNG) go to ``results/``. Result JSON
is written row by row (atomically), and a script skips every row that is already there: a crash
loses at most the run in progress.
"""
from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "results"
os.environ.setdefault("HARNESS_CACHE", str(WORK / "cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# GSM8K problems with solutions of at most GSM8K_MAX_CHARS characters (CPU budget: about a third
# of GSM8K's rows) fit in ~190 tokens of the 1024-token BPE; the arithmetic pairs need ~25.
GSM8K_MAX_CHARS = 200
LENGTHS = {"max_length": 256, "max_prompt_length": 160}

# One optimiser, schedule and step budget for every method (the "same optimiser").
OPTIM = dict(lr=5e-4, batch_size=8, grad_accum=1, warmup_ratio=0.1, lr_schedule="linear", weight_decay=0.0,
             max_grad_norm=1.0, mixed_precision="no", length_groups=2)


def data_dir() -> Path:
    d = Path(os.environ.get("HARNESS_DATA_DIR") or HERE.parents[2] / "shared" / "data")
    if not d.exists():
        raise SystemExit(f"data directory {d} not found; set HARNESS_DATA_DIR")
    return d


def write_json(path: Path, obj) -> None:
    from align.atomic import write_json_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, obj)


def load_rows(path: Path) -> dict:
    """The rows already measured (``{key: row}``), for resuming."""
    return json.loads(path.read_text())["rows"] if path.exists() else {}


def save_rows(path: Path, result: dict) -> None:
    """Write ``result`` with its ``rows`` and ``base`` merged into those already on disk, under a
    lock, so that several processes (e.g. one per dataset) can fill one file."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text()) if path.exists() else {}
        for part in ("rows", "base"):  # in place: callers hold references to these dicts
            mine = result.setdefault(part, {})
            for k, v in old.get(part, {}).items():
                mine.setdefault(k, v)
        write_json(path, result)


# ---------------------------------------------------------------------- data
def gsm8k_pairs(split: str, n: int, seed: int = 0) -> Path:
    """gsm8k-corrupt (multi-step solutions, one intermediate number changed): a seeded sample of
    ``n`` from the GSM8K ``split`` rows whose solution has at most GSM8K_MAX_CHARS characters."""
    from align.builders import gsm8k_corrupt
    from align.data import write_jsonl

    src = WORK / "data" / f"gsm8k-{split}-max{GSM8K_MAX_CHARS}chars.jsonl"
    if not src.exists():
        rows = [json.loads(x) for x in (data_dir() / "gsm8k" / f"{split}.jsonl").read_text().splitlines() if x.strip()]
        write_jsonl([r for r in rows if len(r["answer"]) <= GSM8K_MAX_CHARS], src)
    out = WORK / "data" / f"gsm8k-corrupt-{split}-max{GSM8K_MAX_CHARS}-{n}-s{seed}.jsonl"
    if not out.exists():
        gsm8k_corrupt(src, out, seed=seed, limit=n)
    return out


def arithmetic_pairs(n: int, seed: int) -> Path:
    """arithmetic-short (``a op b = c`` against ``c`` off by 1-3): short answers, low edit distance."""
    from align.builders import arithmetic_short

    out = WORK / "data" / f"arithmetic-short-{n}-s{seed}.jsonl"
    if not out.exists():
        arithmetic_short(out, n=n, seed=seed)
    return out


# Train and held-out pairs of each dataset (held-out: GSM8K test split; another generator seed).
DATASETS = {
    "gsm8k-corrupt": lambda n: (gsm8k_pairs("train", n), gsm8k_pairs("test", 64)),
    "arithmetic-short": lambda n: (arithmetic_pairs(n, seed=101), arithmetic_pairs(64, seed=202)),
}


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# ---------------------------------------------------------------- base model
def base_model(n_pairs: int = 128, n_gsm8k: int = 1500, n_arith: int = 6000, steps: int = 250) -> Path:
    """The tiny Llama (1024-token BPE) pre-trained on GSM8K train solutions and generated arithmetic
    dialogues, rendered as chat dialogues. Problems that any pair set is built from are left out
    (matched by question text), so every pair is unseen text."""
    from align.tiny import arithmetic_corpus, make_tiny_model, render_dialogue

    out = WORK / "models" / f"base-gsm8k{n_gsm8k}-arith{n_arith}-{steps}"
    if (out / "config.json").exists():
        return out
    held_prompts = {r["prompt"] for make in DATASETS.values() for path in make(n_pairs) for r in _rows(path)}
    texts = []
    for row in _rows(data_dir() / "gsm8k" / "train.jsonl"):
        if row["question"] not in held_prompts and len(texts) < n_gsm8k:
            texts.append(render_dialogue(row["question"], row["answer"]))
    for t in arithmetic_corpus(n_arith, seed=7):
        question = t.split("<|user|>\n", 1)[1].split("<|end|>", 1)[0]
        if question not in held_prompts:
            texts.append(t)
    return make_tiny_model(out, texts, vocab_size=1024, pretrain_steps=steps, seq_len=128, batch_size=12, progress=False)


def arithmetic_sft_model(n_pairs: int = 128, steps: int = 300, lr: float = 2e-3, seq_len: int = 64,
                         batch_size: int = 24) -> Path:
    """``base_model`` after a short supervised stage on arithmetic dialogues (plus some GSM8K
    solutions, so that it keeps both): 250 pre-training steps leave the tiny model at chance on
    arithmetic-short, and the papers start from SFT models. Pair problems stay left out."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from align.tiny import arithmetic_corpus, render_dialogue

    base = base_model(n_pairs)
    out = WORK / "models" / f"{base.name}-sft-arith{steps}"
    if (out / "config.json").exists():
        return out
    held = {r["prompt"] for make in DATASETS.values() for path in make(n_pairs) for r in _rows(path)}
    texts = [t for t in arithmetic_corpus(6000, seed=11) if t.split("<|user|>\n", 1)[1].split("<|end|>", 1)[0] not in held]
    gsm = [r for r in _rows(data_dir() / "gsm8k" / "train.jsonl") if r["question"] not in held]
    texts += [render_dialogue(r["question"], r["answer"]) for r in gsm[-500:]]
    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    ids = [i for t in texts for i in tok(t, add_special_tokens=False)["input_ids"]]
    stream = torch.tensor(ids, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(stream) - seq_len - 1, (batch_size,), generator=gen).tolist()
        batch = torch.stack([stream[s : s + seq_len] for s in starts])
        model(input_ids=batch, labels=batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    tmp = out.with_name(out.name + ".tmp")
    model.eval()
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out


# ---------------------------------------------------------------- configs
def make_config(method: str, loss: dict, **train):
    """A TrainConfig for ``method`` with the loss settings ``loss`` (its ``loss`` block)."""
    from align.config import build_config

    return build_config(None, method=method, loss=dict(loss), **train)


def method_available(method: str) -> bool:
    from align.losses import LOSSES

    return method in LOSSES


# ---------------------------------------------------------------------- runs
def train_run(cfg) -> Path:
    """One ``align.trainer.train`` run with checkpoints every ``cfg.save_steps`` kept (the trajectory);
    skipped when a completed run with the same configuration is already there."""
    from align.trainer import train

    out = Path(cfg.output)
    run_json = out / "run.json"
    same = run_json.exists() and json.loads(run_json.read_text())["config"] == json.loads(json.dumps(cfg.to_dict()))
    if not same:
        train(cfg)
    return out


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, weights file) of every kept checkpoint, then the final model."""
    ck = sorted(((int(p.name.split("-")[1]), p / "model.safetensors") for p in (run / "checkpoints").glob("step-*")
                 if (p / "model.safetensors").exists()), key=lambda x: x[0])
    steps = json.loads((run / "run.json").read_text())["steps"]
    return ck + [(steps, run / "model.safetensors")]


# ------------------------------------------------------------- probes
class Probe:
    """Summed log-probs of chosen and rejected answers of a fixed pair set, for any weights of one
    architecture (the trainer's own ``compute_logps``), plus the answers' token counts."""

    def __init__(self, base: Path, data: Path, limit: int | None = None):
        from transformers import AutoTokenizer

        from align.data import load_preference_data
        from align.encoding import encode_pairs

        tok = AutoTokenizer.from_pretrained(str(base))
        pairs, _ = load_preference_data([str(data)])
        self.encoded, _ = encode_pairs(tok, pairs, LENGTHS["max_length"], LENGTHS["max_prompt_length"], skip_invalid=True)
        self.encoded = self.encoded[:limit]  # the first ``limit`` pairs (CPU budget)
        self.pad = tok.pad_token_id
        self.base = base
        self.n_chosen = torch.tensor([len(e.chosen_ids) for e in self.encoded], dtype=torch.float32)
        self.n_rejected = torch.tensor([len(e.rejected_ids) for e in self.encoded], dtype=torch.float32)
        self.c0, self.r0 = self.logps(base)

    def logps(self, weights: Path) -> tuple[torch.Tensor, torch.Tensor]:
        from safetensors.torch import load_file

        from align.config import TrainConfig
        from align.trainer import compute_logps, load_model, make_accelerator

        cfg = TrainConfig(mixed_precision="no")
        model = load_model(str(self.base), cfg)
        if weights != self.base and Path(weights).is_file():
            state = load_file(str(weights))
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or [k for k in missing if k != "lm_head.weight"]:  # tied to the embeddings
                raise RuntimeError(f"{weights}: does not fit {self.base} (missing {missing}, unexpected {unexpected})")
        elif weights != self.base:
            model = load_model(str(weights), cfg)
        return compute_logps(model, self.encoded, make_accelerator(cfg), self.pad, 64, desc="probe")

    def summary(self, c: torch.Tensor, r: torch.Tensor) -> dict:
        """Changes against the base, summed and per answer token, and the preference accuracy."""
        dc, dr = c - self.c0, r - self.r0
        return {"acc": (c > r).float().mean().item(),
                "d_chosen": dc.mean().item(), "d_rejected": dr.mean().item(),
                "d_chosen_per_token": (dc / self.n_chosen).mean().item(),
                "d_rejected_per_token": (dr / self.n_rejected).mean().item(),
                "share_chosen_below_base": (dc < 0).float().mean().item(),
                "chosen_per_token": (c / self.n_chosen).mean().item()}

    def base_stats(self) -> dict:
        """The base model's margins (summed and per token) and DGPO's weight at the start.

        ``through_weight_ratio``: DGPO's loss is -log σ(β w (a − b)), a, b the per-token mean
        log-probs, w = e^a + e^b. Its push on a is ∝ w + e^a (a − b); on b ∝ −(w − e^b (a − b)).
        Detaching w leaves ±w, DPO's symmetric push; e^a (a − b) / w is what the gradient through
        the weight adds to the chosen answer's push, relative to that symmetric part.
        """
        a, b = self.c0 / self.n_chosen, self.r0 / self.n_rejected
        w = a.exp() + b.exp()
        return {"n_pairs": len(self.encoded), "acc": (self.c0 > self.r0).float().mean().item(),
                "chosen_tokens": self.n_chosen.mean().item(), "rejected_tokens": self.n_rejected.mean().item(),
                "margin_summed": (self.c0 - self.r0).mean().item(), "margin_per_token": (a - b).mean().item(),
                "chosen_logp_summed": self.c0.mean().item(), "chosen_logp_per_token": a.mean().item(),
                "dgpo_weight": w.mean().item(),
                "through_weight_ratio": (a.exp() * (a - b) / w).mean().item()}


# ------------------------------------------------------------- statistics
def mean_std(values: list[float | None]) -> dict:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return {"mean": statistics.fmean(v) if v else None, "std": statistics.stdev(v) if len(v) > 1 else (0.0 if v else None),
            "n": len(v)}


def at_accuracy(trajectory: list[dict], target: float, key: str) -> float | None:
    """``key`` linearly interpolated at the first point where ``acc`` reaches ``target``; None if never."""
    prev = None
    for p in trajectory:
        if p["acc"] >= target:
            if prev is None or p["acc"] == prev["acc"]:
                return p[key]
            t = (target - prev["acc"]) / (p["acc"] - prev["acc"])
            return prev[key] + t * (p[key] - prev[key])
        prev = p
    return None


def fmt(ms: dict, digits: int = 2) -> str:
    if ms["mean"] is None:
        return "n.r."
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"
