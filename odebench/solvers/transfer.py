"""Transfer parts: how x moves from t to s given the assembled slope g (Liu et al. 2022, Sec. 3).

A transfer part declares

- ``slope(sched, x, t, eps)``: the quantity the gradient part combines. For the pseudo methods
  it is eps itself; for classical methods it is the ODE's right-hand side f(x, t).
- ``step(sched, x, g, t, s)``: the move from t to s with the assembled g.
- ``variable``: the time variable in which ``step`` is an Euler step. Variable-step
  multistep weights are computed in it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from ..ode import rhs_from_eps
from ..schedules import Schedule


class Transfer(ABC):
    name: str
    variable: str
    description: str

    @abstractmethod
    def slope(
        self, sched: Schedule, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor: ...

    @abstractmethod
    def step(
        self, sched: Schedule, x: torch.Tensor, g: torch.Tensor, t: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor: ...

    def __repr__(self) -> str:
        return f"<Transfer {self.name}>"


class LinearTransfer(Transfer):
    """The classical transfer x_s = x + (s - t) g with g assembled from f(x, t) = dx/dt."""

    name, variable = "linear", "t"
    description = "x + (s - t) g, g built from the ODE right-hand side (classical methods)"

    def slope(self, sched, x, t, eps):
        if torch.as_tensor(t).ndim:  # per-sample times: the general path
            return rhs_from_eps(sched, x, t, eps)
        here = sched.scalars(float(t))
        return (-0.5 * here.beta) * x + here.c_eps * eps  # c_eps = inf at 0 if beta(0) > 0

    def step(self, sched, x, g, t, s):
        return x + (float(s) - float(t)) * g


class DDIMTransfer(Transfer):
    """The DDIM map phi(x, e, t, s) of Liu et al. (2022, Eq. 9), exact for constant eps.

    In the VE variable it is Euler's step x_s/alpha_s = x/alpha_t + (sigma_tilde_s -
    sigma_tilde_t) e. It is evaluated here as x_s = (alpha_s / alpha_t) x - sigma_s expm1(
    lambda_s - lambda_t) e, which is algebraically the paper's formula and stays accurate for
    tiny steps (no difference of nearly equal square roots).
    """

    name, variable = "ddim", "sigma_tilde"
    description = "DDIM map phi (Liu et al. 2022, Eq. 9): exact when eps is constant"

    def slope(self, sched, x, t, eps):
        return eps

    def step(self, sched, x, g, t, s):
        at, as_ = sched.scalars(float(t)), sched.scalars(float(s))
        ratio = math.exp(0.5 * (as_.log_alpha_bar - at.log_alpha_bar))
        if as_.sigma == 0.0:  # clean data: lambda_s = inf, sigma_s = 0, coef -> -sigma_t/alpha_t
            coef = -at.sigma / at.alpha
        else:
            coef = -as_.sigma * math.expm1(as_.lam - at.lam)
        return ratio * x + coef * g


TRANSFERS = {"linear": LinearTransfer(), "ddim": DDIMTransfer()}
