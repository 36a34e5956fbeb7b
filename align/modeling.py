"""Building the policy (full, LoRA, QLoRA) and saving it; the training loop only calls these.

LoRA and QLoRA go through ``peft``. The reference of a LoRA run is the base model without
adapters: its log-probs are computed once with the adapters disabled (``reference_mode``), so no
second model is loaded. Checkpoints hold only the adapter (plus optimiser state), and the final
save writes the merged full model into ``output`` with the adapter in ``output/adapter``, or,
with ``merge_lora=False``, the adapter alone in ``output``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from pathlib import Path

import torch

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
DEFAULT_TARGETS = "all-linear"  # peft: every nn.Linear except the output head


def uses_lora(cfg) -> bool:
    return cfg.lora_r > 0


def check_settings(cfg) -> None:
    """Refuse contradictory or unsupported settings before anything is loaded (the CLI exits 2)."""
    if cfg.lora_r < 0:
        raise ValueError(f"lora_r: must be >= 0 (0 = full fine-tuning), got {cfg.lora_r}")
    if not uses_lora(cfg):
        names = ("lora_alpha", "lora_dropout", "lora_target_modules", "merge_lora", "load_in_4bit")
        changed = [f.name for f in dataclasses.fields(cfg) if f.name in names and getattr(cfg, f.name) != f.default]
        if changed:
            raise ValueError(f"{', '.join(changed)}: set without LoRA; add --lora-r R (R > 0) or drop them")
        return
    if cfg.lora_alpha <= 0:
        raise ValueError(f"lora_alpha: must be > 0, got {cfg.lora_alpha}")
    if not 0.0 <= cfg.lora_dropout < 1.0:
        raise ValueError(f"lora_dropout: must be in [0, 1), got {cfg.lora_dropout}")
    if cfg.load_in_4bit:
        check_4bit_available()


def check_4bit_available() -> None:
    if not torch.cuda.is_available():
        raise ValueError("--load-in-4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit kernels do not run on this "
                         "machine (no CUDA device). Drop --load-in-4bit to train LoRA on the full-precision base.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise ValueError(f"--load-in-4bit (QLoRA) needs bitsandbytes: pip install 'pref-harness[qlora]' ({e})") from None


def bnb_config():
    """QLoRA's quantisation (Dettmers et al. 2023): NF4 weights, double quantisation, bf16 compute."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def lora_config(cfg):
    from peft import LoraConfig

    targets = cfg.lora_target_modules or DEFAULT_TARGETS
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")


def base_dtype(cfg, mixed_precision: str) -> torch.dtype:
    """Full fine-tuning keeps fp32 master weights (bf16 comes from autocast). A LoRA base is frozen,
    so under bf16/fp16 it is loaded in that dtype (half the memory); the adapters stay fp32."""
    if uses_lora(cfg) and mixed_precision in ("bf16", "fp16"):
        return torch.bfloat16 if mixed_precision == "bf16" else torch.float16
    return torch.float32


def reference_tag(cfg, mixed_precision: str) -> str:
    """Part of the reference cache key: what besides the weights changes the base's log-probs."""
    if uses_lora(cfg) and cfg.load_in_4bit:
        return "nf4"
    return {torch.float32: "", torch.bfloat16: "bf16-base", torch.float16: "fp16-base"}[base_dtype(cfg, mixed_precision)]


def _enable_checkpointing(model) -> None:
    # transformers 5 renamed it; keep the old name for older releases
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    model.config.use_cache = False


def load_model(name: str, cfg, dtype: torch.dtype = torch.float32):
    """A plain causal LM (the full-fine-tuning policy, or a separate reference model)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
    if cfg.gradient_checkpointing:
        _enable_checkpointing(model)
    return model


def load_policy(name: str, cfg, acc):
    """The model to train: full, LoRA on a full-precision base, or LoRA on a 4-bit base (QLoRA)."""
    if not uses_lora(cfg):
        return load_model(name, cfg)
    from peft import get_peft_model

    if Path(name).is_dir():
        name = str(Path(name).resolve())  # adapter_config.json names its base: keep it valid from any directory
    from transformers import AutoModelForCausalLM

    if cfg.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        check_4bit_available()
        base = AutoModelForCausalLM.from_pretrained(name, quantization_config=bnb_config(), dtype=torch.bfloat16,
                                                    device_map={"": acc.local_process_index})
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=cfg.gradient_checkpointing)
    else:
        base = load_model(name, cfg, base_dtype(cfg, acc.mixed_precision))
        if cfg.gradient_checkpointing:
            base.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need a grad path
    return get_peft_model(base, lora_config(cfg))


def is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


@contextlib.contextmanager
def reference_mode(model, acc):
    """The base model without adapters (a no-op for full fine-tuning)."""
    inner = acc.unwrap_model(model)
    with inner.disable_adapter() if is_peft(inner) else contextlib.nullcontext():
        yield


def lora_summary(model, acc) -> dict | None:
    inner = acc.unwrap_model(model)
    if not is_peft(inner):
        return None
    pc = inner.peft_config["default"]
    trainable = sum(p.numel() for p in inner.parameters() if p.requires_grad)
    total = sum(p.numel() for p in inner.parameters())
    return {"r": pc.r, "alpha": pc.lora_alpha, "dropout": pc.lora_dropout, "scale": pc.lora_alpha / pc.r,
            "target_modules": sorted(pc.target_modules), "trainable_params": trainable, "total_params": total}


# ---------------------------------------------------------------- checkpoints
def register_checkpoint_hooks(acc) -> None:
    """Checkpoints of a LoRA run hold the adapter, not the frozen base (accelerate saves the rest).

    Sharded setups (FSDP, DeepSpeed) save through their own paths and are left to accelerate.
    """
    def save(models, weights, output_dir):
        for i in reversed(range(min(len(models), len(weights)))):
            inner = acc.unwrap_model(models[i])
            if is_peft(inner):
                if acc.is_main_process:
                    inner.save_pretrained(Path(output_dir) / f"adapter_{i}")
                weights.pop(i)

    def load(models, input_dir):
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        for i in reversed(range(len(models))):
            inner = acc.unwrap_model(models[i])
            path = Path(input_dir) / f"adapter_{i}" / ADAPTER_WEIGHTS
            if is_peft(inner) and path.exists():
                result = set_peft_model_state_dict(inner, load_file(str(path), device=str(acc.device)))
                if result.unexpected_keys:
                    raise ValueError(f"{path}: adapter does not fit the model: {result.unexpected_keys[:3]}")
                models.pop(i)

    acc.register_save_state_pre_hook(save)
    acc.register_load_state_pre_hook(load)


# ------------------------------------------------------------------- saving
def save_policy(acc, model, tokenizer, dest: Path, cfg) -> None:
    """Write the trained model into the empty folder ``dest`` (main process; all ranks must call it)."""
    state = acc.get_state_dict(model)  # collective under FSDP/DeepSpeed
    if not acc.is_main_process:
        return
    inner = acc.unwrap_model(model)
    if not is_peft(inner):
        inner.save_pretrained(dest, state_dict=state)
        tokenizer.save_pretrained(dest)
        return
    adapter = dest if not cfg.merge_lora else dest / "adapter"
    inner.save_pretrained(adapter, state_dict=state)
    tokenizer.save_pretrained(adapter)
    if cfg.merge_lora:
        merged = merge_adapter(adapter)
        merged.save_pretrained(dest)
        tokenizer.save_pretrained(dest)


def adapter_base(adapter_dir: str | Path) -> str:
    return json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]


def adapter_rank(adapter_dir: str | Path) -> int:
    return int(json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text())["r"])


def is_adapter_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / ADAPTER_CONFIG).exists() and not (p / "config.json").exists()


def merge_adapter(adapter_dir: str | Path, dtype="auto", device: str = "cpu"):
    """Base (full precision, in its stored dtype, never 4-bit) + adapter, merged: W + B·A·alpha/r."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(adapter_base(adapter_dir), dtype=dtype).to(device)
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


def load_for_inference(path: str | Path, dtype, device: str):
    """A model directory, or an adapter directory (its base + the adapter, merged in memory)."""
    from transformers import AutoModelForCausalLM

    if is_adapter_dir(path):
        return merge_adapter(path, dtype=dtype, device=device).eval()
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()


def tokenizer_source(path: str | Path) -> str:
    """Where the tokenizer of a model or adapter directory lives."""
    p = Path(path)
    if is_adapter_dir(p) and not (p / "tokenizer_config.json").exists():
        return adapter_base(p)
    return str(path)


def clear_stale_outputs(output: Path, cfg) -> None:
    """Remove model files of the other kind (a merged model vs an adapter alone) from an earlier run."""
    if uses_lora(cfg) and not cfg.merge_lora:
        stale = [output / "config.json", output / "adapter", *output.glob("model*.safetensors"),
                 output / "generation_config.json"]
    else:
        stale = [output / ADAPTER_CONFIG, output / ADAPTER_WEIGHTS]
        if not uses_lora(cfg):
            stale.append(output / "adapter")
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
