"""Chunked log-probs (align.logps) equal the full-logits path: values and every gradient.

The chunked path never builds [B, T, V] logits: it catches the hidden states at the
output projection and scores answer tokens a chunk at a time, recomputing each chunk
in the backward. Here it is held to the full path within 1e-5 in fp32 (bf16 autocast:
see ``BF16_TOL``) on the tiny model, with several chunks per batch, under gradient
checkpointing and with peft LoRA adapters.
"""
from __future__ import annotations

import logging

import pytest
import torch

import align.logps as L
from align.data import arithmetic_preference_pairs, load_preference_data, write_jsonl
from align.encoding import collate, encode_pairs
from align.logps import ChunkedTokenLogps, concatenated_forward, logps_mode

TOL = 1e-5
# bf16 autocast: both paths run the same bf16 matmuls, but over different shapes ([B*T, H] vs chunks of
# answer rows), so products round differently; summed over ~10-token answers that stays below 2e-2 on
# log-probs of size ~10-30 (bf16 has 8 mantissa bits: 3e-3 relative per logit). Gradients: 2 % of the tensor's max.
BF16_TOL = 2e-2


@pytest.fixture(scope="module")
def batch(tiny_model, tmp_path_factory):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    path = write_jsonl(arithmetic_preference_pairs(8, seed=5), tmp_path_factory.mktemp("p") / "p.jsonl")
    enc, _ = encode_pairs(tok, load_preference_data([str(path)])[0], 96, 48)
    return collate(enc, tok.pad_token_id)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 64 tokens on the 384-token vocabulary: a batch spans several chunks."""
    monkeypatch.setattr(L, "CHUNK_ELEMENTS", 64 * 384)


def load(tiny_model, **kw):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, **kw)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the pre-trained point, so gradients are not tiny
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.train()


def run(model, batch, full_logits, autocast=False):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        c, r, nc, nr = concatenated_forward(model, batch, full_logits=full_logits)
    # a DPO-like objective: chosen and rejected pulled apart, so every gradient sign is exercised
    (-torch.nn.functional.logsigmoid(0.1 * (c - r)).sum() + 0.01 * c.sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return torch.cat([c, r]).detach(), torch.cat([nc, nr]), grads


def assert_same(a, b, tol, rel_grad_tol):
    (la, na, ga), (lb, nb, gb) = a, b
    assert torch.equal(na, nb)
    assert la.abs().min() > 1.0  # real sums of several answer tokens, not zeros
    assert (la - lb).abs().max().item() <= tol, (la - lb).abs().max()
    assert ga.keys() == gb.keys() and len(ga) > 0
    for n in ga:
        scale = gb[n].abs().max().clamp(min=1e-12)
        assert gb[n].abs().max() > 0, n
        rel = ((ga[n] - gb[n]).abs().max() / scale).item()
        assert rel <= rel_grad_tol, f"{n}: relative gradient difference {rel:.3g}"


def test_function_matches_autograd_with_bias_scale_and_softcap():
    """The autograd Function against plain autograd on the full logits: 7-row chunks, bias, scale and softcap."""
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(30, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(50, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 50, (30,), generator=gen)
    g = torch.randn(30, generator=gen, dtype=torch.float64)
    for scale, cap in [(1.0, None), (0.7, None), (1.0, 3.0), (2.0, 1.5)]:
        ours = ChunkedTokenLogps.apply(h, w, b, t, 7, scale, cap, torch.float64)
        z = (h @ w.T + b) * scale
        if cap:
            z = cap * torch.tanh(z / cap)
        ref = z.log_softmax(-1).gather(1, t[:, None]).squeeze(1).double()
        assert torch.allclose(ours.double(), ref, atol=1e-6)  # forward reduces in fp32
        go = torch.autograd.grad(ours, (h, w, b), g)
        gr = torch.autograd.grad(ref, (h, w, b), g)
        for x, y in zip(go, gr):
            assert torch.allclose(x, y, atol=1e-5), (scale, cap, (x - y).abs().max())


def test_chunked_equals_full_logits_fp32(tiny_model, batch, small_chunks):
    model = load(tiny_model)
    assert logps_mode(model, False) == "chunked"
    answer_tokens = int((batch["labels"][:, 1:] != -100).sum())
    assert answer_tokens > 2 * 64  # at least three chunks
    assert_same(run(model, batch, False), run(model, batch, True), TOL, TOL)


def test_chunked_equals_full_logits_bf16_autocast(tiny_model, batch, small_chunks):
    model = load(tiny_model)
    assert_same(run(model, batch, False, autocast=True), run(model, batch, True, autocast=True), BF16_TOL, BF16_TOL)


def test_chunked_with_gradient_checkpointing_equals_plain_full(tiny_model, batch, small_chunks):
    plain = run(load(tiny_model), batch, True)
    model = load(tiny_model)
    model.gradient_checkpointing_enable()
    assert_same(run(model, batch, False), plain, TOL, TOL)


def test_lora_chunked_equals_full_and_head_stays_frozen(tiny_model, batch, small_chunks):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(load(tiny_model), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                                   init_lora_weights=False))
    assert logps_mode(model, False) == "chunked"
    chunked, full = run(model, batch, False), run(model, batch, True)
    assert set(chunked[2]) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n for n in chunked[2])  # lm_head frozen: the Function skips its weight gradient
    assert_same(chunked, full, TOL, TOL)


def test_unsupported_head_falls_back_with_logged_reason(tiny_model, batch, caplog):
    """A head that is not a plain Linear (here: LoRA on lm_head) is scored from full logits, said once in the log."""
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(load(tiny_model), peft.LoraConfig(r=4, target_modules=["lm_head", "q_proj"],
                                                                   init_lora_weights=False))
    mode = logps_mode(model, False)
    assert mode.startswith("full (") and "not a plain Linear" in mode
    L._warned.clear()
    with caplog.at_level(logging.WARNING, logger="align.logps"):
        a = run(model, batch, False)
        run(model, batch, False)
    assert sum("log-probs from full logits" in r.message for r in caplog.records) == 1
    assert_same(a, run(model, batch, True), 0.0, 0.0)  # literally the full path


def test_output_transform_read_from_config():
    from transformers import PretrainedConfig

    assert L.output_transform(PretrainedConfig(final_logit_softcapping=30.0)) == (1.0, 30.0)
    assert L.output_transform(PretrainedConfig(logit_scale=0.0625)) == (0.0625, None)
    assert L.output_transform(PretrainedConfig(logits_scaling=8.0)) == (0.125, None)
    assert L.output_transform(PretrainedConfig()) == (1.0, None)


def test_trainer_default_chunked_equals_full_logits_run(tiny_model, tmp_path):
    """Two optimizer steps through align.trainer.train: the same weights either way; run.json says which path ran."""
    import json

    from safetensors.torch import load_file

    from align.config import TrainConfig
    from align.trainer import train

    prefs = write_jsonl(arithmetic_preference_pairs(16, seed=3), tmp_path / "arith.jsonl")
    common = dict(method="dpo", model=str(tiny_model), data=[str(prefs)], lr=1e-3, batch_size=8, max_steps=2,
                  max_length=96, max_prompt_length=48, save_steps=100, progress=False)
    train(TrainConfig(output=str(tmp_path / "chunked"), **common))
    train(TrainConfig(output=str(tmp_path / "full"), full_logits=True, **common))
    assert json.loads((tmp_path / "chunked" / "run.json").read_text())["logps"] == "chunked"
    assert json.loads((tmp_path / "full" / "run.json").read_text())["logps"] == "full"
    a, b = load_file(str(tmp_path / "chunked" / "model.safetensors")), load_file(str(tmp_path / "full" / "model.safetensors"))
    base = load_file(str(tiny_model / "model.safetensors"))
    moved = max((a[k] - base[k]).abs().max().item() for k in a)
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert moved > 1e-3  # two Adam steps at lr 1e-3 really moved the weights
    # Gradients agree to ~1e-7; Adam divides by sqrt(v), which turns that into up to ~1e-5 on near-zero gradients.
    assert diff < 1e-4, (diff, moved)


def test_cli_flag_reaches_the_config():
    import argparse

    from harness.cmd_train import add_train_arguments, config_from_args

    p = argparse.ArgumentParser(add_help=False)  # add_train_arguments brings its own --help
    add_train_arguments(p, ["dpo"])
    p.add_argument("--output")
    args = p.parse_args(["--method", "dpo", "--full-logits", "--output", "o"])
    assert config_from_args(args, "dpo").full_logits is True
    args = p.parse_args(["--method", "dpo", "--output", "o"])
    assert config_from_args(args, "dpo").full_logits is False
