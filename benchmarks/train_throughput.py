"""Training throughput and memory: our trainer against TRL's DPOTrainer, plus DGPO against live-reference DPO.

    python benchmarks/train_throughput.py [--pairs 64 --batch-size 8 --max-length 256 --hidden 256 --layers 4]
    python benchmarks/train_throughput.py --vocab 32000 --hidden 512 --max-length 512 ...   # realistic shape

Headline: end-to-end time (tokenisation + model loading + reference pass + all steps) of
ours against TRL, on the same batches in the same order (TRL's sampler is sequential over
the pairs laid out in our epoch order), with a constant learning rate, so the per-step
losses of every configuration can be compared: ``headline.max_step_loss_diff``.

Prints one JSON object. Every configuration trains one epoch of the same real
pairs (HH-RLHF harmless-base test pairs that fit in ``--max-length`` tokens, so
neither side truncates and both see identical token ids) on the same model
(a Llama built by ``align.tiny.make_tiny_model``, cached), same batch size,
learning rate, schedule and precision (fp32; TRL's bf16 and gradient
checkpointing defaults are switched off to match ours):

  ours_dpo        align.trainer.train, method dpo (reference log-probs in one pass, then steps)
  ours_dgpo       align.trainer.train, method dgpo (no reference at all)
  trl_stock       trl.DPOTrainer, live reference model forward every step
  trl_precompute  trl.DPOTrainer with precompute_ref_log_probs=True

Each configuration runs in its own spawned process, so ``peak_rss_mb`` is that
process's own high-water mark (``getrusage`` ru_maxrss) and ``peak_rss_delta_mb``
subtracts its RSS after imports (psutil), before any model is loaded.
Step timings (forward, backward, optimizer) come from ours' metrics.jsonl windows
(one per step) and from TRL callback timestamps; ``tokens_per_s`` is the best
over ``--repeats`` interleaved runs of steps 2.. (the machine may be shared, and
contention only slows a run), ``steps_per_s`` and ``step_s`` follow from it at
the epoch's mean step size (the same for every configuration); memory is the
median over runs;
``end_to_end_s`` is tokenisation + model loading + reference pass + all steps
(ours without its final save_pretrained/plot, which TRL does not do here).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONFIGS = ("ours_dpo", "ours_dgpo", "trl_stock", "trl_precompute", "ours_dpo_full_logits")
DEFAULT_CONFIGS = ("ours_dpo", "ours_dgpo", "trl_stock", "trl_precompute")
HH_FILE = Path("hh_rlhf") / "harmless-base" / "test.jsonl.gz"


# ------------------------------------------------------------------ set-up
def hh_texts(data_dir: Path) -> list[str]:
    import gzip

    with gzip.open(data_dir / HH_FILE, "rt") as fh:
        rows = [json.loads(ln) for ln in fh if ln.strip()]
    return [r[k] for r in rows for k in ("chosen", "rejected")]


def bench_model(hidden: int, layers: int, vocab: int | None = None, data_dir: Path | None = None) -> Path:
    """A Llama of the requested size; built once and cached (weights barely trained: throughput does not
    depend on them). Without ``vocab``: the tiny tokenizer. With it: a BPE tokenizer trained here on the
    HH-RLHF text (it stops at ~24k merges on this corpus), the embedding padded to ``vocab`` rows as
    real models pad theirs, so every softmax runs over ``vocab`` entries."""
    from align.cache import cache_root
    from align.tiny import make_tiny_model

    path = cache_root() / (f"bench-llama-h{hidden}-l{layers}" + (f"-v{vocab}-hh-p2048" if vocab else ""))
    if not (path / "config.json").exists():
        heads = max(1, hidden // 64)
        if not vocab:
            make_tiny_model(path, hidden_size=hidden, num_layers=layers, num_heads=heads, pretrain_steps=20,
                            progress=False)
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tmp = path.with_name(path.name + ".build")
            make_tiny_model(tmp, hh_texts(data_dir), vocab_size=vocab, hidden_size=hidden, num_layers=layers,
                            num_heads=heads, pretrain_steps=20, batch_size=4, progress=False)
            model = AutoModelForCausalLM.from_pretrained(tmp)
            if model.config.vocab_size < vocab:
                model.resize_token_embeddings(vocab, mean_resizing=False)
            # positions for the long-sequence shapes (the trainer clamps max_length to them); rotary, no new weights
            model.config.max_position_embeddings = 2048
            model.save_pretrained(tmp)
            AutoTokenizer.from_pretrained(tmp).save_pretrained(tmp)
            tmp.rename(path)
    return path


def select_pairs(model: Path, data_dir: Path, n: int, max_length: int) -> tuple[list, int]:
    """The first ``n`` HH-RLHF pairs whose full sequences fit in ``max_length``; and the epoch's token count."""
    from transformers import AutoTokenizer

    from align.data import load_preference_data
    from align.encoding import encode_pair

    tok = AutoTokenizer.from_pretrained(model)
    pairs, _ = load_preference_data([str(data_dir / HH_FILE)], skip_invalid=True)
    chosen, tokens = [], 0
    for i, p in enumerate(pairs):
        e = encode_pair(tok, p, i, 10**9, 10**9)
        if len(e.prompt_ids) + max(len(e.chosen_ids), len(e.rejected_ids)) <= max_length:
            chosen.append(p)
            tokens += 2 * len(e.prompt_ids) + len(e.chosen_ids) + len(e.rejected_ids)
            if len(chosen) == n:
                return chosen, tokens
    raise SystemExit(f"{data_dir / HH_FILE}: only {len(chosen)} pairs fit in {max_length} tokens, {n} asked")


# ----------------------------------------------------------------- workers
def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _timed(fn, store: dict, key: str):
    def wrapper(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            store[key] = store.get(key, 0.0) + time.perf_counter() - t

    return wrapper


def ours_config_order(s: dict) -> list[int]:
    """Pair indices in the order our trainer visits them in epoch 0 (TRL gets the pairs in this order)."""
    from align.config import TrainConfig
    from align.trainer import step_batches

    cfg = TrainConfig(batch_size=s["batch_size"], seed=s["seed"])
    return [i for step in step_batches(len(s["rows"]), cfg, 0, 1) for micro in step for i in micro]


def run_ours(method: str, s: dict, work: Path, full_logits: bool = False) -> dict:
    import align.trainer as trainer
    from align.config import TrainConfig
    from align.data import write_jsonl
    from align.encoding import encode_pairs
    from transformers import AutoTokenizer

    data = write_jsonl(s["rows"], work / "pairs.jsonl")
    cfg = TrainConfig(method=method, model=s["model"], data=[str(data)], output=str(work / "run"), lr=s["lr"],
                      batch_size=s["batch_size"], max_length=s["max_length"], max_prompt_length=s["max_length"],
                      mixed_precision="no", progress=False, save_steps=10**9, logging_steps=1,
                      ref_batch_size=s["ref_batch_size"], seed=s["seed"], lr_schedule="constant", warmup_ratio=0.0,
                      full_logits=full_logits)
    times: dict[str, float] = {}
    trainer.reference_logps = _timed(trainer.reference_logps, times, "reference_pass_s")
    trainer.save_final = _timed(trainer.save_final, times, "final_save_s")
    t0 = time.perf_counter()
    trainer.train(cfg)
    total = time.perf_counter() - t0

    # Per-step seconds from the trainer's own log: one window per step, tokens_per_s = step tokens / step time.
    tok = AutoTokenizer.from_pretrained(s["model"])
    from align.data import load_preference_data

    pairs, _ = load_preference_data([str(data)])
    encoded, _ = encode_pairs(tok, pairs, cfg.max_length, cfg.max_prompt_length)
    lens = [2 * len(e.prompt_ids) + len(e.chosen_ids) + len(e.rejected_ids) for e in encoded]
    steps = trainer.step_batches(len(encoded), cfg, 0, 1)
    rows = [json.loads(ln) for ln in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == len(steps), (len(rows), len(steps))
    step_tokens = [sum(lens[i] for m in micros for i in m) for micros in steps]
    step_s = [t / r["tokens_per_s"] for t, r in zip(step_tokens, rows)]
    return {"step_times_s": step_s, "step_tokens": step_tokens,
            "end_to_end_s": total - times.get("final_save_s", 0.0),
            "reference_pass_s": times.get("reference_pass_s", 0.0), "final_loss": rows[-1]["loss"],
            "step_losses": [r["loss"] for r in rows],
            "logps": json.loads((work / "run" / "run.json").read_text())["logps"]}


def run_trl(precompute: bool, s: dict, work: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from torch.utils.data import SequentialSampler
    from trl import DPOConfig, DPOTrainer

    class InOrderDPOTrainer(DPOTrainer):  # reads the pairs in the given order (ours): the same batches
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks: list[float] = []
            self.tokens: list[int] = []  # cumulative non-padding tokens, counted by TRL itself
            self.trainer = None
            self.losses: list[float] = []

        def on_train_begin(self, *a, **kw):
            self.marks.append(time.perf_counter())
            self.tokens.append(self.trainer._total_train_tokens)

        def on_step_end(self, *a, **kw):
            self.marks.append(time.perf_counter())
            self.tokens.append(self.trainer._total_train_tokens)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    # Our epoch order, read sequentially: the same batches as ours, step for step.
    rows = [{"prompt": s["rows"][i]["prompt"], "chosen": [{"role": "assistant", "content": s["rows"][i]["chosen"]}],
             "rejected": [{"role": "assistant", "content": s["rows"][i]["rejected"]}]} for i in ours_config_order(s)]
    args = DPOConfig(output_dir=str(work / "trl"), beta=0.1, learning_rate=s["lr"], num_train_epochs=1,
                     per_device_train_batch_size=s["batch_size"], max_length=None, bf16=False,
                     gradient_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
                     logging_steps=1, disable_tqdm=True, warmup_steps=0, lr_scheduler_type="constant",
                     weight_decay=0.0, max_grad_norm=1.0, seed=s["seed"], dataloader_num_workers=0,
                     precompute_ref_log_probs=precompute, precompute_ref_batch_size=s["ref_batch_size"])
    clock = StepClock()
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(s["model"])
    trainer = InOrderDPOTrainer(model=s["model"], args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         callbacks=[clock])
    clock.trainer = trainer
    init_s = time.perf_counter() - t0  # tokenisation, model (+ reference) loading, reference pass if precomputing
    result = trainer.train()
    total = time.perf_counter() - t0
    step_s = [b - a for a, b in zip(clock.marks, clock.marks[1:])]
    step_tokens = [b - a for a, b in zip(clock.tokens, clock.tokens[1:])]
    return {"step_times_s": step_s, "step_tokens": step_tokens, "end_to_end_s": total, "init_s": init_s,
            "final_loss": clock.losses[-1], "step_losses": clock.losses}


def worker(name: str, s: dict, queue) -> None:
    import torch

    # Every worker pays the same imports before its baseline, model classes included.
    import transformers
    import trl  # noqa: F401

    import align.trainer  # noqa: F401

    getattr(transformers, transformers.AutoConfig.from_pretrained(s["model"]).architectures[0])

    sys.stdout.flush()
    os.dup2(2, 1)  # TRL prints its train summary to stdout; the parent's stdout carries only the JSON
    sys.stdout = sys.stderr
    torch.set_num_threads(s["threads"])
    torch.manual_seed(s["seed"])
    base = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HARNESS_CACHE"] = tmp  # no reference cache survives between configurations
        work = Path(tmp)
        if name == "ours_dpo_full_logits":
            out = run_ours("dpo", s, work, full_logits=True)
        elif name.startswith("ours_"):
            out = run_ours(name.removeprefix("ours_"), s, work)
        else:
            out = run_trl(name == "trl_precompute", s, work)
    peak = _peak_rss_mb()
    queue.put({**out, "rss_after_imports_mb": base, "peak_rss_mb": peak, "peak_rss_delta_mb": peak - base})


def run_config(name: str, s: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=worker, args=(name, s, queue))
    proc.start()
    import queue as queue_mod

    while True:  # read before join (a full pipe would block the child), but notice a crashed child
        try:
            out = queue.get(timeout=1.0)
            break
        except queue_mod.Empty:
            if not proc.is_alive():
                raise SystemExit(f"{name}: worker exited with code {proc.exitcode} (its traceback is above)")
    proc.join()
    return out


# ----------------------------------------------------------------- report
def summarise(runs: dict, n_steps: int, tokens: int) -> dict:
    """Per configuration, best of its repeats: other jobs may share the machine, and contention only ever slows
    a run down. A run's step throughput is its tokens over its time for steps 2.. (step 1 is warm-up)."""
    import statistics

    out = {}
    for name, reps in runs.items():
        for r in reps:
            assert len(r["step_times_s"]) == n_steps, (name, len(r["step_times_s"]), n_steps)
            assert sum(r["step_tokens"]) == tokens, (name, sum(r["step_tokens"]), tokens)  # same data, same epoch
        rates = [sum(r["step_tokens"][1:]) / sum(r["step_times_s"][1:]) for r in reps]
        tps = max(rates)
        best = min(reps, key=lambda r: r["end_to_end_s"])
        out[name] = {
            "tokens_per_s": tps,
            "steps_per_s": tps * n_steps / tokens,  # every configuration's mean step holds tokens / n_steps
            "step_s": tokens / n_steps / tps,
            "tokens_per_s_per_run": rates,
            "first_step_s": statistics.median(r["step_times_s"][0] for r in reps),
            "end_to_end_s": best["end_to_end_s"],
            "end_to_end_tokens_per_s": tokens / best["end_to_end_s"],
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in reps),
            "peak_rss_delta_mb": statistics.median(r["peak_rss_delta_mb"] for r in reps),
            "final_loss": reps[0]["final_loss"],
            "step_losses": reps[0]["step_losses"],
            **({"logps": reps[0]["logps"]} if "logps" in reps[0] else {}),
            **{k: min(r[k] for r in reps) for k in ("reference_pass_s", "init_s") if k in reps[0]},
        }
    return out


def headline(res: dict) -> dict:
    """End-to-end speed-up of our DPO over each peer, and how far their per-step losses are from ours."""
    ours = res["ours_dpo"]
    out = {"ours_dpo_end_to_end_s": ours["end_to_end_s"], "ours_dpo_logps": ours.get("logps")}
    for peer in ("trl_stock", "trl_precompute", "ours_dpo_full_logits"):
        if peer in res:
            out[f"end_to_end_speedup_vs_{peer}"] = res[peer]["end_to_end_s"] / ours["end_to_end_s"]
            diff = max(abs(a - b) for a, b in zip(ours["step_losses"], res[peer]["step_losses"]))
            out[f"max_step_loss_diff_vs_{peer}"] = diff
    return out


def ratios(res: dict, n_steps: int) -> dict:
    ours, dgpo, stock, pre = res["ours_dpo"], res["ours_dgpo"], res["trl_stock"], res["trl_precompute"]
    # Our DPO step plus its reference forward amortised per step: a live-reference DPO step in our own code.
    live_ref_step = ours["step_s"] + ours["reference_pass_s"] / n_steps
    return {
        "ours_dpo_vs_trl_stock": {
            "steps_per_s": ours["steps_per_s"] / stock["steps_per_s"],
            "end_to_end_speed": stock["end_to_end_s"] / ours["end_to_end_s"],
            "peak_rss_delta": ours["peak_rss_delta_mb"] / stock["peak_rss_delta_mb"],
        },
        "ours_dpo_vs_trl_precompute": {
            "steps_per_s": ours["steps_per_s"] / pre["steps_per_s"],
            "end_to_end_speed": pre["end_to_end_s"] / ours["end_to_end_s"],
            "peak_rss_delta": ours["peak_rss_delta_mb"] / pre["peak_rss_delta_mb"],
        },
        "dgpo_vs_live_reference_dpo": {
            "step_time_vs_trl_stock": dgpo["step_s"] / stock["step_s"] - 1,
            "step_time_vs_ours_dpo_plus_amortised_reference": dgpo["step_s"] / live_ref_step - 1,
            "step_time_vs_ours_dpo_step_only": dgpo["step_s"] / ours["step_s"] - 1,
            "end_to_end_vs_trl_stock": dgpo["end_to_end_s"] / stock["end_to_end_s"] - 1,
            "end_to_end_vs_ours_dpo": dgpo["end_to_end_s"] / ours["end_to_end_s"] - 1,
            "peak_rss_delta_vs_trl_stock": dgpo["peak_rss_delta_mb"] / stock["peak_rss_delta_mb"] - 1,
            "peak_rss_vs_trl_stock": dgpo["peak_rss_mb"] / stock["peak_rss_mb"] - 1,
            "peak_rss_delta_vs_ours_dpo": dgpo["peak_rss_delta_mb"] / ours["peak_rss_delta_mb"] - 1,
            "paper_claim": {"step_time": -0.25, "memory": -0.136},
        },
    }


def run_interleaved(model, pairs, args, ref_batch_size: int, desc: str) -> tuple[dict, int]:
    """Every configuration ``args.repeats`` times on the same rows, interleaved (load drifts hit all alike):
    {configuration: [run results]} and the number of steps of one epoch."""
    from tqdm.auto import tqdm

    # Prompt as messages, answers as strings: our loader's form; the TRL worker wraps answers as messages.
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    settings = {"model": str(model), "rows": rows, "batch_size": args.batch_size, "max_length": args.max_length,
                "lr": args.lr, "seed": 0, "threads": args.threads, "ref_batch_size": ref_batch_size}
    runs: dict[str, list] = {name: [] for name in args.configs}
    for name in tqdm([name for _ in range(args.repeats) for name in args.configs], desc=desc, file=sys.stderr):
        runs[name].append(run_config(name, settings))
    return runs, -(-len(pairs) // args.batch_size)


def run(args) -> dict:
    data_dir = Path(args.data_dir or os.environ.get("HARNESS_DATA_DIR") or ROOT.parent / "shared" / "data")
    model = bench_model(args.hidden, args.layers, args.vocab, data_dir)
    pairs, tokens = select_pairs(model, data_dir, args.pairs, args.max_length)
    runs, n_steps = run_interleaved(model, pairs, args, args.ref_batch_size, "configuration runs")
    res = summarise(runs, n_steps, tokens)
    import torch
    import transformers
    import trl

    report = {
        "benchmark": "train_throughput",
        "settings": {"model": f"Llama hidden={args.hidden} layers={args.layers} vocab={args.vocab or 'tiny tokenizer'}",
                     "pairs": args.pairs, "lr": args.lr, "lr_schedule": "constant", "ref_batch_size": args.ref_batch_size,
                     "order": "ours' seeded epoch order; TRL reads it sequentially (same batches)",
                     "batch_size": args.batch_size, "steps": n_steps, "max_length": args.max_length,
                     "epoch_tokens": tokens, "precision": "fp32", "gradient_checkpointing": False,
                     "threads": args.threads, "repeats": args.repeats, "data": str(HH_FILE), "memory": "per-process ru_maxrss (spawned)",
                     "machine_note": args.machine_note,
                     "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                  "trl": trl.__version__}},
        "headline": headline(res),
        "results": res,
    }
    if set(DEFAULT_CONFIGS) <= set(res):
        report["ratios"] = ratios(res, n_steps)
    return report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    # OpenMP workers spin-wait: on cores shared with other jobs, more than one thread makes step times swing
    # by 10-100x. One thread gives stable ratios; raise it on a dedicated machine.
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration, interleaved")
    ap.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), choices=CONFIGS)
    ap.add_argument("--vocab", type=int, help="vocabulary size: a BPE tokenizer trained here on the HH-RLHF text, "
                                              "embedding padded to this size (default: the tiny tokenizer)")
    ap.add_argument("--lr", type=float, default=1e-5, help="constant learning rate (both sides)")
    ap.add_argument("--ref-batch-size", type=int, default=16, help="pairs per reference forward (both sides)")
    ap.add_argument("--machine-note", default="", help="recorded in settings (e.g. 'shared, busy 2-core machine')")
    ap.add_argument("--data-dir", help="shared data directory (default: $HARNESS_DATA_DIR or ../shared/data)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # TRL's and datasets' bars (ours passes disable=False)
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
