"""Everything ``--method`` accepts, in one registry.

Each registered loss (align.losses) is a method trained by ``align.trainer.train``.
A method that wraps a loss (sDPO: stepwise training with any loss as its inner loss)
registers itself here with ``register_wrapper`` from its own module, listed in
WRAPPER_MODULES. Nothing else dispatches on a method's name.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from align.losses import LOSSES, get_loss

WRAPPER_MODULES = ("align.sdpo",)
DEFAULT_INNER_LOSS = "dpo"


@dataclass(frozen=True)
class Method:
    name: str
    train: Callable  # train(cfg: TrainConfig) -> dict with "completed"
    wraps_loss: bool  # True: the loss named in cfg.loss["name"] is trained inside this method
    default_loss: str
    recipe: str | None  # packaged recipe with the method's paper settings
    config_fields: tuple[str, ...] = ()  # TrainConfig fields only this method reads
    report: Callable | None = None  # report(cfg, result) -> text printed after a finished run
    doc: str = ""


_WRAPPERS: dict[str, Method] = {}


def register_wrapper(method: Method) -> None:
    _WRAPPERS[method.name] = method


def _train_with_loss(cfg):
    from align.trainer import train

    return train(cfg)


def methods() -> dict[str, Method]:
    for module in WRAPPER_MODULES:
        importlib.import_module(module)
    out = {name: Method(name, _train_with_loss, False, name, spec.recipe, doc=spec.summary())
           for name, spec in LOSSES.items()}
    out.update(_WRAPPERS)
    return dict(sorted(out.items()))


def get_method(name: str) -> Method:
    known = methods()
    if name not in known:
        raise ValueError(f"unknown method '{name}'; registered: {', '.join(known)}")
    return known[name]


def loss_name(method: str, loss: dict) -> str:
    """The loss a method trains with: the method itself, or a wrapper's inner loss."""
    m = get_method(method)
    name = loss.get("name")
    if not m.wraps_loss:
        if name is not None and name != method:
            raise ValueError(f"method '{method}' trains loss '{method}', but the loss block names '{name}'")
        return method
    name = name or m.default_loss
    if name not in LOSSES:
        raise ValueError(f"method '{method}': unknown inner loss '{name}'; registered: {', '.join(sorted(LOSSES))}")
    return name


def check_config(cfg) -> None:
    """Fill ``cfg.loss['name']`` and refuse anything the run would not use."""
    if not isinstance(cfg.loss, dict):
        raise ValueError(f"loss: expected a mapping such as {{name: dpo, beta: 0.1}}, got {cfg.loss!r}")
    name = loss_name(cfg.method, cfg.loss)
    get_loss(name).resolve({k: v for k, v in cfg.loss.items() if k != "name"})
    cfg.loss = {"name": name, **{k: v for k, v in cfg.loss.items() if k != "name"}}
    mine = set(get_method(cfg.method).config_fields)
    for other in methods().values():
        for f in other.config_fields:
            if f not in mine and getattr(cfg, f) is not None:
                raise ValueError(f"setting '{f}' belongs to method '{other.name}', not '{cfg.method}'")


def loss_kwargs(cfg) -> tuple:
    """(LossSpec, every setting of the run's loss with defaults filled in)."""
    spec = get_loss(cfg.loss["name"])
    return spec, spec.resolve({k: v for k, v in cfg.loss.items() if k != "name"})
