"""hf backend (batched vs one-by-one parity) and openai backend over real loopback HTTP."""
from __future__ import annotations

import re

import pytest

from harness.generation import SamplingSettings, apply_stop, get_generator
from harness.testing.fake_openai import FakeOpenAI

QUESTIONS = ["What is 12 + 7?", "What is 45 - 9?", "What is 6 * 7?", "What is 88 + 11?", "What is 3 * 12?"]


def convs(qs):
    return [[{"role": "user", "content": q}] for q in qs]


def reply_for(content: str) -> str:
    return "reply: " + content[::-1]


def echo_responder(request: dict) -> dict:
    """A reply derived from the last user message, cut to max_tokens words (one word = one token)."""
    words = reply_for(request["messages"][-1]["content"]).split()
    cut = words[: request.get("max_tokens") or len(words)]
    return {"text": " ".join(cut), "completion_tokens": len(cut),
            "finish_reason": "length" if len(cut) < len(words) else "stop"}


def echo_server(fail_first: int = 0, fail_status: int = 500, latency_s: float = 0.0) -> FakeOpenAI:
    fake = FakeOpenAI(responder=echo_responder, latency_s=latency_s)
    fake.inject(*[fail_status] * fail_first)
    return fake


def test_apply_stop_cuts_at_earliest():
    assert apply_stop("abc STOP def END", ("END", "STOP")) == ("abc ", True)
    assert apply_stop("abc", ("x",)) == ("abc", False)


def test_hf_batched_equals_one_by_one(tiny_model):
    s = SamplingSettings(max_new_tokens=24)
    batched = get_generator("hf", str(tiny_model), batch_size=8, progress=False).generate(convs(QUESTIONS), s)
    single = get_generator("hf", str(tiny_model), batch_size=1, progress=False).generate(convs(QUESTIONS), s)
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.n_tokens for g in batched] == [g.n_tokens for g in single]
    # The tiny model was pre-trained on "a op b = c. The answer is c." dialogues: it answers in that form.
    assert all(re.fullmatch(r"\d+ [-+*] \d+ = \d+\. The answer is \d+\.", g.text) for g in batched), batched
    assert all(0 < g.n_tokens <= 24 for g in batched)


def test_hf_stop_string_and_length(tiny_model):
    gen = get_generator("hf", str(tiny_model), batch_size=4, progress=False)
    full = gen.generate(convs(QUESTIONS[:2]), SamplingSettings(max_new_tokens=24))
    cut = gen.generate(convs(QUESTIONS[:2]), SamplingSettings(max_new_tokens=24, stop=("=",)))
    for f, c in zip(full, cut):
        assert c.text == f.text.split("=")[0]
    short = gen.generate(convs(QUESTIONS[:1]), SamplingSettings(max_new_tokens=2))[0]
    assert short.n_tokens == 2 and short.finish_reason == "length"


def test_openai_concurrent_in_order_and_bounded():
    qs = [f"question number {i}" for i in range(12)]
    with echo_server(latency_s=0.15) as srv:
        gen = get_generator("openai", "stub-model", base_url=srv.base_url, api_key="sk-secret", concurrency=4, progress=False)
        out = gen.generate(convs(qs), SamplingSettings(max_new_tokens=50, temperature=0.5, stop=("zz",)))
    assert [g.text for g in out] == [reply_for(q) for q in qs]
    assert [g.n_tokens for g in out] == [len(reply_for(q).split()) for q in qs]
    assert 2 <= srv.max_in_flight <= 4
    first_body = srv.requests[0][1]
    assert first_body["temperature"] == 0.5 and first_body["stop"] == ["zz"]


def test_openai_max_tokens_gives_length():
    with echo_server() as srv:
        g = get_generator("openai", "m", base_url=srv.base_url, progress=False).generate(
            convs(["a b c d e"]), SamplingSettings(max_new_tokens=2))[0]
    assert g.text == "reply: e" and g.finish_reason == "length" and g.n_tokens == 2


def test_openai_retries_server_errors():
    with echo_server(fail_first=3, fail_status=500) as srv:
        gen = get_generator("openai", "m", base_url=srv.base_url, concurrency=1, max_retries=4, backoff_s=0.01, progress=False)
        out = gen.generate(convs(["hello"]), SamplingSettings(max_new_tokens=10))
    assert out[0].text == reply_for("hello") and out[0].meta["attempts"] == 4
    assert srv.n_requests == 4


def test_openai_gives_up_and_hides_key():
    with echo_server(fail_first=100, fail_status=503) as srv:
        gen = get_generator("openai", "m", base_url=srv.base_url, api_key="sk-very-secret", max_retries=2,
                            backoff_s=0.01, progress=False)
        with pytest.raises(RuntimeError, match="after 3 attempts") as e:
            gen.generate(convs(["hi"]), SamplingSettings(max_new_tokens=5))
    assert "sk-very-secret" not in str(e.value) and "sk-very-secret" not in repr(gen)
    assert srv.n_requests == 3


def test_openai_client_error_is_not_retried():
    with echo_server(fail_first=100, fail_status=400) as srv:
        gen = get_generator("openai", "m", base_url=srv.base_url, max_retries=5, backoff_s=0.01, progress=False)
        with pytest.raises(RuntimeError, match="status 400"):
            gen.generate(convs(["hi"]), SamplingSettings(max_new_tokens=5))
    assert srv.n_requests == 1
