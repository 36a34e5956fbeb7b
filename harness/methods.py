"""Training methods by name -> train(TrainConfig) -> run dict. sdpo plugs in from align.sdpo when present."""
from __future__ import annotations

import importlib
from typing import Callable

# Extra methods not defined by a loss name; module must expose one of these callables.
PLUGIN_METHODS = {"sdpo": ("align.sdpo", ("train_sdpo", "train"))}


def training_methods() -> dict[str, Callable]:
    from align.losses import LOSSES
    from align.trainer import train

    methods: dict[str, Callable] = {name: train for name in sorted(LOSSES)}
    for name, (module, attrs) in PLUGIN_METHODS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        fn = next((getattr(mod, a) for a in attrs if callable(getattr(mod, a, None))), None)
        if fn is not None:
            methods[name] = fn
    return methods
