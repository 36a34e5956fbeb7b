"""Any OpenAI-compatible chat endpoint (``vllm serve``, hosted APIs): bounded concurrency, retries.

The API key comes from the argument or OPENAI_API_KEY and is never put into messages or results.
"""
from __future__ import annotations

import asyncio
import os
import random

from harness.generation import Generation, Message, SamplingSettings


class OpenAIGenerator:
    name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 16, max_retries: int = 5, backoff_s: float = 1.0, timeout_s: float = 600.0,
                 progress: bool = True):
        self.model_name = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"  # local servers accept any key
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff_s, self.timeout_s, self.progress = backoff_s, timeout_s, progress

    def __repr__(self) -> str:  # keep the key out of any log line that prints the backend
        return f"OpenAIGenerator(model={self.model_name!r}, base_url={self.base_url!r})"

    def generate(self, conversations: list[list[Message]], sampling: SamplingSettings) -> list[Generation]:
        return asyncio.run(self._generate_all(conversations, sampling))

    async def _generate_all(self, conversations, sampling):
        from openai import AsyncOpenAI
        from tqdm.auto import tqdm

        client = AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, max_retries=0, timeout=self.timeout_s)
        sem = asyncio.Semaphore(self.concurrency)
        bar = tqdm(total=len(conversations), desc="generate (openai)", disable=not self.progress)

        async def one(conv):
            async with sem:
                g = await self._request(client, conv, sampling)
            bar.update(1)
            return g

        try:
            return await asyncio.gather(*(one(c) for c in conversations))
        finally:
            bar.close()
            await client.close()

    async def _request(self, client, conv, s: SamplingSettings) -> Generation:
        import openai

        retryable = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)
        for attempt in range(self.max_retries + 1):
            try:
                r = await client.chat.completions.create(
                    model=self.model_name, messages=conv, max_tokens=s.max_new_tokens, temperature=s.temperature,
                    top_p=s.top_p, seed=s.seed, stop=list(s.stop) or None)
            except retryable as e:
                if attempt == self.max_retries:
                    raise RuntimeError(f"{self.base_url}: request failed after {attempt + 1} attempts "
                                       f"({type(e).__name__}, status {getattr(e, 'status_code', None)})") from None
                # Exponential backoff with jitter so parallel requests do not retry in lockstep.
                await asyncio.sleep(self.backoff_s * 2**attempt * (0.5 + random.random() / 2))
                continue
            except openai.APIStatusError as e:  # 4xx other than 429: retrying will not help
                raise RuntimeError(f"{self.base_url}: request rejected with status {e.status_code}") from None
            choice = r.choices[0]
            text = choice.message.content or ""
            n = r.usage.completion_tokens if r.usage else 0
            return Generation(text=text, n_tokens=n, finish_reason=choice.finish_reason or "stop",
                              meta={"attempts": attempt + 1})
        raise AssertionError("unreachable")
