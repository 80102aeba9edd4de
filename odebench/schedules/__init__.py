"""Noise schedules by name: ``odebench.schedules.get("linear")``.

Every schedule is an interpolant x_t = alpha(t) x0 + sigma(t) z (:mod:`.base`).
Variance preserving, continuous: "linear", "scaled-linear", "cosine", "cosine-s0", "edm" (EDM's
noise levels in VP form). Variance exploding / EDM: "ve". Flow matching: "flow".
Variance preserving, discrete 1000-step tables: "ddpm-linear-1000", "scaled-linear-1000",
"cosine-1000"
(see :mod:`odebench.schedules.discrete` for how t maps to the index and how the tables are
evaluated between integers).
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Schedule, ScheduleScalars
from .continuous import CosineVP, LinearVP, ScaledLinearVP, SigmaLinearVP
from .discrete import (
    DiscreteSchedule,
    cosine_betas,
    ddpm_linear_betas,
    scaled_linear_betas,
)
from .flow import FlowMatching
from .ve import VarianceExploding
from .vp import VPSchedule

_FACTORIES: dict[str, Callable[..., Schedule]] = {
    "linear": lambda **kw: LinearVP(**kw),
    "scaled-linear": lambda **kw: ScaledLinearVP(**kw),
    "cosine": lambda **kw: CosineVP(**kw),
    "cosine-s0": lambda **kw: CosineVP(s=0.0, name="cosine-s0", **kw),
    "edm": lambda **kw: SigmaLinearVP(**kw),
    "ve": lambda **kw: VarianceExploding(**kw),
    "flow": lambda **kw: FlowMatching(**kw),
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


INTERPOLANTS = ("vp", "ve", "flow")


def names(interpolant: str | None = None) -> list[str]:
    """Every schedule name ``get`` accepts, or those of one interpolant ("vp", "ve", "flow")."""
    if interpolant is None:
        return list(_FACTORIES)
    if interpolant not in INTERPOLANTS:
        raise ValueError(
            f"unknown interpolant {interpolant!r} (choose from {', '.join(INTERPOLANTS)})"
        )
    return [n for n, make in _FACTORIES.items() if make().interpolant == interpolant]


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
    "INTERPOLANTS",
    "CosineVP",
    "DiscreteSchedule",
    "FlowMatching",
    "LinearVP",
    "ScaledLinearVP",
    "Schedule",
    "ScheduleScalars",
    "SigmaLinearVP",
    "VPSchedule",
    "VarianceExploding",
    "get",
    "names",
]
