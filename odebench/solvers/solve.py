"""``odebench.solve``: run a solver over a grid, count model evaluations, catch divergence."""

from __future__ import annotations

import math

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
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model returned {what} of shape {got} for x of shape {tuple(x.shape)}")
    return out


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
    returns eps for a batch x at a 0-d time t. A step that produces a non-finite state ends the
    run: the Solution records where (``diverged``) and carries NaN from there on.
    """
    solver = get_solver(solver, **options) if isinstance(solver, str) else solver
    if options and not isinstance(solver, Solver):
        raise ValueError("solver options need a solver name")
    sched = get_schedule(schedule)
    ts = check_grid(torch.as_tensor(ts), sched)
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
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1:
        raise ValueError("x must be a floating-point tensor with a batch dimension first")
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
    diverged = None
    current = x
    for n, current in enumerate(solver.iterate(counter, sched, x, ts, noise), start=1):
        # iterate is the state machine's loop: init, then step after step (base.Solver)
        if trajectory:
            states.append(current)
        if not math.isfinite(float(current.sum())):  # one reduction; any inf or nan shows
            diverged = Divergence(n, float(ts[n - 1]), float(ts[n]))
            break
    if diverged is not None:
        current = torch.full_like(x, float("nan"))
        if trajectory:
            states.extend(current for _ in range(steps + 1 - len(states)))
    traj = torch.stack(states) if trajectory else None
    return Solution(
        x=current, nfe=counter.calls, ts=ts, solver=solver.name, trajectory=traj, diverged=diverged
    )
