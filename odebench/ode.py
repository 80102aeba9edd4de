"""The probability-flow ODE and its three time variables.

In forward time t (t = 0 data), for any interpolant x_t = alpha x0 + sigma z
(docs/design/conventions.md):

    dx/dt = (alpha'/alpha) x + c_eps eps(x, t),    c_eps = -sigma lambda',

which for a VP schedule is

    dx/dt = abar'(t) ( x / (2 abar) - eps(x, t) / (2 abar sqrt(1 - abar)) )
          = -beta(t)/2 * x + beta(t) / (2 sigma(t)) * eps(x, t).

The eps coefficient beta / (2 sigma) is unbounded as t -> 0 whenever beta(0) > 0 (sigma ~ t^1/2);
under flow matching both coefficients are unbounded as t -> 1 (alpha -> 0).
The same flow written in other variables removes that singularity:

- lambda (log-SNR):   dx/dlambda = (d log alpha / d lambda) x - sigma eps      (state x;
                      the x coefficient is sigma^2 for VP, sigma for flow, 0 for VE)
- sigma_tilde (VE):   d(x/alpha)/dsigma_tilde = eps                    (state x / alpha)

``TimeVariable`` bundles, for each variable, the change of variable, the state and the
right-hand side, so references and solvers can integrate wherever the ODE is smoothest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._tensor import as_time, per_sample
from .schedules import Schedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def drift_coefficients(sched: Schedule, t) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_x, c_eps) with dx/dt = c_x x + c_eps eps: (alpha'/alpha, -sigma lambda'), i.e.
    (-beta/2, beta / (2 sigma)) for VP, with the exact limit where sigma = 0."""
    t = as_time(t)
    return -0.5 * sched.beta(t), sched.eps_coefficient(t)


def rhs_from_eps(sched: Schedule, x: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    """dx/dt given the noise prediction eps at (x, t)."""
    c_x, c_eps = drift_coefficients(sched, as_time(t, like=x))
    return per_sample(c_x, x) * x + per_sample(c_eps, x) * eps


def rhs(model: EpsModel, sched: Schedule, x: torch.Tensor, t) -> torch.Tensor:
    """dx/dt = f(x, t) for the noise model ``model(x, t) -> eps``."""
    t = as_time(t, like=x)
    return rhs_from_eps(sched, x, t, model(x, t))


@dataclass(frozen=True)
class TimeVariable:
    """A time variable v(t) of the PF-ODE, its state y(x, t) and dy/dv."""

    name: str
    description: str

    def of_t(self, sched: Schedule, t) -> torch.Tensor:
        t = as_time(t)
        if self.name == "t":
            return t
        if self.name == "lambda":
            return sched.lambda_(t)
        return sched.sigma_tilde(t)

    def to_t(self, sched: Schedule, v) -> torch.Tensor:
        v = as_time(v)
        if self.name == "t":
            return v
        if self.name == "lambda":
            return sched.t_from_lambda(v)
        return sched.t_from_sigma_tilde(v)

    def state(self, sched: Schedule, x: torch.Tensor, t) -> torch.Tensor:
        if self.name != "sigma_tilde":
            return x
        return x / per_sample(sched.alpha(as_time(t, like=x)), x)

    def unstate(self, sched: Schedule, y: torch.Tensor, t) -> torch.Tensor:
        if self.name != "sigma_tilde":
            return y
        return y * per_sample(sched.alpha(as_time(t, like=y)), y)

    def rhs(self, model: EpsModel, sched: Schedule, y: torch.Tensor, v) -> torch.Tensor:
        """dy/dv at the state y and variable value v."""
        t = self.to_t(sched, as_time(v, like=y)).to(y.dtype)
        x = self.unstate(sched, y, t)
        eps = model(x, t)
        if self.name == "t":
            return rhs_from_eps(sched, x, t, eps)
        if self.name == "lambda":
            s = per_sample(sched.sigma(t), x)
            return per_sample(sched.dlog_alpha_dlambda(t), x) * x - s * eps
        return eps


TIME_VARIABLES = {
    "t": TimeVariable("t", "forward time; singular as t -> 0 when beta(0) > 0"),
    "lambda": TimeVariable(
        "lambda", "log-SNR; dx/dlambda = (d log alpha / d lambda) x - sigma eps"
    ),
    "sigma_tilde": TimeVariable("sigma_tilde", "VE noise level; d(x/alpha)/dsigma_tilde = eps"),
}


def time_variable(name: str) -> TimeVariable:
    try:
        return TIME_VARIABLES[name]
    except KeyError:
        raise ValueError(
            f"unknown time variable {name!r} (choose from {', '.join(TIME_VARIABLES)})"
        ) from None
