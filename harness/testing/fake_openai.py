"""A loopback OpenAI-compatible chat-completions server with scripted answers and fault injection.

It speaks real HTTP on 127.0.0.1 so the real ``openai`` client is exercised end to end.
Faults are consumed one per request, in order: ``500``, ``("429", retry_after_s)``,
``"timeout"`` (sleep longer than the client waits), ``"malformed"`` (invalid JSON body),
``"drop"`` (close the connection without answering), ``"401_echo"`` (auth error echoing the key),
or any other integer HTTP status (an error body with that status).

``python -m harness.testing.fake_openai serve MODEL --host H --port P [...]`` runs it as a process that takes
`vllm serve`'s command line (unknown options are ignored): the stand-in server executable of the local-judge
tests (``--judge-server-cmd``). It serves ``/health`` and ``/v1/chat/completions``; test options below.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class _BackloggedServer(ThreadingHTTPServer):
    # listen() runs in the constructor with this class attribute; the default backlog of 5
    # drops the SYNs of 32 simultaneous connections, costing a 1 s TCP retransmit each.
    request_queue_size = 128
    daemon_threads = True


# responder(request_json) -> str (the assistant text) or dict {"text": ..., "top_logprobs": [(token, logprob), ...],
# optionally "finish_reason" and "completion_tokens" (else "stop" and about one token per 4 characters)}
Responder = Callable[[dict], "str | dict"]


def _default_responder(request: dict) -> str:
    return "Rating: [[5]]"


@dataclass
class FakeOpenAI:
    responder: Responder = _default_responder
    latency_s: float = 0.0
    timeout_sleep_s: float = 3.0
    faults: deque = field(default_factory=deque)
    requests: list = field(default_factory=list)  # (headers, json) of every request received
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    in_flight: int = 0
    max_in_flight: int = 0
    request_times: list = field(default_factory=list)  # time.monotonic() at arrival
    port: int = 0  # 0: any free port
    healthy_after_s: float | None = 0.0  # /health answers 200 this long after start; None: never
    fail_status: int | None = None  # every chat request gets this HTTP status
    status_for: Callable[[dict], "int | None"] | None = None  # request -> an HTTP status to fail with, or None
    _started: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def n_requests(self) -> int:
        return len(self.requests)

    def inject(self, *faults) -> None:
        self.faults.extend(faults)

    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real endpoint

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                # headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add ~40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, code: int, body: bytes, headers: dict | None = None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 - counters, for a server running in another process
                if self.path.rstrip("/") == "/health":
                    ready = fake.healthy_after_s is not None and time.monotonic() - fake._started >= fake.healthy_after_s
                    return self._send(200 if ready else 503, b"{}")
                if self.path.rstrip("/").endswith("/stats"):
                    body = {"n_requests": fake.n_requests, "max_in_flight": fake.max_in_flight}
                    return self._send(200, json.dumps(body).encode())
                self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    request = json.loads(raw)
                except json.JSONDecodeError:
                    return self._send(400, b'{"error": {"message": "bad json"}}')
                with fake._lock:
                    fake.requests.append((dict(self.headers), request))
                    fake.request_times.append(time.monotonic())
                    fault = fake.faults.popleft() if fake.faults else None
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if not self.path.rstrip("/").endswith("/chat/completions"):
                        return self._send(404, b'{"error": {"message": "not found"}}')
                    if fake.latency_s:
                        time.sleep(fake.latency_s)
                    if fault is None and fake.fail_status is not None:
                        fault = fake.fail_status
                    if fault is None and fake.status_for is not None:
                        fault = fake.status_for(request)
                    if fault is not None:
                        return self._fault(fault)
                    self._send(200, json.dumps(fake.completion(request)).encode())
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _fault(self, fault):
                if fault == 500 or fault == "500":
                    return self._send(500, b'{"error": {"message": "internal error", "type": "server_error"}}')
                if isinstance(fault, tuple) and str(fault[0]) == "429":
                    return self._send(429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                                      {"Retry-After": str(fault[1])})
                if fault == "timeout":
                    time.sleep(fake.timeout_sleep_s)
                    return self._send(200, b'{"error": "too late"}')
                if fault == "malformed":
                    return self._send(200, b'{"id": "x", "choices": [ {"message": ')
                if fault == "401_echo":  # a careless server that echoes the credential back
                    msg = json.dumps({"error": {"message": f"invalid key: {self.headers.get('Authorization')}"}})
                    return self._send(401, msg.encode())
                if fault == "drop":
                    self.close_connection = True
                    return
                if isinstance(fault, int) and 400 <= fault <= 599:
                    body = {"error": {"message": "injected failure", "type": "server_error"}}
                    return self._send(fault, json.dumps(body).encode())
                raise ValueError(f"unknown fault {fault!r}")

        self._started = time.monotonic()
        self._server = _BackloggedServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def completion(self, request: dict) -> dict:
        out = self.responder(request)
        if isinstance(out, str):
            out = {"text": out}
        text = out["text"]
        choice = {"index": 0, "finish_reason": out.get("finish_reason", "stop"), "message": {"role": "assistant", "content": text}}
        if request.get("logprobs"):
            top = out.get("top_logprobs") or [(text, 0.0)]
            choice["logprobs"] = {"content": [{
                "token": top[0][0], "logprob": top[0][1], "bytes": None,
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top],
            }]}
        prompt_chars = sum(len(str(m.get("content", ""))) for m in request.get("messages", []))
        usage = {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": out.get("completion_tokens", max(1, len(text) // 4))}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": request.get("model", "fake"), "choices": [choice], "usage": usage}


def serve_forever(latency_s: float, conn) -> None:
    """Entry point for running the fake in a child process (no GIL shared with the client under test):
    sends the base URL through ``conn`` and serves until the process is terminated."""
    fake = FakeOpenAI(latency_s=latency_s).start()
    conn.send(fake.base_url)
    threading.Event().wait()


def main(argv=None) -> None:
    """A stand-in for `vllm serve MODEL --host H --port P ...`, with test options."""
    import argparse
    import os
    import signal
    import subprocess
    import sys

    ap = argparse.ArgumentParser(prog="fake_openai")
    ap.add_argument("command", choices=["serve"])
    ap.add_argument("model")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--health-delay", type=float, default=0.0, help="seconds before /health answers 200")
    ap.add_argument("--never-healthy", action="store_true")
    ap.add_argument("--exit-code", type=int, help="exit at once with this code (a server that fails to start)")
    ap.add_argument("--fail-status", type=int, help="answer every chat request with this HTTP status")
    ap.add_argument("--pid-file", help="write this process's pid and its worker's pid, one a line")
    ap.add_argument("--spawn-worker", action="store_true", help="start a child process, as vLLM starts engine workers")
    ap.add_argument("--ignore-sigterm", action="store_true", help="a server that must be killed")
    args, unknown = ap.parse_known_args(argv)
    print(f"fake vllm serve {args.model} on {args.host}:{args.port}; ignored options: {unknown}", flush=True)
    if args.exit_code is not None:
        sys.exit(args.exit_code)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pids = [os.getpid()]
    if args.spawn_worker:
        worker = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
                                   " if %r else None; time.sleep(3600)" % args.ignore_sigterm])
        pids.append(worker.pid)
    if args.pid_file:
        with open(args.pid_file, "w") as fh:
            fh.write("\n".join(map(str, pids)) + "\n")
    fake = FakeOpenAI(port=args.port, healthy_after_s=None if args.never_healthy else args.health_delay,
                      fail_status=args.fail_status)
    fake.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
