"""Asynchronous judge client on the ``openai`` (>=1) library.

Bounded concurrency (a semaphore), our own retries with exponential backoff and jitter on 429,
5xx, timeouts, connection errors and unreadable replies (honouring Retry-After), a disk cache,
and token accounting. The API key is passed to the client object only; every message that
leaves this module goes through ``redact``.

``map`` runs a benchmark's judge calls in four steps:
1. the bill: every request still to send is built (without sending) and estimated (harness/judge/cost.py);
   printed, kept in ``stats.estimate``; ``--dry-run`` stops here, ``--max-judge-cost`` refuses a bill above it;
2. a local judge (backend vllm) is started (harness/judge/server.py) and stopped when ``map`` returns or fails;
3. probe: items are judged one at a time until a real reply arrives; ``probe_failures`` failed requests in a
   row stop the run with the real error (connection error, or HTTP status and body, key redacted);
4. the rest concurrently. After ``max_consecutive_failures`` failed requests in a row, or once the real spend
   crosses ``--max-judge-cost``, no new request starts: the run ends cleanly with those items unjudged
   (``stats.stopped`` says why) and a rerun resumes.

Each reply is written to the cache from an HTTP response hook, the moment its body has been read and
before the openai library or the benchmark sees it, so a process killed at any later point never pays
for that reply again.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from harness.judge.cache import JudgeCache, cache_key
from harness.judge.config import JudgeConfig, JudgeDryRun, JudgeError, redact

_CACHE_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("judge_cache_key", default=None)
_ESTIMATING = "not sent: estimating the bill"


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
    cost_usd: float | None = 0.0  # real spend at the run's prices (None: price unknown)
    cached_usd: float | None = 0.0  # the replies served from the cache, at the same prices (spent by an earlier run)
    judge_seconds: float = 0.0  # wall time spent judging (map), without loading, summaries or plots
    last_error: str | None = None  # redacted
    stopped: str | None = None  # why the run stopped early (items left unjudged); None: it did not
    estimate: dict | None = None  # the bill before the first call (cost.estimate)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> dict:
        # judging_cost_usd: what judging these answers costs at these prices, whichever run paid for it (the
        # leaderboard's cost per model); cost_usd alone is this run's spend, 0 on a rerun from the cache.
        total = None if self.cost_usd is None or self.cached_usd is None else self.cost_usd + self.cached_usd
        return {**asdict(self), "total_tokens": self.total_tokens, "judging_cost_usd": total}

    def summary(self) -> str:
        spend = "" if self.cost_usd is None else f", ${self.cost_usd:,.4f}"
        return (f"judge: {self.calls} calls, {self.total_tokens} tokens ({self.prompt_tokens} prompt + "
                f"{self.completion_tokens} completion){spend}, {self.cache_hits} cache hits, {self.retries} retries, "
                f"{self.failures} failed" + (f"; stopped: {self.stopped}" if self.stopped else ""))


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


def describe_error(exc: Exception) -> str:
    """The real reason, for people: HTTP status and body, or the connection error and its cause."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        try:
            body = exc.response.text
        except Exception:  # noqa: BLE001 - a streamed or closed body
            body = str(exc.body)
        return f"{type(exc).__name__}: HTTP {exc.status_code}: {body.strip()[:500]}"
    if isinstance(exc, openai.APIConnectionError):
        cause, seen = exc.__cause__ or exc.__context__, 0
        while cause is not None and (cause.__cause__ or cause.__context__) is not None and seen < 5:
            cause, seen = cause.__cause__ or cause.__context__, seen + 1  # the innermost: e.g. ConnectionRefusedError
        return f"{type(exc).__name__}: {exc}" + (f" ({type(cause).__name__}: {cause})" if cause is not None else "")
    return f"{type(exc).__name__}: {exc}"


def _refused(exc: Exception) -> bool:
    import openai

    return isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError)


def reply_from_body(body: dict) -> JudgeReply:
    """A chat.completion JSON body -> JudgeReply; ValueError when it holds no answer."""
    choices = body.get("choices") or []
    if not choices:
        raise ValueError("reply has no choices")
    msg = choices[0].get("message") or {}
    text = msg.get("content")
    if text is None:
        raise ValueError("reply has no message content")
    top = None
    content = (choices[0].get("logprobs") or {}).get("content")
    if content:
        top = [[t["token"], t["logprob"]] for t in (content[0].get("top_logprobs") or [])]
    usage = {}
    if body.get("usage"):
        usage = {"prompt_tokens": body["usage"].get("prompt_tokens") or 0,
                 "completion_tokens": body["usage"].get("completion_tokens") or 0}
    return JudgeReply(text, top, usage)


class JudgeClient:
    def __init__(self, cfg: JudgeConfig, cache: JudgeCache | None = None):
        missing = cfg.missing()
        if missing:
            raise JudgeError("judge not configured: missing " + "; ".join(missing))
        self.cfg = cfg
        self.cache = cache
        self.stats = JudgeStats()
        self._secrets = [os.environ.get(cfg.api_key_env)]
        self._client = None
        self._sem: asyncio.Semaphore | None = None
        self._recorded: list | None = None  # requests built while estimating the bill
        self._estimate_hits = 0
        self._healthy = False  # a real reply has arrived in this run
        self._in_a_row = 0  # consecutive failed requests
        from harness.judge.cost import prices

        self._price_in, self._price_out, _ = prices(cfg)
        if self._price_in is None:
            self.stats.cost_usd = self.stats.cached_usd = None

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _openai(self):
        if self._client is None:
            import openai

            # retries are ours (to count them and to honour Retry-After uniformly): max_retries=0
            http = openai.DefaultAsyncHttpxClient(event_hooks={"response": [self._on_response]})
            self._client = openai.AsyncOpenAI(api_key=self.cfg.api_key(), base_url=self.cfg.request_url,
                                              timeout=self.cfg.timeout_s, max_retries=0, http_client=http)
        return self._client

    async def _on_response(self, response) -> None:
        """The HTTP response hook: the reply goes to the cache as soon as its body is in, before anything
        else runs (no await between reading the last byte and writing the cache line)."""
        key = _CACHE_KEY.get()
        if key is None or self.cache is None or response.status_code != 200:
            return
        body = await response.aread()
        try:
            reply = reply_from_body(json.loads(body))
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):
            return  # unreadable: not cached; the client raises and retries
        self.cache.put(key, reply.to_json())

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

    def _blocked(self) -> str | None:
        """Why no new request may start, or None."""
        return self.stats.stopped or self.cfg.ledger.stopped

    def _account(self, reply: JudgeReply) -> None:
        from harness.judge.cost import cost

        self.stats.calls += 1
        self.stats.prompt_tokens += reply.usage.get("prompt_tokens", 0)
        self.stats.completion_tokens += reply.usage.get("completion_tokens", 0)
        spent = cost(reply.usage.get("prompt_tokens", 0), reply.usage.get("completion_tokens", 0),
                     self._price_in, self._price_out)
        if spent is not None:
            self.stats.cost_usd = (self.stats.cost_usd or 0.0) + spent
            ledger = self.cfg.ledger
            ledger.spent_usd += spent
            if self.cfg.max_cost is not None and ledger.spent_usd >= self.cfg.max_cost and not ledger.stopped:
                ledger.stopped = (f"real spend ${ledger.spent_usd:,.4f} reached --max-judge-cost "
                                  f"${self.cfg.max_cost:,.2f}")

    def _account_cached(self, usage: dict) -> None:
        from harness.judge.cost import cost

        value = cost(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), self._price_in, self._price_out)
        if value is not None and self.stats.cached_usd is not None:
            self.stats.cached_usd += value

    def _failed(self, message: str) -> JudgeReply:
        self.stats.failures += 1
        self.stats.last_error = message
        self._in_a_row += 1
        limit = self.cfg.max_consecutive_failures if self._healthy else self.cfg.probe_failures
        if self._in_a_row >= limit and not self.stats.stopped:
            self.stats.stopped = f"{self._in_a_row} judge requests in a row failed; last: {message}"
        return JudgeReply(None, error=message)

    async def complete(self, request: dict) -> JudgeReply:
        """One chat completion. ``request`` holds messages and sampling options, not the model."""
        key = cache_key(self.cfg.endpoint, self.cfg.model, request)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            if self._recorded is not None:
                self._estimate_hits += 1
            else:
                self.stats.cache_hits += 1
                self._account_cached(hit.get("usage") or {})
            return JudgeReply(hit["text"], hit.get("top_logprobs"), hit.get("usage", {}), cached=True)
        if self._recorded is not None:  # estimating: build the request, send nothing
            self._recorded.append(request)
            return JudgeReply(None, error=_ESTIMATING)
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.cfg.concurrency)
        last = None
        # before the first real reply (the probe), a refused connection is not retried and other failures
        # at most twice: an unreachable or misconfigured judge is reported in seconds, not minutes
        retries = self.cfg.max_retries if self._healthy else min(self.cfg.max_retries, 2)
        for attempt in range(retries + 1):
            async with self._sem:
                if (why := self._blocked()) is not None:
                    return JudgeReply(None, error=f"not sent: {why}")
                self.stats.attempts += 1
                token = _CACHE_KEY.set(key)
                try:
                    resp = await self._openai().chat.completions.create(model=self.cfg.model, **request)
                    reply = self._reply(resp)
                except Exception as exc:  # noqa: BLE001 - classified below
                    last = exc
                    if self._fatal(exc):
                        raise JudgeError(self.redact(f"judge endpoint {self.cfg.request_url} refused the request: "
                                                     f"{describe_error(exc)}")) from None
                    if not self._retryable(exc) or attempt == retries or (not self._healthy and _refused(exc)):
                        break
                    delay = self._delay(attempt, exc)
                else:
                    self._account(reply)
                    self._healthy, self._in_a_row = True, 0
                    if self.cache is not None:
                        self.cache.put(key, reply.to_json())  # no-op when the response hook cached it
                    return reply
                finally:
                    _CACHE_KEY.reset(token)
            self.stats.retries += 1
            await asyncio.sleep(delay)  # outside the semaphore: a sleeping retry does not hold a slot
        return self._failed(self.redact(describe_error(last)))

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

    # ---------- the bill ----------
    def estimate(self, items: list, judge_one, desc: str) -> dict:
        """Build every request ``items`` would send (cached replies answer as usual; nothing is sent)."""
        from harness.judge.cost import estimate

        self._recorded, self._estimate_hits = [], 0
        try:
            async def build():
                for item in items:
                    await judge_one(self, item)

            asyncio.run(build())
            return estimate(self._recorded, self._estimate_hits, self.cfg, desc)
        finally:
            self._recorded = None

    def _check_bill(self, est: dict) -> None:
        from harness.judge.cost import describe

        print(describe(est), file=sys.stderr)
        self.stats.estimate = est
        if self.cfg.dry_run:
            raise JudgeDryRun(f"dry run: {desc_short(est)}; nothing judged", est)
        if self.cfg.max_cost is None or not est["calls"]:
            return
        if est["cost_usd"] is None:
            raise JudgeError(f"--max-judge-cost needs prices: {est['price_source']}")
        spent = self.cfg.ledger.spent_usd
        if spent + est["cost_usd"] > self.cfg.max_cost:
            already = f" (plus ${spent:,.2f} already spent by this command)" if spent else ""
            raise JudgeError(f"{est['what']}: estimated cost ${est['cost_usd']:,.2f}{already} exceeds --max-judge-cost "
                             f"${self.cfg.max_cost:,.2f}; nothing was judged")

    # ---------- running ----------
    def map(self, items: list, judge_one: Callable[["JudgeClient", Any], Awaitable[Any]],
            on_done: Callable[[Any, Any], None], desc: str = "judging") -> None:
        """Run ``judge_one(client, item)`` for every item; ``on_done(item, result)`` is called as each
        finishes, so results reach disk one by one (resume after a crash). See the module doc for the steps."""
        if not items:
            return
        est = self.estimate(items, judge_one, desc)
        self._check_bill(est)
        start = time.perf_counter()
        try:
            if est["calls"] and self.cfg.local and self.cfg.url is None:
                from harness.judge.server import LocalJudgeServer

                log_dir = Path(self.cfg.cache_dir) if self.cfg.cache_dir else Path.cwd()
                with LocalJudgeServer(self.cfg, log_dir):
                    asyncio.run(self._map(items, judge_one, on_done, desc))
            else:
                asyncio.run(self._map(items, judge_one, on_done, desc))
        finally:
            self.stats.judge_seconds += time.perf_counter() - start
            if self.cache is not None:
                self.cache.store.sync()
        if not self._healthy and self.stats.failures:  # no request of this run succeeded
            why = self.stats.stopped or f"{self.stats.failures} judge requests failed; last: {self.stats.last_error}"
            raise JudgeError(f"judge endpoint {self.cfg.request_url if self.cfg.url else self.cfg.endpoint} is not "
                             f"usable: {why}. Nothing new was judged.")
        if self.cfg.ledger.stopped and not self.stats.stopped:
            self.stats.stopped = self.cfg.ledger.stopped

    async def _map(self, items, judge_one, on_done, desc):
        from tqdm import tqdm

        async def one(item):
            return item, await judge_one(self, item)

        self._sem = asyncio.Semaphore(self.cfg.concurrency)  # bound to this event loop
        bar = tqdm(total=len(items), desc=desc, unit="judgment", disable=not self.cfg.progress, file=sys.stderr)
        pending = list(items)
        try:
            while pending and not self._healthy and not self.stats.stopped:  # probe: one at a time
                item, result = await one(pending.pop(0))
                on_done(item, result)
                bar.update(1)
            if self.stats.stopped and not self._healthy:
                return
            for fut in asyncio.as_completed([one(i) for i in pending]):
                item, result = await fut
                on_done(item, result)  # a write; the fsync is group-committed off the loop (store.py)
                bar.update(1)
        finally:
            bar.close()
            if self._client is not None:
                await self._client.close()
                self._client = None


def desc_short(est: dict) -> str:
    usd = "unknown cost" if est["cost_usd"] is None else f"~${est['cost_usd']:,.2f}"
    return f"{est['what']}: {est['calls']} calls, {usd}"
