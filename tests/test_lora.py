"""LoRA and QLoRA through peft on the tiny model: what trains, what is saved, resume, DDP, evaluation."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import train_two_processes
from align.config import TrainConfig
from align.trainer import train


def cfg(tiny_model, prefs, out, **kw):
    base = dict(method="dpo", model=str(tiny_model), data=[prefs], output=str(out), lr=1e-2, batch_size=8,
                max_steps=6, max_length=96, max_prompt_length=48, save_steps=100, progress=False, lora_r=4,
                lora_alpha=8.0)
    base.update(kw)
    return TrainConfig(**base)


def weights(path, name="model.safetensors"):
    return load_file(str(path / name))


@pytest.fixture(scope="module")
def lora_run(tiny_model, prefs, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "run"
    run = train(cfg(tiny_model, prefs, out, max_steps=8))
    return out, run


def test_merged_model_is_base_plus_scaled_BA_and_nothing_else_moved(lora_run, tiny_model):
    out, run = lora_run
    base, merged = weights(tiny_model), weights(out)
    adapter = weights(out / "adapter", "adapter_model.safetensors")
    conf = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert conf["r"] == 4 and conf["lora_alpha"] == 8.0 and conf["base_model_name_or_path"] == str(tiny_model.resolve())
    scale = 8.0 / 4
    # every linear layer of attention and MLP is adapted, the output head and embeddings are not
    targets = {t.rsplit(".", 1)[-1] for t in conf["target_modules"]}  # peft resolves all-linear to full names
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert run["lora"]["target_modules"] == sorted(conf["target_modules"])
    adapted = set()
    for key, w in base.items():
        stem = key.removesuffix(".weight")
        a_key = f"base_model.model.{stem}.lora_A.weight"
        if a_key in adapter:
            A, B = adapter[a_key], adapter[f"base_model.model.{stem}.lora_B.weight"]
            assert A.shape == (4, w.shape[1]) and B.shape == (w.shape[0], 4)
            assert B.abs().max() > 0  # B starts at zero: it was trained
            torch.testing.assert_close(merged[key], w + scale * (B @ A), rtol=0, atol=1e-6)
            adapted.add(key)
        else:
            assert torch.equal(merged[key], w), key  # norms, embeddings (tied head): bit-identical
    assert len(adapted) == 7 * 2  # 7 projections x 2 layers
    assert run["lora"]["trainable_params"] == sum(t.numel() for t in adapter.values())


def test_lora_dpo_raises_the_margin(lora_run, prefs, tiny_model):
    from tests.test_trainer import margin

    out, _ = lora_run
    assert margin(out, prefs, tiny_model) > margin(tiny_model, prefs, tiny_model) + 0.1
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # the reference is the base: the first loss is log 2


def test_resumed_lora_run_is_bit_identical_and_checkpoints_hold_the_adapter(tiny_model, prefs, tmp_path):
    kw = dict(grad_accum=2, batch_size=4, lora_dropout=0.1, save_steps=2)  # dropout: RNG state must resume too
    train(cfg(tiny_model, prefs, tmp_path / "full", **kw))
    part = tmp_path / "part"
    first = train(cfg(tiny_model, prefs, part, stop_after_steps=3, **kw))
    assert not first["completed"]
    ckpt = part / "checkpoints" / "step-3"
    files = {p.name for p in ckpt.rglob("*") if p.is_file()}
    assert "adapter_model.safetensors" in files and "optimizer.bin" in files
    assert not any(n.startswith("model") for n in files)  # no copy of the frozen base
    train(cfg(tiny_model, prefs, part, resume=True, **kw))
    for name in ("adapter/adapter_model.safetensors", "model.safetensors"):
        a, b = load_file(str(tmp_path / "full" / name)), load_file(str(part / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_no_merge_saves_the_adapter_alone_and_eval_loads_it(lora_run, tiny_model, prefs, tmp_path):
    """An adapter directory evaluates (hf generation; lm-eval args) like the merged model."""
    from harness.evaluation.openllm import model_source
    from harness.generation import SamplingSettings, get_generator

    out = tmp_path / "adapter-only"
    train(cfg(tiny_model, prefs, out, max_steps=8, merge_lora=False))
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "run.json"} <= names
    assert "model.safetensors" not in names and "config.json" not in names
    # same seed, same steps: the adapter equals the one saved beside the merged model
    a, b = weights(out, "adapter_model.safetensors"), weights(lora_run[0] / "adapter", "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)

    convs = [[{"role": "user", "content": f"What is {x} + {y}?"}] for x, y in [(12, 7), (45, 9), (6, 70)]]
    s = SamplingSettings(max_new_tokens=16)
    from_adapter = get_generator("hf", str(out), batch_size=4, progress=False).generate(convs, s)
    from_merged = get_generator("hf", str(lora_run[0]), batch_size=4, progress=False).generate(convs, s)
    from_base = get_generator("hf", str(tiny_model), batch_size=4, progress=False).generate(convs, s)
    assert [g.text for g in from_adapter] == [g.text for g in from_merged]
    assert [g.text for g in from_adapter] != [g.text for g in from_base]  # the adapter was applied

    base = str(tiny_model.resolve())
    assert model_source(str(out), "hf") == {"pretrained": base, "peft": str(out)}
    assert model_source(str(out), "vllm") == {"pretrained": base, "lora_local_path": str(out), "max_lora_rank": 4}
    assert model_source(str(lora_run[0]), "hf") == {"pretrained": str(lora_run[0])}


def test_openllm_eval_of_an_adapter_dir_equals_the_merged_model(lora_run, data_dir, tmp_path):
    """lm-eval's HFLM with peft= (base + adapter) scores exactly what the merged model scores."""
    from harness.evaluation import EvalRequest, get_benchmark

    out = lora_run[0]
    scores = {}
    for name, model in (("adapter", out / "adapter"), ("merged", out)):
        req = EvalRequest(model=str(model), tasks=["arc_challenge"], limit=4, data_dir=str(data_dir),
                          backend_options={"batch_size": 4, "device": "cpu"})
        res = get_benchmark("openllm")(req)
        scores[name] = res
    assert scores["adapter"].backend["model_args"].get("peft") == str(out / "adapter")
    raw = {k: v.raw["results"]["arc_challenge"] for k, v in scores.items()}
    assert raw["adapter"]["acc_norm,none"] == raw["merged"]["acc_norm,none"]
    assert raw["adapter"]["acc,none"] == raw["merged"]["acc,none"]


def test_settings_are_checked_before_loading(tiny_model, prefs, tmp_path):
    with pytest.raises(ValueError, match="lora_alpha, merge_lora: set without LoRA"):
        train(cfg(tiny_model, prefs, tmp_path / "x", lora_r=0, merge_lora=False))
    with pytest.raises(ValueError, match="lora_dropout: must be in"):
        train(cfg(tiny_model, prefs, tmp_path / "x", lora_dropout=1.5))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_qlora_on_cpu_stops_at_once_with_a_clear_message(tiny_model, tmp_path):
    import time

    from align.modeling import bnb_config

    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "harness", "train", "--method", "dpo", "--model", str(tiny_model),
                        "--lora-r", "8", "--load-in-4bit", "--output", str(tmp_path / "q"), "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "--load-in-4bit (QLoRA) needs a CUDA GPU" in r.stderr
    assert time.perf_counter() - t0 < 60 and not (tmp_path / "q" / "metrics.jsonl").exists()
    c = bnb_config()  # what a CUDA machine would load the base with
    assert c.load_in_4bit and not c.load_in_8bit
    assert (c.bnb_4bit_quant_type, c.bnb_4bit_use_double_quant, c.bnb_4bit_compute_dtype) == ("nf4", True, torch.bfloat16)


def test_two_process_lora_matches_one_process(tiny_model, prefs, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo DDP) = one process with the same global batch."""
    one = tmp_path / "one"
    train(cfg(tiny_model, prefs, one, batch_size=8, max_steps=3, lr=1e-3, lora_alpha=16.0, lora_r=8))
    two = tmp_path / "two"
    r = train_two_processes(tiny_model, prefs, two, "dpo", "--lora-r", "8")
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((two / "run.json").read_text())
    assert run["world_size"] == 2 and run["lora"]["r"] == 8
    a = weights(one / "adapter", "adapter_model.safetensors")
    b = weights(two / "adapter", "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # gloo sums in another order
    assert r.stdout.count("merged model written") == 1
