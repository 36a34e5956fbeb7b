"""The loss registry. A loss is a pure function of per-sequence log-probs whose keyword
arguments after ``lp`` are its settings, each declared once as
``name: Annotated[type, "one-line doc"] = default``; everything else (recipes, CLI flags,
help text, validation, run.json) reads them from that signature."""
from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal


@dataclass
class PairLogps:
    chosen: Any  # summed log π(y_w|x), [B]
    rejected: Any  # summed log π(y_l|x), [B]
    chosen_tokens: Any  # answer token counts, [B]
    rejected_tokens: Any
    ref_chosen: Any = None  # summed log π_ref(y_w|x), [B]
    ref_rejected: Any = None
    # Extra inputs a loss may declare in ``needs`` (see INPUTS); no gradient flows through them.
    mismatched_chosen: Any = None  # summed log π(y_w of another pair | this pair's x), [B]
    mismatched_rejected: Any = None
    ref_mismatched_chosen: Any = None  # the same under the reference
    ref_mismatched_rejected: Any = None


# What a loss may ask for beyond its pair's log-probs; the trainer knows how to provide each.
INPUTS = {
    "mismatched": "log-probs of each prompt with the answers of another pair of the batch (KL estimates)",
}


@dataclass
class LossOutput:
    losses: Any  # [B]
    chosen_rewards: Any  # [B], detached
    rejected_rewards: Any  # [B], detached
    extra: dict | None = None  # method-specific metrics (scalars)


@dataclass(frozen=True)
class Setting:
    name: str
    type: Any  # float, int, bool, str, or a Literal of choices
    default: Any
    doc: str

    @property
    def choices(self) -> tuple | None:
        return typing.get_args(self.type) if typing.get_origin(self.type) is Literal else None

    def type_name(self) -> str:
        return "|".join(map(str, self.choices)) if self.choices else self.type.__name__

    def parse(self, value):
        """A value from YAML or the command line (a string), checked against the declared type."""
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"must be one of {', '.join(map(str, self.choices))}, got {value!r}")
            return value
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError(f"must be true or false, got {value!r}")
        if self.type in (int, float):
            if isinstance(value, bool):
                raise ValueError(f"must be a number, got {value!r}")
            try:
                out = self.type(value)
            except (TypeError, ValueError):
                raise ValueError(f"must be {self.type.__name__}, got {value!r}") from None
            if self.type is int and isinstance(value, float) and value != out:
                raise ValueError(f"must be an integer, got {value!r}")
            return out
        return self.type(value)


@dataclass(frozen=True)
class LossSpec:
    name: str
    fn: Callable[..., LossOutput]
    needs_reference: bool
    needs: tuple[str, ...] = ()
    recipe: str | None = None  # the packaged recipe with the method's paper settings

    @property
    def settings(self) -> dict[str, Setting]:
        return loss_settings(self.fn)

    @property
    def defaults(self) -> dict:
        return {n: s.default for n, s in self.settings.items()}

    def summary(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""

    def resolve(self, given: dict) -> dict:
        """All settings: the defaults, overridden by ``given``; an unknown or ill-typed one is a ValueError."""
        settings = self.settings
        unknown = sorted(set(given) - set(settings))
        if unknown:
            accepted = ", ".join(settings) or "none"
            raise ValueError(f"loss '{self.name}' does not accept setting{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(unknown)}; it accepts: {accepted}")
        out = self.defaults
        for k, v in given.items():
            try:
                out[k] = settings[k].parse(v)
            except ValueError as e:
                raise ValueError(f"loss '{self.name}' setting '{k}': {e}") from None
        return out


LOSSES: dict[str, LossSpec] = {}


def loss_settings(fn) -> dict[str, Setting]:
    """The settings a loss function declares: every parameter after the first (the log-probs)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = {}
    for i, (name, p) in enumerate(inspect.signature(fn).parameters.items()):
        if i == 0:
            continue
        hint = hints.get(name)
        if typing.get_origin(hint) is not typing.Annotated or p.default is inspect.Parameter.empty:
            raise TypeError(f"{fn.__qualname__}: setting '{name}' must be declared as "
                            f"`{name}: Annotated[type, \"doc\"] = default`")
        typ, doc = typing.get_args(hint)[:2]
        out[name] = Setting(name, typ, p.default, doc)
    return out


def register(name: str, *, needs_reference: bool, needs: tuple[str, ...] = (), recipe: str | None = None):
    """Register a loss under ``name``. ``needs`` names extra inputs from INPUTS."""
    def wrap(fn):
        bad = [n for n in needs if n not in INPUTS]
        if bad:
            raise ValueError(f"loss '{name}': unknown input(s) {bad}; known: {', '.join(INPUTS)}")
        loss_settings(fn)  # fail at import if a setting is not declared properly
        LOSSES[name] = LossSpec(name, fn, needs_reference, tuple(needs), recipe)
        return fn

    return wrap


def get_loss(name: str) -> LossSpec:
    if name not in LOSSES:
        raise KeyError(f"unknown loss '{name}'; registered: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]


def require_reference(lp: PairLogps, name: str) -> None:
    if lp.ref_chosen is None or lp.ref_rejected is None:
        raise ValueError(f"loss '{name}' needs reference log-probs")


def format_settings(spec: LossSpec) -> str:
    """Help text: one line per setting with type, default and doc."""
    lines = [f"{spec.name}: {spec.summary()}" + ("" if spec.needs_reference else " [reference-free]")]
    for s in spec.settings.values():
        lines.append(f"  {s.name} ({s.type_name()}, default {s.default}): {s.doc}")
    if not spec.settings:
        lines.append("  (no settings)")
    return "\n".join(lines)


def token_means(lp: PairLogps):
    """Per-token mean log-probs (m_w, m_l): log π(y|x) / |y|."""
    return lp.chosen / lp.chosen_tokens.clamp(min=1), lp.rejected / lp.rejected_tokens.clamp(min=1)
