"""A small OpenAI-compatible chat server on 127.0.0.1 for testing the openai backend over real HTTP.

Reply text is a deterministic function of the last user message ("reply: <text reversed>"),
cut to max_tokens words. It can fail the first N requests with a status code and it
records the highest number of requests it was serving at once.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubState:
    def __init__(self, fail_first: int = 0, fail_status: int = 500, delay_s: float = 0.0):
        self.fail_first, self.fail_status, self.delay_s = fail_first, fail_status, delay_s
        self.lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict] = []


def reply_for(content: str) -> str:
    return "reply: " + content[::-1]


def make_handler(state: StubState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # keep test output quiet
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests += 1
                n = state.requests
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                state.bodies.append(body)
            try:
                time.sleep(state.delay_s)
                if n <= state.fail_first:
                    self._send(state.fail_status, {"error": {"message": "injected failure", "type": "server_error"}})
                    return
                words = reply_for(body["messages"][-1]["content"]).split()
                cut = words[: body.get("max_tokens") or len(words)]
                self._send(200, {
                    "id": f"cmpl-{n}", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "length" if len(cut) < len(words) else "stop",
                                 "message": {"role": "assistant", "content": " ".join(cut)}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": len(cut), "total_tokens": 1 + len(cut)},
                })
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _send(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class StubServer:
    """Context manager: serves on an ephemeral loopback port in a daemon thread."""

    def __init__(self, state: StubState):
        self.state = state
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
