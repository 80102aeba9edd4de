"""Fields several kinds declare alike (``fields.PROBLEM``, ``fields.t_min([0.1])``, ...).

Fields are immutable, so the constants can be shared as they are; the functions make the
fields whose default (or help) differs from kind to kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ... import problems, schedules
from ...schedules.prediction import KINDS
from ...study import REQUIRED, Field
from .checks import (
    any_sampler_names,
    device,
    grid_shift,
    in_unit,
    model_names,
    non_negative,
    positive,
    sampler_names,
    spacing_names,
    start_time,
    tolerance,
    user_solver,
)

PROBLEM = Field(str, choices=problems.names, help="embedded problem")
MODEL = Field(
    str,
    default=["exact"],
    choices=model_names,
    help="eps model: exact, trained (the shipped network of the problem) or a name",
)
SCHEDULE = Field(str, choices=schedules.names, help="noise schedule")
SEED = Field(int, default=[0], check=non_negative, help="seed of the start points")
T_MAX = Field(float, default=1.0, check=start_time, help="start time, capped at the schedule's end")
#: t_max of the kinds that start where the schedule allows (``grids.start_time``).
START = Field(
    float,
    default=1.0,
    check=start_time,
    help="start time, capped at the schedule's end; where alpha = 0 there (flow matching at "
    "t = 1) at sigma/alpha = 80 (EDM's sigma_max): t = 80/81",
)
#: The exact model's output kind (a ladder axis: one reference serves every kind).
PREDICTION = Field(
    str,
    default=["eps"],
    choices=KINDS,
    help="what the exact model predicts (eps, x0, v, velocity, denoiser); solvers see the eps "
    "converted from it",
)
#: SD3's time shift of the grid nodes, ends kept (a ladder axis).
SHIFT = Field(
    float,
    default=[1.0],
    check=grid_shift,
    help="time shift s t / (1 + (s - 1) t) of the grid nodes (SD3: 3.0), ends kept; 1 = none",
)
#: Classifier-free guidance scale on the class labels i mod K (a ladder axis: one reference
#: per scale). 0 = the unconditional model, 1 = conditional, > 1 guided.
GUIDANCE = Field(
    float,
    default=[0.0],
    check=non_negative,
    help="classifier-free guidance w on labels i mod K: eps_null + w (eps_c - eps_null); "
    "0 = unconditional, 1 = conditional (exact: the mixture's classes; trained: the shipped "
    "class-conditional network)",
)
DEVICE = Field(
    str,
    default="cpu",
    check=device,
    help="where networks run: cpu, cuda or cuda:N; analytic problems always run in float64 "
    "on the CPU",
)


def solver(default: Any = REQUIRED, help: str = "solvers", stochastic: bool = False) -> Field:
    """The solvers of a cell (a ladder axis): any fixed-step sampler or alias, with
    ``stochastic`` the SDE samplers too, or a solver of the user's own as "module:attribute"."""
    return Field(
        str,
        default=default,
        choices=any_sampler_names if stochastic else sampler_names,
        check=user_solver,
        help=help,
        importable=True,
    )


def steps(default: Sequence[int], help: str = "step-count ladder") -> Field:
    """Step counts, each positive."""
    return Field(int, default=list(default), check=positive, help=help)


def t_min(default: Sequence[float], help: str = "end time of sampling") -> Field:
    """End times of sampling, in [0, 1)."""
    return Field(float, default=list(default), check=in_unit, help=help)


def spacing(
    default: Sequence[str], help: str = "time grid: uniform, quadratic, lambda, karras"
) -> Field:
    """Time grids."""
    return Field(str, default=list(default), choices=spacing_names(), help=help)


def n_samples(
    default: int,
    check: Callable[[int], str | None] = positive,
    help: str = "start points per cell",
) -> Field:
    """Start points (or samples) per cell."""
    return Field(int, default=default, check=check, help=help)


def ref_tol(default: float, check: Callable[[float], str | None] | None = tolerance) -> Field:
    """Tolerance of the adaptive reference (``check=None`` accepts any float)."""
    return Field(float, default=default, check=check, help="tolerance of the adaptive reference")
