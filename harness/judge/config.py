"""What the judge is and how to reach it. The API key is only ever read from the environment."""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class JudgeError(RuntimeError):
    """A judge failure that stops the run (bad key, unknown model, ...). Messages are redacted."""


@dataclass
class JudgeConfig:
    model: str | None = None
    base_url: str | None = None  # None: the OpenAI API
    api_key_env: str = "OPENAI_API_KEY"  # name of the variable holding the key, never the key
    concurrency: int = 32
    max_retries: int = 6
    timeout_s: float = 120.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    cache_dir: str | None = None  # default: <out_dir>/judge_cache
    progress: bool = True

    @property
    def endpoint(self) -> str:
        """Identity of the endpoint for the cache: the normalised URL, never the key."""
        return (self.base_url or DEFAULT_BASE_URL).rstrip("/")

    def api_key(self) -> str | None:
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
        return {"model": self.model, "base_url": self.endpoint, "api_key_env": self.api_key_env,
                "concurrency": self.concurrency, "max_retries": self.max_retries}


def redact(text: str, secrets: list[str | None]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "[REDACTED]")
    return text
