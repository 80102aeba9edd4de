"""Global and local errors of a solver against a reference, ready for an order fit.

Global error: solve from t_max to t_min with N steps for each N of a ladder and compare with
the reference (RMS over samples of the end-point error by default; also the worst sample and
the worst time along the path). Local error: one step of size h from a point on the exact
trajectory (multistep methods get a history of exact evaluations), at several times t0, so a
loss of order near t = 0 shows as a region, not an average. Every row says whether the
reference was accurate enough to judge it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._tensor import DTYPE
from .grids import shifted, timesteps
from .metrics import max_error, path_error, rms_error
from .models import from_prediction
from .reference import Reference, reference, union_times
from .schedules import Schedule
from .solvers import Solver, solve

#: Times at which local errors are measured (those inside (t_min, t_max) are used).
LOCAL_T0 = (0.8, 0.4, 0.1, 0.01, 0.001)


def exact_model(problem, kind: str):
    """The eps model a solver sees when the analytic problem's exact ``kind`` prediction
    ("eps", "x0", "v", "velocity", "denoiser") is the model: converted by
    ``models.from_prediction``, exact to round-off. "eps" is ``problem.eps`` itself."""
    if kind == "eps":
        return problem.eps
    return from_prediction(problem.prediction(kind), kind, problem.schedule)


def unshifted(t: float, shift: float) -> float:
    """Inverse of the flow-matching time shift t -> s t / (1 + (s - 1) t)."""
    return t / (shift - (shift - 1.0) * t)


def ladder_grids(
    steps: Sequence[int],
    spacing: str,
    t_max: float,
    t_min: float,
    schedule: Schedule,
    shift: float = 1.0,
) -> dict[int, torch.Tensor]:
    """One grid per step count from t_max to t_min.

    ``shift`` != 1 moves the nodes by SD3's time shift (Esser et al. 2024) and keeps the ends:
    the spacing is laid between the unshifted ends, then shifted, so every shift solves the
    same problem (same x_T, same end time) and only the nodes differ."""
    if shift == 1.0:
        return {int(n): timesteps(int(n), spacing, t_max, t_min, schedule=schedule) for n in steps}
    if not (math.isfinite(shift) and shift > 0):
        raise ValueError(f"shift must be a positive number, got {shift!r}")
    top, low = unshifted(t_max, shift), unshifted(t_min, shift)
    grids = {}
    for n in steps:
        ts = shifted(timesteps(int(n), spacing, top, low, schedule=schedule), shift)
        ts[0], ts[-1] = t_max, t_min
        grids[int(n)] = ts
    return grids


def global_errors(
    solver: Solver,
    eps,
    schedule: Schedule,
    x_T: torch.Tensor,
    grids: dict[int, torch.Tensor],
    ref: Reference,
) -> list[dict]:
    """One row per step count: errors of ``solver`` on each grid against ``ref``.

    A run where some samples diverged measures as inf (``metrics.errors``: a diverged sample
    is an unstable solver, not one to leave out of an order fit); its row says when the first
    diverged (``diverged_step``, ``diverged_t``) and how many did (``diverged_samples``, a
    column only where some run diverged, so tables of finite runs keep their columns)."""
    rows = []
    for n, ts in grids.items():
        sol = solve(solver, eps, schedule, x_T, ts, trajectory=True)
        ref_path = torch.stack([ref.at(t) for t in ts])
        err = rms_error(sol.x, ref.at(ts[-1]))
        count = {"diverged_samples": sol.diverged.count} if sol.diverged else {}
        rows.append(
            {
                "steps": n,
                "nfe": sol.nfe,
                "h": float(ts[0] - ts[-1]) / n,
                "error_rms": err,
                "error_max": max_error(sol.x, ref.at(ts[-1])),
                "error_path": path_error(sol.trajectory, ref_path),
                "ref_accuracy": ref.accuracy_at(ts[-1]),
                "reliable": bool(ref.reliable(err, ts[-1])) if err == err else False,
                "diverged_step": sol.diverged.step if sol.diverged else None,
                "diverged_t": sol.diverged.t_to if sol.diverged else None,
                **count,
            }
        )
    return rows


def local_plan(
    t_max: float,
    t_min: float,
    n_h: int = 6,
    t0s: Sequence[float] = LOCAL_T0,
    T: int | None = None,
) -> dict[float, list[float]]:
    """For each t0 in (t_min, t_max): step sizes H, H/2, ... with room for a 3-step history
    above t0 (t0 + 3H <= t_max) and the step below it (t0 - H >= t_min). (No solver here
    keeps more than 3 earlier evaluations.)

    ``T``: the size of a discrete table; t0 and every h are then whole table steps (t0 on
    (i + 1) / T, h a multiple of 1 / T, halving in whole steps while they stay distinct), so
    that solvers defined only on a table's integer grid (the faithful PNDM variants) can take
    them."""
    plan = {}
    for t0 in t0s:
        if T is not None:
            t0 = round(t0 * T) / T
        if not t_min < t0 < t_max:
            continue
        big = min(0.5 * t0, (t_max - t0) / 3.0, t0 - t_min, 0.1)
        if T is None:
            plan[t0] = [big / 2**j for j in range(n_h)]
            continue
        steps = list(dict.fromkeys(max(1, math.floor(big * T) >> j) for j in range(n_h)))
        plan[t0] = [k / T for k in steps]
    return plan


def local_times(plan: dict[float, list[float]], t_max: float) -> torch.Tensor:
    """Every time the local measurements need the exact state at, with t_max first."""
    pts = [t_max]
    for t0, hs in plan.items():
        for h in hs:
            pts += [t0 + j * h for j in range(4)] + [t0 - h]
    return union_times(torch.tensor(pts, dtype=DTYPE))


#: Grid nodes below the step measured: the local step is an interior one, not the run's last
#: (whose order lower-order-final rules and UniPC's missing last corrector would lower).
LADDER_TAIL = 16


def ladder(solver: Solver, t0: float, h: float, T: int | None = None) -> tuple[torch.Tensor, int]:
    """The grid for one step of size h from t0: the solver's history nodes above t0 at
    spacing h, t0, t0 - h, then up to ``LADDER_TAIL`` nodes spread evenly over (0, t0 - h)
    (on a T-step table: its distinct integer steps there); and the index of t0 in it."""
    above = solver.history_depth
    top = [t0 + j * h for j in range(above, 0, -1)]
    low = t0 - h
    tail = [low * (1.0 - j / (LADDER_TAIL + 1)) for j in range(1, LADDER_TAIL + 1)]
    if T is not None:
        tail = [v for v in dict.fromkeys(round(v * T) / T for v in tail) if 0 < v < low]
    return torch.tensor([*top, t0, low, *tail], dtype=DTYPE), above


def one_step_from_exact(
    solver: Solver, eps, schedule: Schedule, ref: Reference, t0: float, h: float
) -> torch.Tensor:
    """The state one step of size h below t0, started on the exact trajectory with the
    solver's history (if any) made of exact evaluations at t0 + h, t0 + 2h, ...
    (``Solver.exact_state``). ``ref`` must hold the exact states at those times, t0 and t0 - h
    (``local_times``)."""
    if solver.adaptive:
        raise ValueError(f"local errors are not defined for the adaptive solver {solver.name!r}")
    ts, n = ladder(solver, t0, h, getattr(schedule, "T", None))
    states = {j: ref.at(ts[j]) for j in range(n + 1)}
    return solver.step(solver.exact_state(eps, schedule, ts, n, states)).x


def local_errors(
    solver: Solver, eps, schedule: Schedule, ref: Reference, plan: dict[float, list[float]]
) -> list[dict]:
    rows = []
    for t0, hs in plan.items():
        for h in hs:
            x = one_step_from_exact(solver, eps, schedule, ref, t0, h)
            err = rms_error(x, ref.at(t0 - h))
            rows.append(
                {
                    "t0": t0,
                    "h": h,
                    "error_rms": err,
                    "ref_accuracy": ref.accuracy_at(t0 - h),
                    "reliable": bool(ref.reliable(err, t0 - h)) if err == err else False,
                }
            )
    return rows


def global_reference(problem, schedule: Schedule, x_T, grids, tol: float, model=None):
    return reference(problem, schedule, x_T, union_times(*grids.values()), tol=tol, model=model)


def local_reference(problem, schedule: Schedule, x_T, plan, t_max: float, tol: float, model=None):
    return reference(problem, schedule, x_T, local_times(plan, t_max), tol=tol, model=model)
