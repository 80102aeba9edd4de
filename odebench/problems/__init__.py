"""Analytic diffusion problems whose eps is known in closed form.

``GaussianMixture``, ``Gaussian`` (with the exact flow map), ``Dirac``, the pure-quadrature
``QuadratureField``, and the embedded defaults by name: ``get("gmm-2d")``, ``get("gmm-64d")``,
``get("gaussian-lowrank")``, ``get("dirac")``.
"""

from __future__ import annotations

from ..schedules import Schedule
from .base import Problem
from .embedded import EMBEDDED
from .gaussian import Dirac, Gaussian
from .mixture import GaussianMixture
from .quadrature import QuadratureField


def names() -> list[str]:
    """Names of the embedded problems."""
    return list(EMBEDDED)


def describe(name: str) -> str:
    return EMBEDDED[name][1]


def get(name: str | Problem, schedule: Schedule | str = "linear") -> Problem:
    """An embedded problem by name under ``schedule``; a Problem object is passed through."""
    if isinstance(name, Problem):
        return name
    try:
        factory = EMBEDDED[name][0]
    except (KeyError, TypeError):
        raise ValueError(f"unknown problem {name!r} (choose from {', '.join(EMBEDDED)})") from None
    return factory(schedule)


__all__ = [
    "Dirac",
    "Gaussian",
    "GaussianMixture",
    "Problem",
    "QuadratureField",
    "describe",
    "get",
    "names",
]
