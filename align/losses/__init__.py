"""Preference losses: pure functions of per-sequence log-probs, one module per loss.

Every module in this package is imported here, and its ``@register`` makes the loss
known to the trainer, the recipes and the CLI. Adding a method is adding a module.
"""
from __future__ import annotations

import importlib
import pkgutil

from align.losses.core import (  # noqa: F401
    INPUTS, LOSSES, LossOutput, LossSpec, PairLogps, Setting, format_settings, get_loss, loss_settings, register,
    require_reference, token_means,
)

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "core":
        importlib.import_module(f"{__name__}.{_m.name}")
