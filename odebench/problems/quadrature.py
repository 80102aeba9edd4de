"""A pure-quadrature test field: eps depends on t only.

eps(x, t) = v sin(lambda(t)). In the VE variable the PF-ODE becomes d(x/alpha)/dsigma_tilde =
v sin(lambda), so the exact solution is a closed-form integral,

    x_t / alpha_t = x_s / alpha_s + v (H(lambda_t) - H(lambda_s)),
    H(lambda) = exp(-lambda) (sin lambda + cos lambda) / 2,   H' = -exp(-lambda) sin lambda,

and a sampler's error on it comes only from where it evaluates eps and how it weights the
evaluations: a wrong stage time or weight changes the measured order. It is a vector field,
not a data distribution (no density, no samples).
"""

from __future__ import annotations

import torch

from .._tensor import DTYPE, as_time, per_sample
from ..schedules import Schedule
from ..schedules import get as get_schedule
from .base import real_tensor


class QuadratureField:
    """eps(x, t) = v sin(lambda(t)), independent of x, with its exact flow."""

    name = "quadrature"

    def __init__(self, direction, schedule: Schedule | str = "linear"):
        self.direction = real_tensor(direction, "direction")
        if self.direction.ndim != 1 or self.direction.shape[0] < 1:
            raise ValueError("direction must be a vector (d,)")
        self.dim = self.direction.shape[0]
        self.schedule = get_schedule(schedule)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}), got {tuple(x.shape)}")

    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        self._check(x)
        lam = self.schedule.lambda_(as_time(t))
        return (per_sample(torch.sin(lam), x) * self.direction).expand_as(x).to(x.dtype)

    @staticmethod
    def _antiderivative(lam: torch.Tensor) -> torch.Tensor:
        return torch.exp(-lam) * (torch.sin(lam) + torch.cos(lam)) / 2.0

    def flow(self, x_s: torch.Tensor, s, t) -> torch.Tensor:
        self._check(x_s)
        sched = self.schedule
        s, t = as_time(s), as_time(t)
        shift = self._antiderivative(sched.lambda_(t)) - self._antiderivative(sched.lambda_(s))
        x_ve = x_s.to(DTYPE) / sched.alpha(s) + shift * self.direction
        return (sched.alpha(t) * x_ve).to(x_s.dtype)

    def __repr__(self) -> str:
        return f"<QuadratureField dim={self.dim} schedule={self.schedule.name!r}>"
