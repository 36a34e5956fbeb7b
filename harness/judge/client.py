"""Asynchronous judge client on the ``openai`` (>=1) library.

Bounded concurrency (a semaphore), our own retries with exponential backoff and jitter on 429,
5xx, timeouts, connection errors and unreadable replies (honouring Retry-After), a disk cache,
and token accounting. The API key is passed to the client object only; every message that
leaves this module goes through ``redact``.
"""
from __future__ import annotations

import asyncio
import time
import random
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable

from harness.judge.cache import JudgeCache, cache_key
from harness.judge.config import JudgeConfig, JudgeError, redact


@dataclass
class JudgeReply:
    text: str | None
    top_logprobs: list[list] | None = None  # first generated token: [[token, logprob], ...]
    usage: dict = field(default_factory=dict)
    cached: bool = False
    error: str | None = None  # set when the call failed for good; the item stays unjudged

    def to_json(self) -> dict:
        return {"text": self.text, "top_logprobs": self.top_logprobs, "usage": self.usage}


@dataclass
class JudgeStats:
    calls: int = 0  # HTTP requests that returned a reply (retries not counted)
    attempts: int = 0  # every HTTP request, retries included
    retries: int = 0
    cache_hits: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    judge_seconds: float = 0.0  # wall time spent judging (map), without loading, summaries or plots

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> dict:
        return {**asdict(self), "total_tokens": self.total_tokens}

    def summary(self) -> str:
        return (f"judge: {self.calls} calls, {self.total_tokens} tokens ({self.prompt_tokens} prompt + "
                f"{self.completion_tokens} completion), {self.cache_hits} cache hits, {self.retries} retries, "
                f"{self.failures} failed")


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / divisor)
            except ValueError:
                pass
    return None


class JudgeClient:
    def __init__(self, cfg: JudgeConfig, cache: JudgeCache | None = None):
        missing = cfg.missing()
        if missing:
            raise JudgeError("judge not configured: missing " + "; ".join(missing))
        self.cfg = cfg
        self.cache = cache
        self.stats = JudgeStats()
        self._secrets = [cfg.api_key()]
        self._client = None
        self._sem: asyncio.Semaphore | None = None

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _openai(self):
        if self._client is None:
            import openai

            # retries are ours (to count them and to honour Retry-After uniformly): max_retries=0
            self._client = openai.AsyncOpenAI(api_key=self.cfg.api_key(), base_url=self.cfg.endpoint,
                                              timeout=self.cfg.timeout_s, max_retries=0)
        return self._client

    def _retryable(self, exc: Exception) -> bool:
        import openai

        if isinstance(exc, (openai.APIConnectionError, openai.APIResponseValidationError, ValueError)):
            return True  # timeouts are APIConnectionError; ValueError covers a body that is not JSON
        if isinstance(exc, openai.APIStatusError):
            return exc.status_code in (408, 409, 429) or exc.status_code >= 500
        return False

    def _fatal(self, exc: Exception) -> bool:
        import openai

        return isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError))

    def _delay(self, attempt: int, exc: Exception) -> float:
        hinted = _retry_after(exc)
        if hinted is not None:
            return min(hinted, self.cfg.backoff_max_s) + random.uniform(0, 0.05 * max(hinted, 0.1))
        return min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** attempt) * random.uniform(0.5, 1.0)

    async def complete(self, request: dict) -> JudgeReply:
        """One chat completion. ``request`` holds messages and sampling options, not the model."""
        key = cache_key(self.cfg.endpoint, self.cfg.model, request)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.stats.cache_hits += 1
            return JudgeReply(hit["text"], hit.get("top_logprobs"), hit.get("usage", {}), cached=True)
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.cfg.concurrency)
        last = None
        for attempt in range(self.cfg.max_retries + 1):
            async with self._sem:
                self.stats.attempts += 1
                try:
                    resp = await self._openai().chat.completions.create(model=self.cfg.model, **request)
                    reply = self._reply(resp)
                except Exception as exc:  # noqa: BLE001 - classified below
                    last = exc
                    if self._fatal(exc):
                        raise JudgeError(self.redact(f"judge endpoint {self.cfg.endpoint} refused the request: "
                                                     f"{type(exc).__name__}: {exc}")) from None
                    if not self._retryable(exc) or attempt == self.cfg.max_retries:
                        break
                    delay = self._delay(attempt, exc)
                else:
                    self.stats.calls += 1
                    self.stats.prompt_tokens += reply.usage.get("prompt_tokens", 0)
                    self.stats.completion_tokens += reply.usage.get("completion_tokens", 0)
                    if self.cache is not None:
                        self.cache.put(key, reply.to_json())
                    return reply
            self.stats.retries += 1
            await asyncio.sleep(delay)  # outside the semaphore: a sleeping retry does not hold a slot
        self.stats.failures += 1
        return JudgeReply(None, error=self.redact(f"{type(last).__name__}: {last}"))

    @staticmethod
    def _reply(resp) -> JudgeReply:
        if not getattr(resp, "choices", None):
            raise ValueError("reply has no choices")
        choice = resp.choices[0]
        text = choice.message.content if choice.message is not None else None
        if text is None:
            raise ValueError("reply has no message content")
        top = None
        lp = getattr(choice, "logprobs", None)
        if lp is not None and getattr(lp, "content", None):
            top = [[t.token, t.logprob] for t in (lp.content[0].top_logprobs or [])]
        usage = {}
        if getattr(resp, "usage", None) is not None:
            usage = {"prompt_tokens": resp.usage.prompt_tokens or 0, "completion_tokens": resp.usage.completion_tokens or 0}
        return JudgeReply(text, top, usage)

    def map(self, items: list, judge_one: Callable[["JudgeClient", Any], Awaitable[Any]],
            on_done: Callable[[Any, Any], None], desc: str = "judging") -> None:
        """Run ``judge_one(client, item)`` for every item concurrently; ``on_done(item, result)`` is
        called as each finishes, so results reach disk one by one (resume after a crash)."""
        if items:
            start = time.perf_counter()
            asyncio.run(self._map(items, judge_one, on_done, desc))
            self.stats.judge_seconds += time.perf_counter() - start

    async def _map(self, items, judge_one, on_done, desc):
        from tqdm import tqdm

        async def one(item):
            return item, await judge_one(self, item)

        self._sem = asyncio.Semaphore(self.cfg.concurrency)  # bound to this event loop
        bar = tqdm(total=len(items), desc=desc, unit="judgment", disable=not self.cfg.progress, file=sys.stderr)
        try:
            for fut in asyncio.as_completed([one(i) for i in items]):
                item, result = await fut
                on_done(item, result)  # a write; the fsync is group-committed off the loop (store.py)
                bar.update(1)
        finally:
            bar.close()
            if self._client is not None:
                await self._client.close()
                self._client = None

