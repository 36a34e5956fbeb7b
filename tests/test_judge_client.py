"""The judge client against the loopback OpenAI-compatible server: retries on injected faults,
Retry-After, bounded concurrency, the disk cache, the append-only store and key redaction."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from harness.judge import JsonlStore, JudgeCache, JudgeClient, JudgeConfig, JudgeError
from harness.judged import run_judged_benchmark
from harness.testing.fake_openai import FakeOpenAI
from harness.testing.scripted import ScriptedGenerator

KEY = "sk-live-DO-NOT-LEAK-5b1e0d"
REQ = {"messages": [{"role": "user", "content": "rate this"}], "temperature": 0, "max_tokens": 16}


@pytest.fixture()
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _run(client, n=1, req=REQ):
    out = []
    reqs = [{**req, "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(n)] if n > 1 else [req]
    client.map(reqs, lambda cl, r: cl.complete(r), lambda r, reply: out.append(reply))
    return out


def test_retries_every_fault_kind_and_honours_retry_after(key):
    with FakeOpenAI(timeout_sleep_s=1.0) as fake:
        cfg = JudgeConfig(model="j", base_url=fake.base_url, timeout_s=0.4, backoff_base_s=0.01, progress=False)
        client = JudgeClient(cfg)
        _run(client)  # a first reply: past the probe (which retries at most twice), the full policy applies
        fake.inject(500, ("429", 0.6), "timeout", "malformed", "drop")
        [reply] = _run(client, req={**REQ, "max_tokens": 17})
        assert reply.text == "Rating: [[5]]" and reply.error is None
        assert fake.n_requests == 7 and client.stats.retries == 5 and client.stats.calls == 2
        gap = fake.request_times[3] - fake.request_times[2]  # after the 429 with Retry-After: 0.6
        assert gap >= 0.6
        assert client.stats.total_tokens == 2 * (reply.usage["prompt_tokens"] + reply.usage["completion_tokens"]) > 0


def test_retries_are_bounded_and_failure_is_reported(key):
    with FakeOpenAI() as fake:
        cfg = JudgeConfig(model="j", base_url=fake.base_url, max_retries=2, backoff_base_s=0.01, progress=False)
        client = JudgeClient(cfg)
        _run(client)  # the endpoint works (a run where nothing succeeds stops: tests/test_judge_ops.py)
        fake.inject(500, 500, 500, 500)
        [reply] = _run(client, req={**REQ, "max_tokens": 17})
        assert reply.text is None and "InternalServerError" in reply.error
        assert fake.n_requests == 1 + 3 and client.stats.failures == 1


def test_concurrency_is_bounded_and_cache_answers_reruns(key, tmp_path):
    with FakeOpenAI(latency_s=0.05) as fake:
        cfg = JudgeConfig(model="j", base_url=fake.base_url, concurrency=4, progress=False)
        client = JudgeClient(cfg, JudgeCache(tmp_path))
        assert len(_run(client, 20)) == 20
        assert 2 <= fake.max_in_flight <= 4 and fake.n_requests == 20
        client2 = JudgeClient(cfg, JudgeCache(tmp_path))  # a new process would see the same disk cache
        replies = _run(client2, 20)
        assert fake.n_requests == 20 and client2.stats.calls == 0 and client2.stats.cache_hits == 20
        assert all(r.cached for r in replies)
        # the cache key includes the endpoint and the judge model
        other = JudgeClient(JudgeConfig(model="j2", base_url=fake.base_url, progress=False), JudgeCache(tmp_path))
        _run(other, 1)
        assert fake.n_requests == 21


def test_store_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "j.jsonl"
    s = JsonlStore(path)
    s.append({"a": 1})
    s.append({"a": 2})
    with open(path, "ab") as fh:
        fh.write(b'{"a": 3, "tru')  # killed mid-write
    s2 = JsonlStore(path)
    assert s2.records == [{"a": 1}, {"a": 2}]
    s2.append({"a": 3})
    assert JsonlStore(path).records == [{"a": 1}, {"a": 2}, {"a": 3}]
    path.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        JsonlStore(path)


def test_api_key_never_reaches_errors_logs_or_files(key, tmp_path, data_dir, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI() as fake:
        cfg = JudgeConfig(model="j", base_url=fake.base_url, progress=False, backoff_base_s=0.01)
        fake.inject("401_echo")
        with pytest.raises(JudgeError) as err:
            _run(JudgeClient(cfg))
        assert "invalid key" in str(err.value) and KEY not in str(err.value) and "[REDACTED]" in str(err.value)
        headers = {k.lower(): v for k, v in fake.requests[0][0].items()}
        assert headers["authorization"] == f"Bearer {KEY}"  # it was sent, to the server only
        fake.inject(500, ("429", 0.01))
        run_judged_benchmark("mtbench", ScriptedGenerator(), cfg, tmp_path, 2, data_dir=data_dir,
                             run={"run_id": "k", "method": "base", "model": "m"})
    out = capsys.readouterr()
    assert KEY not in out.out + out.err and KEY not in caplog.text
    files = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
    assert len(files) >= 4
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p


def test_missing_configuration_is_named(monkeypatch):
    monkeypatch.delenv("MY_JUDGE_KEY", raising=False)
    with pytest.raises(JudgeError, match="MY_JUDGE_KEY"):
        JudgeClient(JudgeConfig(model="j", api_key_env="MY_JUDGE_KEY"))
