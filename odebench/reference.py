"""Reference solutions that report their own accuracy.

A measured error is only as good as the reference it is measured against. ``reference()``
returns the states of the exact ODE solution through x_T at a set of times, from

- the exact flow map where the problem has one (Gaussian, Dirac, quadrature field); its
  accuracy is measured against a second evaluation through intermediate times (what is
  left is round-off), or
- an adaptive DOP853 solve in lambda (where the ODE is smooth) at a tight tolerance; its
  accuracy is measured against a second, independent adaptive solve in sigma_tilde.

``accuracy[k]`` is the RMS over samples of the distance between the two at times[k]. Callers
flag measurements whose error is not at least ``RELIABILITY_FACTOR`` times larger.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._tensor import DTYPE
from .metrics import rms_error
from .schedules import Schedule
from .solvers import solve
from .solvers.pf import AdaptiveReference

RELIABILITY_FACTOR = 100.0


@dataclass
class Reference:
    times: torch.Tensor  # decreasing, times[0] is where x_T lives
    states: torch.Tensor  # (len(times), B, ...)
    accuracy: torch.Tensor  # (len(times),) RMS distance to the second reference
    method: str
    second: str
    nfe: int

    def index(self, t: float) -> int:
        """Position of time t (which must be one of ``times``)."""
        hits = torch.nonzero((self.times - float(t)).abs() <= 1e-14 * max(1.0, abs(float(t))))
        if len(hits) == 0:
            raise KeyError(f"time {float(t)!r} is not among the reference times")
        return int(hits[0])

    def at(self, t: float) -> torch.Tensor:
        return self.states[self.index(t)]

    def accuracy_at(self, t: float) -> float:
        return float(self.accuracy[self.index(t)])

    def reliable(self, error: float, t: float) -> bool:
        """True when ``error`` at time t exceeds the reference's accuracy there 100-fold."""
        return error >= RELIABILITY_FACTOR * self.accuracy_at(t)


def union_times(*grids: torch.Tensor) -> torch.Tensor:
    """Sorted (decreasing) union of grids sharing their first time, duplicates merged."""
    allt = torch.cat([g.to(DTYPE) for g in grids])
    uniq = torch.unique(allt).flip(0)
    keep = torch.ones_like(uniq, dtype=torch.bool)
    keep[1:] = (uniq[:-1] - uniq[1:]) > 1e-14
    return uniq[keep]


def reference(
    problem,
    schedule: Schedule,
    x_T: torch.Tensor,
    times: torch.Tensor,
    *,
    tol: float = 1e-12,
    model=None,
) -> Reference:
    """Exact (or high-accuracy) states at ``times`` (decreasing, times[0] = start of x_T).

    ``problem`` provides ``eps`` and possibly ``flow``; ``model`` overrides the eps used by the
    adaptive solves (e.g. a network), in which case the exact flow is not used.
    """
    times = times.to(DTYPE)
    flow = getattr(problem, "flow", None) if model is None else None
    if flow is not None:
        states = torch.stack([flow(x_T, times[0], t) for t in times])
        second = torch.stack([_composed_flow(flow, schedule, x_T, times[0], t) for t in times])
        acc = torch.tensor([rms_error(a, b) for a, b in zip(states, second, strict=True)])
        return Reference(
            times, states, acc, "exact flow map", "exact flow composed through the midpoint", 0
        )
    eps = model if model is not None else problem.eps
    # Two independent adaptive solves: DOP853 in lambda and in sigma_tilde. A grid that ends
    # at t = 0 has lambda = inf there, so both run in sigma_tilde, with different methods.
    if float(schedule.sigma(times[-1])) == 0.0:
        plans = [("DOP853", "sigma_tilde"), ("RK45", "sigma_tilde")]
    else:
        plans = [("DOP853", "lambda"), ("DOP853", "sigma_tilde")]
    sols = []
    for method, variable in plans:
        pf = AdaptiveReference(rtol=tol, atol=tol, method=method, variable=variable)
        sol = solve(pf, eps, schedule, x_T, times, trajectory=True)
        if sol.diverged:
            raise RuntimeError(f"the adaptive reference solve ({method} in {variable}) failed")
        sols.append(sol)
    acc = torch.tensor(
        [rms_error(a, b) for a, b in zip(sols[0].trajectory, sols[1].trajectory, strict=True)]
    )
    first, second = (f"pf {m} in {v}, tol {tol:g}" for m, v in plans)
    return Reference(times, sols[0].trajectory, acc, first, second, sols[0].nfe + sols[1].nfe)


def _composed_flow(flow, schedule: Schedule, x: torch.Tensor, s, t) -> torch.Tensor:
    if float(s) == float(t):
        return x
    mid = 0.5 * (torch.as_tensor(s, dtype=DTYPE) + torch.as_tensor(t, dtype=DTYPE))
    return flow(flow(x, s, mid), mid, t)
