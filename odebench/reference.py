"""Reference solutions that report their own accuracy.

A measured error is only as good as the reference it is measured against. ``reference()``
returns the states of the exact ODE solution through x_T at a set of times, from

- the exact flow map where the problem has one (Gaussian, Dirac, quadrature field); its
  accuracy is measured against a second evaluation through intermediate times (what is
  left is round-off), or
- an adaptive DOP853 solve in lambda (where the ODE is smooth) at a tight tolerance; its
  accuracy is measured against a second, independent adaptive solve in sigma_tilde.

A start where alpha = 0 (flow matching's t = 1: lambda = -inf, eps = x carries no information
about x0) is singular in both. There the first piece, down to the later of times[1] and
lambda = 0, is integrated where the ODE is regular, with the direct x0 prediction (exact at
alpha = 0): in t, dx/dt = alpha' x0 + sigma' eps (the velocity; eps = (x - alpha x0) / sigma),
and independently in u = alpha / sigma = e^lambda with the state y = x / sigma,
dy/du = x0 (Lu et al. 2022, DPM-Solver++'s data form), both adaptive DOP853; each continues
from its own state as above.

``accuracy[k]`` is the RMS over samples of the distance between the two at times[k]. Callers
flag measurements whose error is not at least ``RELIABILITY_FACTOR`` times larger.

``backend`` picks the integrator of the adaptive solves: ``"scipy"`` (``solve_ivp`` on the
host, in numpy) or ``"torch"`` (``odebench.integrate.dop853``: the same DOP853 method, step
control and dense output, batched, on the model's device: no host round trip per stage, one
sync per step). ``"auto"`` (the default) is ``"torch"`` where the model or x_T lives on a
non-CPU device and ``"scipy"`` otherwise, so CPU results do not depend on the new code. The
torch backend has no RK45: where scipy's second solve is RK45 (grids ending at t = 0), its
second solve is DOP853 at a tenfold tighter tolerance.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ._tensor import DTYPE
from .grids import check_grid
from .integrate import dop853
from .integrate.pf import pf_dop853
from .metrics import rms_error
from .schedules import Schedule
from .solvers import solve
from .solvers.pf import AdaptiveReference
from .solvers.solve import check_start

RELIABILITY_FACTOR = 100.0
#: ``Reference.second`` where the accuracy solve was skipped (``accuracy=False``).
NOT_COMPUTED = "not computed (accuracy=False)"
BACKENDS = ("auto", "scipy", "torch")


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
    backend: str = "auto",
    accuracy: bool = True,
) -> Reference:
    """Exact (or high-accuracy) states at ``times`` (decreasing, times[0] = start of x_T).

    ``problem`` provides ``eps`` and possibly ``flow``; ``model`` overrides the eps used by the
    adaptive solves (e.g. a network), in which case the exact flow is not used. ``backend``
    (``"auto"``, ``"scipy"``, ``"torch"``) picks the integrator of the adaptive solves (module
    docstring); the states come back on x_T's device and in its dtype either way.
    ``accuracy=False`` skips the second adaptive solve, which only measures the first's
    accuracy: the states are the same, ``accuracy`` is NaN and ``second`` says it was not
    computed (for a caller that never reads it; about half the cost).
    """
    check_start(x_T, "x_T")
    times = check_grid(times, schedule, name="times", min_points=1)
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 < tol < 1:
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    device = _backend_device(backend, model, x_T)
    flow = getattr(problem, "flow", None) if model is None else None
    if flow is None and float(schedule.alpha(times[0])) == 0.0:
        return _from_pure_noise(problem, schedule, x_T, times, tol, model, device, accuracy)
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
    plans = _plans(schedule, float(times[-1]), tol, device, accuracy)
    sols, nfe = [], 0
    for method, variable, rtol in plans:
        trajectory, n = _adaptive(eps, schedule, x_T, times, method, variable, rtol, device)
        sols.append(trajectory)
        nfe += n
    labels = [_label(m, v, r, device) for m, v, r in plans]
    return Reference(times, sols[0], *_accuracy(sols, labels), nfe)


def _accuracy(chains: list[torch.Tensor], labels: list[str]) -> tuple[torch.Tensor, str, str]:
    """(accuracy per time, first label, second label) of one or two solves' trajectories;
    with one, the accuracy is NaN: not computed."""
    if len(chains) == 1:
        nan = torch.full((len(chains[0]),), math.nan, dtype=DTYPE)
        return nan, labels[0], NOT_COMPUTED
    acc = torch.tensor([rms_error(a, b) for a, b in zip(chains[0], chains[1], strict=True)])
    return acc, labels[0], labels[1]


def _backend_device(backend: str, model, x_T: torch.Tensor) -> torch.device | None:
    """The device the torch backend integrates on, or None for scipy."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    where = x_T.device
    if where.type == "cpu" and getattr(model, "device", None) is not None:
        where = torch.device(model.device)
    if backend == "scipy" or (backend == "auto" and where.type == "cpu"):
        return None
    return where


def _plans(
    schedule: Schedule, t_end: float, tol: float, device, accuracy: bool = True
) -> list[tuple[str, str, float]]:
    """(method, variable, tolerance) of the two independent adaptive solves; without
    ``accuracy`` only the first (the second only measures the first's accuracy)."""
    if float(schedule.sigma(torch.tensor(t_end, dtype=DTYPE))) != 0.0:
        plans = [("DOP853", "lambda", tol), ("DOP853", "sigma_tilde", tol)]
    elif device is None:
        plans = [("DOP853", "sigma_tilde", tol), ("RK45", "sigma_tilde", tol)]
    else:
        plans = [("DOP853", "sigma_tilde", tol), ("DOP853", "sigma_tilde", tol / 10)]
    return plans if accuracy else plans[:1]


def _label(method: str, variable: str, tol: float, device) -> str:
    where = "" if device is None else f" (torch, {device.type})"
    return f"pf {method}{where} in {variable}, tol {tol:g}"


def _adaptive(eps, schedule, x, times, method, variable, tol, device) -> tuple[torch.Tensor, int]:
    """The trajectory (at every time) of one adaptive solve, and its evaluations."""
    if device is None:
        pf = AdaptiveReference(rtol=tol, atol=tol, method=method, variable=variable)
        sol = solve(pf, eps, schedule, x, times, trajectory=True)
        if sol.diverged:
            raise RuntimeError(
                f"the adaptive reference solve ({method} in {variable}) failed"
                + _culprits(eps, schedule, x, times)
            )
        return sol.trajectory, sol.nfe
    check_grid(times, schedule)
    traj, res = pf_dop853(eps, schedule, x.to(device), times, variable=variable, rtol=tol, atol=tol)
    if not res.success:
        raise RuntimeError(
            f"the adaptive reference solve ({method} in {variable}, torch) failed: {res.message}"
        )
    return traj.to(x.device), res.nfev


def _culprits(eps, schedule: Schedule, x: torch.Tensor, times: torch.Tensor) -> str:
    """Which samples make the model non-finite, found by a DDIM solve on the same times
    (whose divergence is per sample; an adaptive solve's one error norm over the batch lets
    one such sample stop them all), as a clause for the error; "" where it finds none."""
    try:
        found = solve("ddim", eps, schedule, x, times).diverged
    except ValueError:
        return ""
    if found is None or found.mask is None:
        return ""
    return (
        f": the model leaves the finite numbers for {found.count} of {len(x)} samples "
        f"(samples {reprlib.repr(found.samples)}; a DDIM solve on the same times: {found})"
    )


def _composed_flow(flow, schedule: Schedule, x: torch.Tensor, s, t) -> torch.Tensor:
    if float(s) == float(t):
        return x
    mid = 0.5 * (torch.as_tensor(s, dtype=DTYPE) + torch.as_tensor(t, dtype=DTYPE))
    return flow(flow(x, s, mid), mid, t)


def _x0_function(problem, model):
    """The direct data prediction: ``model.x0`` (a PredictionModel) or ``problem.x0_pred``."""
    if model is None:
        return problem.x0_pred
    x0 = getattr(model, "x0", None)
    if x0 is None:
        raise ValueError(
            "a reference from alpha = 0 needs the model's direct x0 prediction (model.x0, e.g. "
            "ob.models.from_prediction): eps alone carries no information about x0 there"
        )
    return x0


def _first_piece(x0_fn, schedule: Schedule, x: torch.Tensor, times: list[float], tol, how, device):
    """States at ``times`` (decreasing, times[0] where alpha = 0) by an adaptive DOP853 solve
    in t on the velocity (``how = "t"``) or in u = e^lambda on y = x / sigma (``"u"``), with
    scipy (``device`` None) or ``integrate.dop853`` on ``device``."""

    def t_of(u: float) -> torch.Tensor:
        lam = math.log(u) if u > 0 else -math.inf
        return schedule.t_from_lambda(torch.tensor(lam, dtype=DTYPE)).to(DTYPE)

    if how == "t":

        def fun(t: float, xs: torch.Tensor) -> torch.Tensor:
            tt = torch.tensor(t, dtype=DTYPE)
            a, s = schedule.alpha(tt), schedule.sigma(tt)
            x0 = x0_fn(xs, tt)
            eps = (xs - a * x0) / s
            return schedule.alpha_deriv(tt) * x0 + schedule.sigma_deriv(tt) * eps

        grid, y0 = times, x
    else:

        def fun(u: float, y: torch.Tensor) -> torch.Tensor:
            tt = t_of(u)
            return x0_fn(y * schedule.sigma(tt), tt)

        grid = [0.0] + [
            math.exp(float(schedule.lambda_(torch.tensor(t, dtype=DTYPE)))) for t in times[1:]
        ]
        y0 = x / schedule.sigma(torch.tensor(times[0], dtype=DTYPE))
    if device is None:
        ys, nfev = _scipy_dop853(fun, y0, grid, tol, how)
    else:
        res = dop853(fun, y0.to(device), grid, rtol=tol, atol=tol)
        if not res.success:
            raise RuntimeError(f"the adaptive reference solve from alpha = 0 (in {how}) failed")
        ys, nfev = list(res.states.to(x.device)), res.nfev
    out = [x]
    for y, t in zip(ys, times[1:], strict=True):
        out.append(y if how == "t" else y * schedule.sigma(torch.tensor(t, dtype=DTYPE)))
    return out, nfev


def _scipy_dop853(fun, y0: torch.Tensor, grid: list[float], tol, how):
    """``fun`` (torch, float64) through scipy's DOP853: the states at grid[1:], nfev."""
    shape = y0.shape

    def tensor(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y.copy()).reshape(shape).to(DTYPE)

    sol = solve_ivp(
        lambda v, y: fun(v, tensor(y)).reshape(-1).numpy(),
        (grid[0], grid[-1]),
        y0.reshape(-1).numpy(),
        method="DOP853",
        t_eval=grid[1:],
        rtol=tol,
        atol=tol,
    )
    if sol.status != 0 or np.asarray(sol.y).shape[-1] != len(grid) - 1:
        raise RuntimeError(f"the adaptive reference solve from alpha = 0 (in {how}) failed")
    return [tensor(sol.y[:, k]) for k in range(len(grid) - 1)], sol.nfev


def _from_pure_noise(problem, schedule, x_T, times, tol, model, device, accuracy) -> Reference:
    x0_fn = _x0_function(problem, model)
    eps = model if model is not None else problem.eps
    tl = [float(t) for t in times]
    if len(tl) == 1:
        return Reference(times, x_T[None].to(DTYPE), torch.zeros(1), "start", "start", 0)
    # the first piece ends at times[1] or, where that is further, at lambda = 0
    t_switch = max(float(schedule.t_from_lambda(torch.tensor(0.0, dtype=DTYPE))), tl[1])
    head = [t for t in tl if t > t_switch] + [t_switch]
    tail = [t for t in tl if t < t_switch]
    solves = _plans(schedule, tl[-1], tol, device, accuracy)  # in t, then (accuracy) in u
    plans = [(how, *plan) for how, plan in zip("tu", solves, strict=False)]
    chains, nfe = [], 0
    for how, method, variable, rtol in plans:
        states, n = _first_piece(x0_fn, schedule, x_T.to(DTYPE), head, rtol, how, device)
        nfe += n
        if tail:
            grid = torch.tensor([t_switch, *tail], dtype=DTYPE)
            traj, n = _adaptive(eps, schedule, states[-1], grid, method, variable, rtol, device)
            nfe += n
            states = states + list(traj[1:])
        keep = [i for i, t in enumerate(head + tail) if t in tl]
        chains.append(torch.stack([states[i] for i in keep]))
    labels = [
        f"DOP853 in {h} from alpha = 0, then {_label(m, v, r, device)}" for h, m, v, r in plans
    ]
    return Reference(times, chains[0], *_accuracy(chains, labels), nfe)
