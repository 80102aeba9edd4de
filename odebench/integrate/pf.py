"""The probability-flow ODE through ``dop853``, in lambda or sigma_tilde, on the state's device.

The same equations as ``odebench.ode.TimeVariable`` (dx/dlambda = (d log alpha / d lambda) x -
sigma eps, d(x/alpha)/dsigma_tilde = eps), with the schedule evaluated on the host in float64
at the integrator's Python-float time (a schedule's tables stay on the CPU): only the state
and the model's output live on the device. The state is integrated in float64, like scipy's
``solve_ivp``; the model sees it in x's dtype, and t as a 0-d host tensor of that dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._tensor import DTYPE
from ..ode import time_variable
from ..schedules import Schedule
from .dopri8 import Integration, dop853

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
VARIABLES = ("lambda", "sigma_tilde")


def _at(f, t: torch.Tensor) -> float:
    """A schedule quantity at a time ``TimeVariable.to_t`` gave: already a validated float64
    0-d tensor in the schedule's range, so the unvalidated ``_`` form (the same number as the
    public one, without its range check per call)."""
    return float(f(t))


def pf_dop853(
    model: EpsModel,
    sched: Schedule,
    x: torch.Tensor,
    ts: torch.Tensor,
    *,
    variable: str,
    rtol: float,
    atol: float,
) -> tuple[torch.Tensor, Integration]:
    """States at every ts (ts[0]: x itself) of the PF-ODE through x, by ``dop853`` in
    ``variable`` on x's device; the trajectory is in x's dtype, NaN from a failure on."""
    if variable not in VARIABLES:
        raise ValueError(f"variable must be one of {', '.join(VARIABLES)}, got {variable!r}")
    var = time_variable(variable)
    ts = ts.to(device="cpu", dtype=DTYPE)
    vs = var.of_t(sched, ts)  # checks that ts lie in the schedule's range
    if not bool(torch.isfinite(vs).all()):
        raise ValueError(f"the grid is not finite in the variable {variable!r}")
    dtype = x.dtype

    def scale(t: torch.Tensor) -> float:  # y = x / scale(t)
        return _at(sched._alpha, t) if variable == "sigma_tilde" else 1.0

    def time(v: float) -> torch.Tensor:  # var.to_t, without its range checks per call: a
        # stage lies between two grid points (DOP853's nodes are in [0, 1]), so t is in range
        v = torch.tensor(v, dtype=DTYPE)
        lam = v if variable == "lambda" else -torch.log(v)
        return sched._t_from_lambda(lam).clamp(sched.t_lo, sched.t_hi)

    def fun(v: float, y: torch.Tensor) -> torch.Tensor:
        t = time(v)
        xs = y * scale(t) if variable == "sigma_tilde" else y
        eps = model(xs.to(dtype), t.to(dtype))
        if eps.shape != y.shape:
            raise ValueError(f"model returned eps of shape {tuple(eps.shape)} for {tuple(y.shape)}")
        if variable == "sigma_tilde":
            return eps.to(DTYPE)
        return _at(sched._dlog_alpha_dlambda, t) * y - _at(sched._sigma, t) * eps.to(DTYPE)

    y0 = x.to(DTYPE) / scale(ts[0])
    res = dop853(fun, y0, vs.tolist(), rtol=rtol, atol=atol)
    states = [x] + [(y * scale(t)).to(dtype) for y, t in zip(res.states, ts[1:], strict=True)]
    return torch.stack(states), res
