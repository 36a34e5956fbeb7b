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


BACKENDS = {"hf": "harness.generation.hf:HFGenerator", "vllm": "harness.generation.vllm_backend:VLLMGenerator",
            "openai": "harness.generation.openai_backend:OpenAIGenerator"}


def get_generator(backend: str, model: str, **options) -> Generator:
    """Build a backend by name; options go to its constructor (batch_size, tensor_parallel_size, base_url, ...)."""
    import importlib

    if backend not in BACKENDS:
        raise KeyError(f"unknown generation backend '{backend}'; known: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module), cls)(model, **options)


def apply_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string; True when one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
