"""hf generation backend: batched left-padded generate vs one prompt at a time, same process, CPU.

Prints JSON with prompts/s for each and the speed-up (target >= 4x).
Usage: python benchmarks/generation_batching.py [--model DIR] [--n 64] [--batch-size 32] [--max-new-tokens 32]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    args = ap.parse_args()

    import random

    import torch

    from align.tiny import default_tiny_model
    from harness.generation import SamplingSettings, get_generator

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = args.model or str(default_tiny_model())
    rng = random.Random(0)
    convs = [[{"role": "user", "content": f"What is {rng.randint(2, 99)} + {rng.randint(2, 99)}?"}] for _ in range(args.n)]
    s = SamplingSettings(max_new_tokens=args.max_new_tokens)
    out = {}
    for name, bs in (("one_at_a_time", 1), ("batched", args.batch_size)):
        gen = get_generator("hf", model, batch_size=bs, progress=False)
        gen.generate(convs[:2], s)  # warm-up
        t = time.perf_counter()
        res = gen.generate(convs, s)
        dt = time.perf_counter() - t
        out[name] = {"batch_size": bs, "seconds": dt, "prompts_per_s": args.n / dt,
                     "new_tokens_per_s": sum(g.n_tokens for g in res) / dt, "texts_head": [g.text for g in res[:3]]}
    out["speedup"] = out["batched"]["prompts_per_s"] / out["one_at_a_time"]["prompts_per_s"]
    out["same_texts"] = out["batched"]["texts_head"] == out["one_at_a_time"]["texts_head"]
    out["target_speedup_min"] = 4.0
    print(json.dumps({"model": model, "n": args.n, "max_new_tokens": args.max_new_tokens, **out}, indent=2))


if __name__ == "__main__":
    main()
