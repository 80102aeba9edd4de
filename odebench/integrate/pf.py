"""The probability-flow ODE through ``dop853``, in lambda or sigma_tilde, on the state's device.

The same equations as ``odebench.ode.TimeVariable`` (dx/dlambda = (d log alpha / d lambda) x -
sigma eps, d(x/alpha)/dsigma_tilde = eps), with the schedule evaluated on the host in float64
at the integrator's Python-float time (a schedule's tables stay on the CPU): only the state
and the model's output live on the device. For a VP schedule the terms are evaluated in Python
floats (``_vp_terms``: closed forms in lambda, the schedule's float inverse for t), the same
numbers to round-off as the tensor forms other schedules use, at a few microseconds per
evaluation instead of about 60: on a GPU this host work is what the network waits for. The
state is integrated in float64, like scipy's ``solve_ivp``; the model sees it in x's dtype,
and t as a 0-d host tensor of that dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._tensor import DTYPE
from ..ode import time_variable
from ..schedules import Schedule
from ..schedules.vp import VPSchedule
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

    if isinstance(sched, VPSchedule):
        terms = _vp_terms(sched, variable)
    else:
        terms = _generic_terms(sched, variable, scale)

    def fun(v: float, y: torch.Tensor) -> torch.Tensor:
        t, x_scale, drift, noise = terms(v)
        xs = y * x_scale if variable == "sigma_tilde" else y
        eps = model(xs if xs.dtype == dtype else xs.to(dtype), torch.tensor(t, dtype=dtype))
        if eps.shape != y.shape:
            raise ValueError(f"model returned eps of shape {tuple(eps.shape)} for {tuple(y.shape)}")
        if eps.dtype != DTYPE:  # (each call skipped is a few microseconds per evaluation)
            eps = eps.to(DTYPE)
        if variable == "sigma_tilde":
            return eps
        return eps.mul(-noise).add_(y, alpha=drift)  # drift y - noise eps

    y0 = x.to(DTYPE) / scale(ts[0])
    res = dop853(fun, y0, vs.tolist(), rtol=rtol, atol=atol)
    states = [x] + [(y * scale(t)).to(dtype) for y, t in zip(res.states, ts[1:], strict=True)]
    return torch.stack(states), res


Terms = Callable[[float], tuple[float, float, float, float]]


def _generic_terms(sched: Schedule, variable: str, scale) -> Terms:
    """(t, alpha(t) or 1, d log alpha / d lambda, sigma) at v, from the schedule's tensor forms:
    ``TimeVariable.to_t`` without its range checks per call (a stage lies between two grid
    points, as DOP853's nodes are in [0, 1], so t is in range)."""

    def terms(v: float) -> tuple[float, float, float, float]:
        v = torch.tensor(v, dtype=DTYPE)
        lam = v if variable == "lambda" else -torch.log(v)
        t = sched._t_from_lambda(lam).clamp(sched.t_lo, sched.t_hi)
        if variable == "sigma_tilde":
            return float(t), scale(t), 0.0, 0.0
        return float(t), 1.0, _at(sched._dlog_alpha_dlambda, t), _at(sched._sigma, t)

    return terms


def _vp_terms(sched: VPSchedule, variable: str) -> Terms:
    """The same terms for a VP schedule in floats: alpha^2 = sigmoid(2 lambda) and sigma^2 =
    sigmoid(-2 lambda) = d log alpha / d lambda are functions of lambda alone, and t comes from
    the schedule's float inverse (``t_from_lambda_float``). Each agrees with the tensor forms
    to round-off; per evaluation it costs microseconds where those cost about 60 (the
    bisection of a table's inverse most of it)."""

    def terms(v: float) -> tuple[float, float, float, float]:
        lam = v if variable == "lambda" else (-math.log(v) if v > 0 else math.inf)
        t = sched.t_from_lambda_float(lam)
        if variable == "sigma_tilde":
            return t, math.sqrt(_sigmoid(2.0 * lam)), 0.0, 0.0
        sigma2 = _sigmoid(-2.0 * lam)
        return t, 1.0, sigma2, math.sqrt(sigma2)

    return terms


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
