"""The judge bill before and after: token estimates for the requests still to send, prices, real spend.

Prompt tokens are counted with the judge's tokenizer where one is available (tiktoken for OpenAI models
when it is installed; the local model's tokenizer for a vLLM judge), else approximated as characters / 4.
Completion tokens cannot be known before the judge answers: the estimate assumes min(max_tokens,
ASSUMED_COMPLETION) per call and also gives the upper bound (max_tokens per call).
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

ASSUMED_COMPLETION = 512  # tokens per judge reply when estimating (judge replies are typically a few hundred)
MESSAGE_OVERHEAD = 4  # chat formatting tokens per message (role markers), OpenAI's documented order of magnitude
PRICES_FILE = Path(__file__).with_name("prices.yaml")


@lru_cache(maxsize=1)
def _price_table() -> dict:
    import yaml

    return yaml.safe_load(PRICES_FILE.read_text()) or {}


def known_price(model: str | None) -> tuple[float, float, str] | None:
    """(USD/M input, USD/M output, source) from prices.yaml: exact name, else the longest listed prefix
    followed by '-' (gpt-4-turbo-2024-04-09 -> gpt-4-turbo; gpt-4.1 matches nothing)."""
    if not model:
        return None
    table = _price_table()
    models = table.get("models") or {}
    name = model.split("/")[-1]
    hits = [k for k in models if name == k or name.startswith(k + "-")]
    if not hits:
        return None
    k = max(hits, key=len)
    return float(models[k]["input"]), float(models[k]["output"]), f"prices.yaml '{k}' ({table.get('date')})"


def prices(cfg) -> tuple[float | None, float | None, str]:
    """The prices a run uses and where they come from: flags, else prices.yaml, else 0 for a local judge."""
    if cfg.price_in is not None or cfg.price_out is not None:
        return cfg.price_in or 0.0, cfg.price_out or 0.0, "--judge-price-in/--judge-price-out"
    if cfg.local:
        return 0.0, 0.0, "local judge (no per-token price)"
    hit = known_price(cfg.model)
    if hit is None:
        return None, None, f"unknown: no price for {cfg.model!r} in prices.yaml; give --judge-price-in/--judge-price-out"
    return hit


def cost(prompt_tokens: float, completion_tokens: float, price_in: float | None, price_out: float | None) -> float | None:
    if price_in is None or price_out is None:
        return None
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1e6


class TokenCounter:
    """Counts prompt tokens of chat requests with the best tokenizer available, and says which."""

    def __init__(self, cfg):
        self.count, self.name = self._pick(cfg)

    @staticmethod
    def _pick(cfg):
        if cfg.local:
            try:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(cfg.model)
                return (lambda text: len(tok(text, add_special_tokens=False)["input_ids"])), f"{cfg.model} tokenizer"
            except Exception:  # noqa: BLE001 - any failure falls back to the stated approximation
                pass
        else:
            try:
                import tiktoken

                try:
                    enc = tiktoken.encoding_for_model(cfg.model)
                except KeyError:
                    enc = tiktoken.get_encoding("o200k_base")
                return (lambda text: len(enc.encode(text, disallowed_special=()))), f"tiktoken {enc.name}"
            except Exception:  # noqa: BLE001 - tiktoken absent or its files not cached offline
                pass
        return (lambda text: math.ceil(len(text) / 4)), "approximation: characters / 4"

    def prompt_tokens(self, request: dict) -> int:
        msgs = request.get("messages") or []
        return sum(self.count(str(m.get("content") or "")) + MESSAGE_OVERHEAD for m in msgs) + 3


def max_tokens(request: dict) -> int | None:
    return request.get("max_tokens") or request.get("max_completion_tokens")


def estimate(requests: list[dict], cache_hits: int, cfg, desc: str) -> dict:
    """The bill of ``requests`` (those not in the cache), as recorded in the result's judge block."""
    counter = TokenCounter(cfg)
    prompt = sum(counter.prompt_tokens(r) for r in requests)
    completion = sum(min(max_tokens(r) or ASSUMED_COMPLETION, ASSUMED_COMPLETION) for r in requests)
    completion_max = sum(max_tokens(r) or ASSUMED_COMPLETION for r in requests)
    p_in, p_out, source = prices(cfg)
    return {"what": desc, "calls": len(requests), "cache_hits": cache_hits, "prompt_tokens": prompt,
            "completion_tokens": completion, "completion_tokens_max": completion_max,
            "tokenizer": counter.name,
            "completion_assumption": f"min(max_tokens, {ASSUMED_COMPLETION}) per call; at most max_tokens",
            "price_in_usd_per_m": p_in, "price_out_usd_per_m": p_out, "price_source": source,
            "cost_usd": cost(prompt, completion, p_in, p_out), "cost_usd_max": cost(prompt, completion_max, p_in, p_out)}


def describe(est: dict) -> str:
    """One paragraph for the terminal."""
    def usd(x):
        return "unknown" if x is None else f"${x:,.2f}"

    price = (f"at ${est['price_in_usd_per_m']:g}/${est['price_out_usd_per_m']:g} per M tokens in/out"
             if est["price_in_usd_per_m"] is not None else "")
    return (f"judge bill ({est['what']}): {est['calls']} calls ({est['cache_hits']} answered from the cache), "
            f"~{est['prompt_tokens']:,} prompt tokens ({est['tokenizer']}) + ~{est['completion_tokens']:,} completion "
            f"tokens (assumed {est['completion_assumption']}: {est['completion_tokens_max']:,}); estimated "
            f"{usd(est['cost_usd'])} (at most {usd(est['cost_usd_max'])}) {price} [{est['price_source']}]")
