"""A deterministic Generator for tests and benchmarks: answers are a function of the prompt."""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.generation import Generation, SamplingSettings


@dataclass
class ScriptedGenerator:
    name: str = "scripted-model"
    style: str = "ANSWER"  # a marker put in every answer, so a scripted judge can tell models apart
    calls: list = field(default_factory=list)  # (n_conversations, sampling) per generate() call

    def generate(self, conversations: list[list[dict]], sampling: SamplingSettings) -> list[Generation]:
        self.calls.append((len(conversations), sampling))
        out = []
        for conv in conversations:
            last = conv[-1]["content"]
            text = f"{self.style} (turn {sum(m['role'] == 'user' for m in conv)}) to: {last[:60]}"
            out.append(Generation(text=text, n_tokens=len(text.split())))
        return out
