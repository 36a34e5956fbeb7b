"""Training methods by name -> train(TrainConfig) -> result dict (the registry lives in align.methods)."""
from __future__ import annotations

from typing import Callable


def training_methods() -> dict[str, Callable]:
    from align.methods import methods

    return {name: m.train for name, m in methods().items()}
