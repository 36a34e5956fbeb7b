"""GPU check: bf16 DPO on a ~1B-parameter random-init Llama (vocabulary 128,256), ours against TRL.

    python3 benchmarks/gpu_check.py --out gpu_check.json        # on a CUDA machine, a few minutes
    python3 benchmarks/gpu_check.py --dry-run --out /tmp/x.json # on CPU: the same set-up, tiny model, fp32

Builds the model locally (Llama-3.2-1B shape, random weights, no hub), a BPE tokenizer
trained here on generated multi-problem arithmetic dialogues (~400-token sequences),
and runs, each configuration in its own process so peak memory is its own:

  ours_full_chunked  ours_full_full_logits  ours_lora_chunked  ours_lora_full_logits
  trl_full           trl_lora               (TRL's DPOTrainer, live reference; skipped with the
                                             reason if trl cannot be imported)

fp32 master weights with bf16 autocast on both sides (TRL: bf16=True), the same pairs in
the same order (TRL's sampler reads our epoch order sequentially), constant learning rate.
Recorded per configuration: peak GPU memory (torch.cuda.max_memory_allocated, reset at the
start of the process), tokens/s over steps 2.. (non-padding tokens), the loss of every
step, end-to-end seconds. LoRA: r=16, alpha=32 on every attention and MLP projection; the
reference is the base model (adapters start at zero). Only this repo's align package,
torch, transformers, accelerate, tokenizers and peft are needed; trl (and its datasets) optional.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue as queue_mod
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONFIGS = ("ours_full_chunked", "ours_full_full_logits", "ours_lora_chunked", "ours_lora_full_logits",
           "trl_full", "trl_lora")
LORA = {"r": 16, "alpha": 32, "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
SHAPES = {  # Llama-3.2-1B's shape (1.24 B parameters, tied embeddings); the dry run's is tiny
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256),
    "dry": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=4096),
}


# ------------------------------------------------------------------ set-up
def make_pairs(n: int, problems: int, seed: int = 0) -> list[dict]:
    """Preference rows: a prompt of ``problems`` arithmetic questions, a worked chosen answer, a rejected one
    with some results off by one or more."""
    from align.tiny import arithmetic_problem

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        items = [arithmetic_problem(rng) for _ in range(problems)]
        question = "Solve each of these.\n" + "\n".join(f"{i + 1}. {q}" for i, (_, q, _, _) in enumerate(items))
        chosen = "\n".join(f"{i + 1}. {a}" for i, (_, _, a, _) in enumerate(items))
        wrong = []
        for i, (_, q, a, r) in enumerate(items):
            bad = r + rng.randint(1, 9) if i == 0 or rng.random() < 0.5 else r  # the first is always wrong
            wrong.append(f"{i + 1}. {a.replace(str(r), str(bad))}")
        rows.append({"prompt": [{"role": "user", "content": question}], "chosen": chosen, "rejected": "\n".join(wrong)})
    return rows


def build_model(path: Path, shape: dict, rows: list[dict], dtype) -> int:
    """Random-init Llama of ``shape`` saved at ``path`` with a tokenizer trained on ``rows``; its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from align.tiny import train_tokenizer

    texts = [r["prompt"][0]["content"] + "\n" + r[k] for r in rows for k in ("chosen", "rejected")]
    tok = train_tokenizer(texts, 2000)
    torch.manual_seed(0)
    config = LlamaConfig(**shape, max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config)  # the vocabulary beyond the tokenizer's is padding, as real models pad
    n = sum(p.numel() for p in model.parameters())
    model.to(dtype).save_pretrained(path)
    tok.save_pretrained(path)
    del model
    return n


def epoch_order(n: int, batch_size: int) -> list[list[int]]:
    from align.config import TrainConfig
    from align.trainer import step_batches

    return [m for step in step_batches(n, TrainConfig(batch_size=batch_size, seed=0), 0, 1) for m in step]


def step_tokens(s: dict) -> list[int]:
    """Non-padding tokens of each step (both sides see the same batches)."""
    from transformers import AutoTokenizer

    from align.data import PreferencePair
    from align.encoding import encode_pair

    tok = AutoTokenizer.from_pretrained(s["model"])
    lens = []
    for i, r in enumerate(s["rows"]):
        e = encode_pair(tok, PreferencePair(r["prompt"], r["chosen"], r["rejected"], "gen", str(i)), i,
                        s["max_length"], s["max_length"] // 2)
        lens.append(2 * len(e.prompt_ids) + len(e.chosen_ids) + len(e.rejected_ids))
    return [sum(lens[i] for i in m) for m in epoch_order(len(s["rows"]), s["batch_size"])][: s["steps"]]


# ----------------------------------------------------------------- workers
def run_ours(name: str, s: dict, work: Path) -> dict:
    import dataclasses

    import align.trainer as trainer
    from align.config import TrainConfig
    from align.data import write_jsonl

    lora = "_lora_" in name
    data = write_jsonl(s["rows"], work / "pairs.jsonl")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    kw = dict(method="dpo", model=s["model"], data=[str(data)], output=str(work / "run"), lr=s["lr"],
              lr_schedule="constant", warmup_ratio=0.0, batch_size=s["batch_size"], max_steps=s["steps"],
              max_length=s["max_length"], max_prompt_length=s["max_length"] // 2, mixed_precision=s["precision"],
              progress=False, save_steps=10**9, logging_steps=1, ref_batch_size=s["batch_size"], seed=0,
              full_logits=name.endswith("full_logits"))
    lora_via = None
    if lora and "lora_r" in fields:  # the trainer's own LoRA (issue 9 part 1)
        kw.update(lora_r=LORA["r"], lora_alpha=LORA["alpha"])
        if "lora_target_modules" in fields:
            kw["lora_target_modules"] = LORA["targets"]
        lora_via = "TrainConfig.lora_*"
    elif lora:  # before that lands: wrap the loaded policy with peft here
        import peft

        load = trainer.load_model

        def load_with_lora(name_, cfg):
            return peft.get_peft_model(load(name_, cfg), peft.LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"],
                                                                         target_modules=LORA["targets"]))

        trainer.load_model = load_with_lora
        lora_via = "peft.get_peft_model around align.trainer.load_model"
    trainer.save_final = lambda *a, **k: None  # writing 5 GB is not what is measured
    t0 = time.perf_counter()
    run = trainer.train(TrainConfig(**kw))
    total = time.perf_counter() - t0
    rows = [json.loads(ln) for ln in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    tokens = step_tokens(s)
    times = [t / r["tokens_per_s"] for t, r in zip(tokens, rows)]
    return {"losses": [r["loss"] for r in rows], "step_s": times, "end_to_end_s": total,
            "logps": run.get("logps"), "lora_via": lora_via}


def run_trl(name: str, s: dict, work: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from torch.utils.data import SequentialSampler
    from trl import DPOConfig, DPOTrainer

    class InOrderDPOTrainer(DPOTrainer):  # reads the pairs in the given order (ours): the same batches
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks, self.losses = [], []

        def on_train_begin(self, *a, **k):
            self.marks.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            self.marks.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **k):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    order = [i for m in epoch_order(len(s["rows"]), s["batch_size"]) for i in m]
    rows = [{"prompt": s["rows"][i]["prompt"], "chosen": [{"role": "assistant", "content": s["rows"][i]["chosen"]}],
             "rejected": [{"role": "assistant", "content": s["rows"][i]["rejected"]}]} for i in order]
    cuda = torch.cuda.is_available()
    args = DPOConfig(output_dir=str(work / "trl"), beta=0.1, learning_rate=s["lr"], lr_scheduler_type="constant",
                     warmup_steps=0, per_device_train_batch_size=s["batch_size"], max_steps=s["steps"],
                     max_length=None, bf16=s["precision"] == "bf16", gradient_checkpointing=False, use_cpu=not cuda,
                     report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, weight_decay=0.0,
                     max_grad_norm=1.0, seed=0, dataloader_num_workers=0)
    peft_config = None
    if name == "trl_lora":
        import peft

        peft_config = peft.LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], target_modules=LORA["targets"])
    clock = Clock()
    t0 = time.perf_counter()
    tr = InOrderDPOTrainer(model=s["model"], args=args, train_dataset=Dataset.from_list(rows),
                    processing_class=AutoTokenizer.from_pretrained(s["model"]), callbacks=[clock], peft_config=peft_config)
    tr.train()
    total = time.perf_counter() - t0
    return {"losses": clock.losses, "step_s": [b - a for a, b in zip(clock.marks, clock.marks[1:])],
            "end_to_end_s": total}


def worker(name: str, s: dict, q) -> None:
    import torch

    sys.stdout.flush()
    os.dup2(2, 1)  # libraries' prints go to stderr; the parent's stdout carries only the JSON
    sys.stdout = sys.stderr
    try:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["HARNESS_CACHE"] = tmp  # no reference cache shared between configurations
            out = (run_ours if name.startswith("ours_") else run_trl)(name, s, Path(tmp))
        tokens = step_tokens(s)
        out["tokens_per_s"] = sum(tokens[1:]) / sum(out["step_s"][1:]) if len(tokens) > 1 else None
        out["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        q.put(out)
    except Exception as e:  # reported in the JSON, the other configurations still run
        import traceback

        traceback.print_exc()
        q.put({"error": f"{type(e).__name__}: {e}"})


def run_config(name: str, s: dict, timeout: float) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=worker, args=(name, s, q))
    proc.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            out = q.get(timeout=1.0)
            break
        except queue_mod.Empty:
            if not proc.is_alive():
                return {"error": f"worker exited with code {proc.exitcode}"}
            if time.monotonic() > deadline:
                proc.kill()
                return {"error": f"over its {timeout:.0f} s share of the time budget"}
    proc.join()
    return out


def trl_missing() -> str | None:
    try:
        import datasets  # noqa: F401
        import trl  # noqa: F401
    except ImportError as e:
        return f"trl not importable here ({e})"
    return None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="write the JSON here too (atomically)")
    ap.add_argument("--dry-run", action="store_true", help="tiny model, fp32, on whatever device: checks the set-up")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=None, help="default: steps x batch size")
    ap.add_argument("--problems", type=int, default=16, help="arithmetic problems per prompt (sets sequence length)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--budget-s", type=float, default=450, help="whole run; each configuration gets a fair share")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t_start = time.monotonic()

    import torch
    import transformers

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        raise SystemExit("no CUDA device: run with --dry-run to check the set-up on CPU")
    if args.dry_run:
        args.steps, args.batch_size, args.problems = min(args.steps, 2), min(args.batch_size, 2), min(args.problems, 2)
    shape = SHAPES["dry" if args.dry_run else "1b"]
    precision = "bf16" if cuda and not args.dry_run else "no"
    pairs = args.pairs or args.steps * args.batch_size
    rows = make_pairs(pairs, args.problems)
    report = {"benchmark": "gpu_check", "dry_run": args.dry_run,
              "device": torch.cuda.get_device_name(0) if cuda else "cpu",
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "cuda": torch.version.cuda},
              "settings": {"shape": shape, "steps": args.steps, "batch_size": args.batch_size, "pairs": pairs,
                           "problems_per_prompt": args.problems, "precision": "bf16 autocast, fp32 master weights"
                           if precision == "bf16" else "fp32", "lr": 1e-5, "lr_schedule": "constant", "lora": LORA,
                           "peak_memory": "torch.cuda.max_memory_allocated per configuration process"},
              "results": {}}
    skip_trl = trl_missing()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "llama"
        t = time.perf_counter()
        report["settings"]["parameters"] = build_model(model_dir, shape, rows, torch.bfloat16 if cuda else torch.float32)
        report["build_model_s"] = time.perf_counter() - t
        s = {"model": str(model_dir), "rows": rows, "batch_size": args.batch_size, "steps": args.steps,
             "max_length": 2048, "lr": 1e-5, "precision": precision}
        report["settings"]["step_tokens"] = step_tokens(s)
        todo = [c for c in args.configs if not (c.startswith("trl_") and skip_trl)]
        for c in args.configs:
            if c not in todo:
                report["results"][c] = {"skipped": skip_trl}
        for i, c in enumerate(todo):
            left = args.budget_s - (time.monotonic() - t_start)
            share = left / (len(todo) - i)
            # On CPU (dry run, shared machines) no deadline: it only checks that every configuration runs.
            report["results"][c] = run_config(c, s, timeout=max(30.0, share * 1.5) if cuda else 3600.0)
            print(f"{c}: {json.dumps(report['results'][c])[:300]}", file=sys.stderr, flush=True)
    res = report["results"]

    def ratio(a, b, key):
        if key in res.get(a, {}) and key in res.get(b, {}) and res[a][key] and res[b][key]:
            return res[a][key] / res[b][key]
        return None

    report["ratios"] = {
        "peak_memory_chunked_vs_full_logits_full_ft": ratio("ours_full_chunked", "ours_full_full_logits", "peak_gpu_memory_gib"),
        "peak_memory_chunked_vs_full_logits_lora": ratio("ours_lora_chunked", "ours_lora_full_logits", "peak_gpu_memory_gib"),
        "peak_memory_ours_vs_trl_full_ft": ratio("ours_full_chunked", "trl_full", "peak_gpu_memory_gib"),
        "peak_memory_ours_vs_trl_lora": ratio("ours_lora_chunked", "trl_lora", "peak_gpu_memory_gib"),
        "tokens_per_s_ours_vs_trl_full_ft": ratio("ours_full_chunked", "trl_full", "tokens_per_s"),
        "tokens_per_s_ours_vs_trl_lora": ratio("ours_lora_chunked", "trl_lora", "tokens_per_s"),
        "tokens_per_s_chunked_vs_full_logits_full_ft": ratio("ours_full_chunked", "ours_full_full_logits", "tokens_per_s"),
    }
    report["total_s"] = time.monotonic() - t_start
    if args.out:
        from align.atomic import write_json_atomic

        write_json_atomic(Path(args.out), report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
