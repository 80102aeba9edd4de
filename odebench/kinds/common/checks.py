"""Checks and choices of study fields (``Field(check=..., choices=...)``).

A check takes the (already type-coerced) value and returns None if it is fine, else the reason
("must be positive"), which the spec loader turns into a one-line error naming the key.
Choices that depend on registries (solvers, shipped networks) are functions, so they are
looked up when a study is validated, not when a kind is defined.
"""

from __future__ import annotations

from ... import solvers
from ...grids import SPACINGS


def positive(value: int) -> str | None:
    """Positive counts: samples, steps, NFE budgets."""
    return None if value > 0 else "must be positive"


def non_negative(value: int) -> str | None:
    """Seeds."""
    return None if value >= 0 else "must be >= 0"


def in_unit(value: float) -> str | None:
    """End times of sampling: in [0, 1)."""
    return None if 0.0 <= value < 1.0 else "must lie in [0, 1)"


def start_time(value: float) -> str | None:
    """Start times of sampling: in (0, 1] (capped at the schedule's end by the cells)."""
    return None if 0 < value <= 1 else "in (0, 1]"


def grid_shift(value: float) -> str | None:
    """Flow-matching time shifts: positive and finite (1 leaves the grid as it is)."""
    return None if 0.0 < value < float("inf") else "must be positive and finite"


def tolerance(value: float) -> str | None:
    """Tolerances of the adaptive reference: tight enough to judge the solvers."""
    return None if 0.0 < value < 1e-6 else "must lie in (0, 1e-6)"


def device(value: str) -> str | None:
    """Where networks run: cpu, cuda or cuda:N."""
    ok = value == "cpu" or value == "cuda" or value.startswith("cuda:")
    return None if ok else "must be cpu, cuda or cuda:N"


def sampler_names() -> list[str]:
    """Every solver and alias that samples on a fixed grid (not the adaptive ``pf``)."""
    return [n for n in solvers.names(include_aliases=True) if n != "pf"]


def user_solver(value: str) -> str | None:
    """None for a registered name; for "module:attribute", None if it imports to a solver,
    else why not (a one-line message naming the module)."""
    if ":" not in value:
        return None
    try:
        solvers.get(value)
    except ValueError as err:
        return str(err)
    return None


def any_sampler_names() -> list[str]:
    """``sampler_names`` and the stochastic samplers (``solvers.sde_names``)."""
    return sampler_names() + solvers.sde_names()


def model_names() -> list[str]:
    """eps models: ``exact``, ``trained`` (the network shipped for the cell's problem), or a
    shipped network by name."""
    from ...models import shipped

    return ["exact", "trained", *shipped()]


def spacing_names() -> list[str]:
    """Time grids a study may ask for (``pndm`` is the discrete tables' own grid)."""
    return [s for s in SPACINGS if s != "pndm"]
