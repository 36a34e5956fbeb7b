"""An OpenAI-compatible LLM judge: async client with bounded concurrency, retries, a disk cache
and append-only judgment files. Benchmarks in harness/judged build their prompts on top of it."""
from harness.judge.config import JudgeConfig, JudgeDryRun, JudgeError, Ledger, redact
from harness.judge.client import JudgeClient, JudgeReply, JudgeStats
from harness.judge.cache import JudgeCache
from harness.judge.store import JsonlStore

__all__ = ["JudgeConfig", "JudgeDryRun", "JudgeError", "Ledger", "redact", "JudgeClient", "JudgeReply", "JudgeStats", "JudgeCache", "JsonlStore"]
