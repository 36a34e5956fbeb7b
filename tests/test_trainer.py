"""The trainer, end to end on the tiny model: learning, resume, reference cache, outputs."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import train_two_processes
from align.config import TrainConfig, build_config
from align.trainer import train


def cfg(tiny_model, prefs, out, **kw):
    base = dict(method="dpo", model=str(tiny_model), data=[prefs], output=str(out), lr=1e-3, batch_size=8,
                max_steps=6, max_length=96, max_prompt_length=48, save_steps=2, progress=False, logging_steps=1)
    base.update(kw)
    return TrainConfig(**base)


def weights(path):
    return load_file(str(path / "model.safetensors"))


def rows(path):
    return [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]


def margin(model_dir, prefs, tiny_model):
    """Mean log π(y_w) − log π(y_l) over the data."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from align.data import load_preference_data
    from align.encoding import collate, encode_pairs
    from align.logps import concatenated_forward

    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc, _ = encode_pairs(tok, load_preference_data([prefs])[0], 96, 48)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        c, r, _, _ = concatenated_forward(model, collate(enc, tok.pad_token_id))
    return (c - r).mean().item()


@pytest.mark.parametrize("method", ["dpo", "dpop", "dgpo"])
def test_training_moves_preferences_and_writes_outputs(tiny_model, prefs, tmp_path, method):
    out = tmp_path / method
    # 12 steps: at 8, DPOP's rise (its penalty holds the chosen answer back) sat at 0.0997, on the threshold's edge
    run = train(cfg(tiny_model, prefs, out, method=method, max_steps=12))
    assert run["completed"] and run["steps"] == 12
    assert margin(out, prefs, tiny_model) > margin(tiny_model, prefs, tiny_model) + 0.1
    m = rows(out)
    assert [r["step"] for r in m] == list(range(1, 13))
    for key in ("loss", "lr", "epoch", "logps/chosen", "logps/rejected", "logps/chosen_mean", "logps/rejected_mean",
                "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "grad_norm", "tokens_per_s"):
        assert key in m[0], key
    assert m[0]["lr"] < m[1]["lr"] or m[0]["lr"] > 0  # warm-up starts above zero
    assert m[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # linear decay ends at zero
    saved = json.loads((out / "run.json").read_text())
    assert saved["config"]["method"] == method and saved["versions"]["torch"] == torch.__version__
    assert (out / "training_curves.png").stat().st_size > 1000
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).chat_template  # lm-eval / vLLM apply it


def test_resumed_run_ends_with_identical_weights(tiny_model, prefs, tmp_path):
    full = tmp_path / "full"
    train(cfg(tiny_model, prefs, full, grad_accum=2, batch_size=4))
    part = tmp_path / "part"
    first = train(cfg(tiny_model, prefs, part, grad_accum=2, batch_size=4, stop_after_steps=3))
    assert not first["completed"] and not (part / "model.safetensors").exists()
    assert (part / "checkpoints" / "step-3" / "trainer_state.json").exists()
    train(cfg(tiny_model, prefs, part, grad_accum=2, batch_size=4, resume=True))
    a, b = weights(full), weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in rows(full)] == [r["loss"] for r in rows(part)]  # no step lost or logged twice


def test_grad_accumulation_matches_a_big_batch(tiny_model, prefs, tmp_path):
    train(cfg(tiny_model, prefs, tmp_path / "a", batch_size=8, grad_accum=1, max_steps=3, length_groups=1))
    train(cfg(tiny_model, prefs, tmp_path / "b", batch_size=4, grad_accum=2, max_steps=3, length_groups=1))
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_length_grouped_forwards_give_the_same_training(tiny_model, prefs, tmp_path):
    """Splitting micro-batches into length-sorted forwards only removes padding."""
    train(cfg(tiny_model, prefs, tmp_path / "one", length_groups=1, max_steps=3))
    train(cfg(tiny_model, prefs, tmp_path / "four", length_groups=4, max_steps=3))
    la, lb = rows(tmp_path / "one"), rows(tmp_path / "four")
    assert [x["loss"] for x in la] == pytest.approx([x["loss"] for x in lb], rel=1e-5)
    assert [x["rewards/margins"] for x in la] == pytest.approx([x["rewards/margins"] for x in lb], rel=1e-4, abs=1e-6)
    assert sum(x["tokens_per_s"] > 0 for x in lb) == 3
    a, b = weights(tmp_path / "one"), weights(tmp_path / "four")
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)  # Adam at lr 1e-3 amplifies float noise


def test_reference_logps_cached_and_keyed(tiny_model, prefs, tmp_path):
    r1 = train(cfg(tiny_model, prefs, tmp_path / "r1", max_steps=1))
    r2 = train(cfg(tiny_model, prefs, tmp_path / "r2", max_steps=1))
    assert r2["reference_cache"]["key"] == r1["reference_cache"]["key"] and r2["reference_cache"]["reused"]
    r3 = train(cfg(tiny_model, prefs, tmp_path / "r3", max_steps=1, max_length=28, max_prompt_length=12))
    assert r3["reference_cache"]["key"] != r1["reference_cache"]["key"]  # tokenisation is part of the key
    r5 = train(cfg(tiny_model, prefs, tmp_path / "r5", max_steps=1, full_logits=True))
    assert r5["reference_cache"]["key"] != r1["reference_cache"]["key"] and not r5["reference_cache"]["reused"]
    assert train(cfg(tiny_model, prefs, tmp_path / "r4", max_steps=1, method="dgpo"))["reference_cache"] is None


def test_recipes_cite_papers_and_fill_the_config():
    smaug = build_config("smaug-dpop")
    assert smaug.method == "dpop" and smaug.loss == {"name": "dpop", "beta": 0.3, "dpop_lambda": 50.0, "form": "corrected"}
    assert build_config("zephyr-dpo").loss["beta"] == 0.1 and build_config("dgpo").loss["beta"] == 2.5
    assert build_config("smaug-dpop", loss={"beta": 0.5}).loss["beta"] == 0.5  # CLI overrides win
    assert build_config("sdpo").method == "sdpo" and build_config("sdpo").loss["name"] == "dpo"
    assert build_config("smaug-dpop").recipe == "smaug-dpop"


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_help_and_bad_data(tmp_path):
    h = run_cli("train", "--help")
    assert h.returncode == 0 and "--dpop-lambda" in h.stdout and "--resume" in h.stdout
    assert "--warmup-ratio" in h.stdout and "{linear,cosine,constant}" in h.stdout  # generated from TrainConfig
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n{"prompt": "p", "chosen": "c"}\n')
    r = run_cli("train", "--method", "dpo", "--data", str(bad), "--output", str(tmp_path / "o"), "--no-progress")
    assert r.returncode == 2
    assert f"{bad}:2: field 'rejected': missing" in r.stderr


def test_two_process_ddp_matches_one_process(tiny_model, prefs, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo DDP) = one process with the same global batch."""
    one = tmp_path / "one"
    train(cfg(tiny_model, prefs, one, batch_size=8, max_steps=3, save_steps=100))
    two = tmp_path / "two"
    r = train_two_processes(tiny_model, prefs, two)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((two / "run.json").read_text())["world_size"] == 2
    a, b = weights(one), weights(two)
    # gloo's all-reduce sums in another order; Adam (lr 1e-3) turns that into ~1e-5 differences
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    assert r.stdout.count("model written") == 1  # only the main process reports


def test_gradient_checkpointing_gives_the_same_step(tiny_model, prefs, tmp_path):
    train(cfg(tiny_model, prefs, tmp_path / "plain", max_steps=2))
    train(cfg(tiny_model, prefs, tmp_path / "ckpt", max_steps=2, gradient_checkpointing=True))
    a, b = weights(tmp_path / "plain"), weights(tmp_path / "ckpt")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_make_tiny_model_cli_on_given_text(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("\n\n".join(f"The cat sat on mat number {i}." for i in range(200)))
    r = run_cli("make-tiny-model", "--output", str(tmp_path / "m"), "--text", str(text), "--steps", "30")
    assert r.returncode == 0, r.stderr[-2000:]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    info = json.loads((tmp_path / "m" / "tiny_model.json").read_text())
    assert info["n_texts"] == 200 and info["final_loss"] < 4.0  # it learned something from the text
    assert model.config.vocab_size == len(tok) and tok.chat_template
