"""A local judge: `vllm serve` started as a subprocess on a free loopback port for the length of a run.

The server runs in its own process group (vLLM starts engine workers), so stopping it reaches every
process it started: SIGTERM to the group, then SIGKILL after a grace period. It is stopped at the end of the
run, on an error, on Ctrl-C and on SIGTERM to the harness; ``stop`` is idempotent. The executable is
configurable (``--judge-server-cmd`` or $HARNESS_JUDGE_SERVER_CMD) so the process management is tested
against a stand-in (``python -m harness.testing.fake_openai serve``).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness.judge.config import JudgeConfig, JudgeError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in lines) or "    (empty)"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalJudgeServer:
    """``with LocalJudgeServer(cfg, log_dir) as url:`` serves ``cfg.model`` at ``url`` (…/v1)."""

    def __init__(self, cfg: JudgeConfig, log_dir: str | Path, grace_s: float = 20.0, poll_s: float = 0.25):
        self.cfg, self.grace_s, self.poll_s = cfg, grace_s, poll_s
        self.log_path = Path(log_dir) / "judge_server.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._old_sigterm = None

    def command(self, port: int) -> list[str]:
        import shlex

        cmd = self.cfg.server_command() + [self.cfg.model, "--host", "127.0.0.1", "--port", str(port),
                                           "--served-model-name", self.cfg.model,
                                           "--tensor-parallel-size", str(self.cfg.tensor_parallel_size)]
        return cmd + shlex.split(self.cfg.server_args or "")

    def start(self) -> str:
        self.port = free_port()
        cmd = self.command(self.port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)  # own process group: stopped as one
        except FileNotFoundError:
            raise JudgeError(f"judge server command not found: {cmd[0]!r} (install vLLM, or set --judge-server-cmd)") from None
        finally:
            log.close()
        self._trap_sigterm()
        try:
            self._wait_healthy(" ".join(cmd))
        except BaseException:
            self.stop()
            raise
        url = f"http://127.0.0.1:{self.port}/v1"
        self.cfg.url = url
        return url

    def _wait_healthy(self, shown_cmd: str) -> None:
        deadline = time.monotonic() + self.cfg.server_timeout_s
        health = f"http://127.0.0.1:{self.port}/health"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise JudgeError(f"judge server exited with code {code} before it was ready\n  command: {shown_cmd}\n"
                                 f"  log {self.log_path}:\n{_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(health, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise JudgeError(f"judge server did not answer {health} within {self.cfg.server_timeout_s:g} s "
                                 f"(--judge-server-timeout)\n  command: {shown_cmd}\n  log {self.log_path}:\n"
                                 f"{_tail(self.log_path)}")
            time.sleep(self.poll_s)

    def _trap_sigterm(self) -> None:
        """SIGTERM to the harness stops the server too (Ctrl-C arrives as KeyboardInterrupt already)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def on_term(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        self._old_sigterm = signal.signal(signal.SIGTERM, on_term)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        self.cfg.url = None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the leader's pid is the group id
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + (self.grace_s if proc.returncode is not None else 0)
        while _group_alive(pgid) and time.monotonic() < deadline:  # workers still shutting down
            time.sleep(0.1)
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
