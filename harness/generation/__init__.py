"""Text generation behind one small interface, shared by every judged benchmark.

A backend takes chat conversations plus sampling settings and returns, per
conversation, the generated text and its token count. Implementations: ``hf``
(transformers, batched and left-padded), ``vllm`` (in-process, GPU) and
``openai`` (any OpenAI-compatible endpoint).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingSettings:
    """What to sample. temperature 0 means greedy decoding."""

    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass
class Generation:
    text: str
    n_tokens: int
    finish_reason: str = "stop"
    meta: dict = field(default_factory=dict)


Message = dict  # {"role": "system"|"user"|"assistant", "content": str}


class Generator(Protocol):
    """Anything that turns conversations into one completion each."""

    name: str

    def generate(self, conversations: list[list[Message]], sampling: SamplingSettings) -> list[Generation]:
        ...
