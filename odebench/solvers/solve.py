"""``odebench.solve``: run a solver over a grid, count model evaluations, catch divergence."""

from __future__ import annotations

import math
import reprlib

import torch

from ..grids import check_grid
from ..schedules import Schedule
from ..schedules import get as get_schedule
from .base import Divergence, EpsModel, Solution, Solver
from .noise import GaussianNoise, NoiseSource
from .registry import get as get_solver


class CountingModel:
    """Wraps an eps model: counts calls, checks the output shape, passes t as a 0-d tensor."""

    def __init__(self, model: EpsModel):
        if not callable(model):
            raise ValueError("model must be callable as model(x, t) -> eps")
        self.model, self.calls = model, 0
        if callable(getattr(model, "x0", None)):
            self.x0 = self._x0  # the data prediction, where a solver needs it (alpha = 0)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return _checked(self.model(x, t), x, "eps")

    def _x0(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return _checked(self.model.x0(x, t), x, "x0")


def _checked(out, x: torch.Tensor, what: str) -> torch.Tensor:
    """The model's output, refused unless a floating-point tensor of x's shape (attribute
    checks only: no reduction, no host read per evaluation)."""
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model returned {what} of shape {got} for x of shape {tuple(x.shape)}")
    if not out.is_floating_point():
        raise ValueError(
            f"model returned {what} of dtype {out.dtype}; a floating-point dtype is required "
            f"(x is {x.dtype})"
        )
    return out


def check_start(x, name: str = "x_T") -> torch.Tensor:
    """Refuse a start state that is not a finite floating-point batch (one host read)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1:
        got = (
            f"dtype {x.dtype} and shape {tuple(x.shape)}"
            if isinstance(x, torch.Tensor)
            else type(x).__name__
        )
        raise ValueError(
            f"{name} must be a floating-point tensor with a batch dimension first, got {got}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(1)
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten().tolist()
        raise ValueError(
            f"{name} is not finite: {len(rows)} of {x.shape[0]} samples "
            f"hold NaN or inf (samples {reprlib.repr(rows)})"
        )
    return x


def solve(
    solver: str | Solver,
    model: EpsModel,
    schedule: Schedule | str,
    x: torch.Tensor,
    ts,
    *,
    trajectory: bool = False,
    generator: torch.Generator | None = None,
    noise: NoiseSource | None = None,
    **options,
) -> Solution:
    """Integrate the probability-flow ODE of ``model`` from ts[0] down to ts[-1].

    ``solver`` is a name (``options`` go to its constructor) or a Solver. ``model(x, t)``
    returns eps for a batch x at a 0-d time t. Bad input (a grid that is not a decreasing
    sequence of numbers, an x that is not a finite floating-point batch) is refused with a
    ValueError naming the argument.

    Divergence is per sample: each step's state is reduced to one sum per sample (no host
    read per step), and at the end the first non-finite step of every sample is located. A
    sample that diverged is NaN in ``x`` (and in ``trajectory`` from that step on); the others
    keep their values, since every fixed-step solver acts on the batch row by row.
    ``Solution.diverged`` records which samples diverged and when. (An adaptive solver's step
    control couples the batch through one error norm: there one bad sample stops all.)
    """
    solver = get_solver(solver, **options) if isinstance(solver, str) else solver
    if options and not isinstance(solver, Solver):
        raise ValueError("solver options need a solver name")
    sched = get_schedule(schedule)
    ts = check_grid(ts, sched, name="ts")
    if sched.scalars(float(ts[0])).alpha == 0.0 and not (
        solver.starts_at_noise_end and callable(getattr(model, "x0", None))
    ):
        raise ValueError(
            f"{solver.name}: the grid starts at t = {float(ts[0]):g}, where alpha = 0 under "
            f"{sched.name!r}; eps = x there says nothing about x0, so only a classical or "
            "DPM-Solver++ method (euler, heun, rk4, dpm-solver++-2m, ...) with a model that "
            "gives x0 (from_prediction) can start there; else start just below (e.g. t_max = "
            "80/81, sigma/alpha = 80)"
        )
    check_start(x, "x (the start state x_T)")
    steps = len(ts) - 1
    if steps < solver.min_steps:
        raise ValueError(
            f"{solver.name} needs at least {solver.min_steps} steps "
            f"(warm-up: {solver.warmup}), got {steps}"
        )
    if solver.stochastic:
        if noise is not None and generator is not None:
            raise ValueError("give a stochastic sampler either generator= or noise=, not both")
        noise = noise if noise is not None else GaussianNoise(generator)
        if not callable(noise):
            raise ValueError("noise must be callable as noise(x, t, s) -> a standard normal")
    elif generator is not None or noise is not None:
        raise ValueError(f"{solver.name} is deterministic: it takes no generator= or noise=")
    counter = CountingModel(model)
    states = [x] if trajectory else None
    sums, dims = [], tuple(range(1, x.ndim))  # one sum per sample and step
    current = x
    for current in solver.iterate(counter, sched, x, ts, noise):
        # iterate is the state machine's loop: init, then step after step (base.Solver)
        if trajectory:
            states.append(current)
        sums.append(current.sum(dims) if dims else current.clone())  # any inf or nan shows
    traj = torch.stack(states) if trajectory else None
    first = _first_bad_steps(sums)
    diverged = None
    if first is not None:
        diverged, current, traj = _mark_diverged(first, current, traj, ts)
    return Solution(
        x=current, nfe=counter.calls, ts=ts, solver=solver.name, trajectory=traj, diverged=diverged
    )


def _first_bad_steps(sums: list[torch.Tensor]) -> torch.Tensor | None:
    """Each sample's first step whose state sum is not finite (1-based; 0 where it stayed
    finite), on the CPU, or None where every sample stayed finite: the run's one host read."""
    bad = ~torch.isfinite(torch.stack(sums))  # (steps, B)
    if not bool(bad.any()):
        return None
    first = bad.to(torch.uint8).argmax(0) + 1  # argmax gives the first of equal maxima
    return torch.where(bad.any(0), first, 0).cpu()


def _mark_diverged(first: torch.Tensor, x: torch.Tensor, traj: torch.Tensor | None, ts):
    """NaN in the rows of the diverged samples (in the trajectory from their first non-finite
    step on), and the Divergence record."""
    step = int(first[first > 0].min())
    tail = (1,) * (x.ndim - 1)
    per_sample = first.to(x.device)
    x = x.masked_fill((per_sample > 0).view(-1, *tail), math.nan)
    if traj is not None:
        node = torch.arange(len(traj), device=x.device)[:, None]
        after = (per_sample > 0)[None, :] & (node >= per_sample[None, :])
        traj = traj.masked_fill(after.view(*after.shape, *tail), math.nan)
    return Divergence(step, float(ts[step - 1]), float(ts[step]), first), x, traj
