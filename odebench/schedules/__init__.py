"""Noise schedules by name: ``odebench.schedules.get("linear")``.

Continuous: "linear", "scaled-linear", "cosine", "cosine-s0", "edm".
Discrete 1000-step tables: "ddpm-linear-1000", "scaled-linear-1000", "cosine-1000"
(see :mod:`odebench.schedules.discrete` for how t maps to the index and how the tables are
evaluated between integers).
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Schedule
from .continuous import CosineVP, LinearVP, ScaledLinearVP, SigmaLinearVP
from .discrete import (
    DiscreteSchedule,
    cosine_betas,
    ddpm_linear_betas,
    scaled_linear_betas,
)

_FACTORIES: dict[str, Callable[..., Schedule]] = {
    "linear": lambda **kw: LinearVP(**kw),
    "scaled-linear": lambda **kw: ScaledLinearVP(**kw),
    "cosine": lambda **kw: CosineVP(**kw),
    "cosine-s0": lambda **kw: CosineVP(s=0.0, name="cosine-s0", **kw),
    "edm": lambda **kw: SigmaLinearVP(**kw),
    "ddpm-linear-1000": lambda **kw: DiscreteSchedule(
        ddpm_linear_betas(),
        "ddpm-linear-1000",
        description="DDPM betas linspace(1e-4, 0.02, 1000), t = (i + 1) / 1000",
        **kw,
    ),
    "scaled-linear-1000": lambda **kw: DiscreteSchedule(
        scaled_linear_betas(),
        "scaled-linear-1000",
        description="Stable Diffusion betas, 1000 steps, t = (i + 1) / 1000",
        **kw,
    ),
    "cosine-1000": lambda **kw: DiscreteSchedule(
        cosine_betas(),
        "cosine-1000",
        description="Nichol & Dhariwal cosine betas capped at 0.999, t = (i + 1) / 1000",
        **kw,
    ),
}


def names() -> list[str]:
    """Every schedule name ``get`` accepts."""
    return list(_FACTORIES)


def get(name: str | Schedule, **kwargs) -> Schedule:
    """Build a schedule by name (keyword arguments go to its constructor); a Schedule passes."""
    if isinstance(name, Schedule):
        if kwargs:
            raise ValueError("keyword arguments need a schedule name, not a Schedule object")
        return name
    try:
        factory = _FACTORIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown schedule {name!r} (choose from {', '.join(_FACTORIES)})"
        ) from None
    return factory(**kwargs)


__all__ = [
    "CosineVP",
    "DiscreteSchedule",
    "LinearVP",
    "ScaledLinearVP",
    "Schedule",
    "SigmaLinearVP",
    "get",
    "names",
]
