"""Transfer parts: how x moves from t to s given the assembled slope g (Liu et al. 2022, Sec. 3).

This module is the one home of every map a solver moves x with:

- ``LinearTransfer``: the classical x + (s - t) g, g built from the ODE's right-hand side;
- ``DDIMTransfer``: the eps form of the exponential map, PNDM's phi (= DDIM = DPM-Solver-1);
- ``DataTransfer``: the x0 form of the same map (DPM-Solver++(1), UniPC's data prediction);
- ``EDMTransfer``: the same map once more as EDM writes it, Euler's step for y = x / alpha in
  sigma_tilde (Karras et al. 2022, Algorithm 1).

The last three are one map, exact for a constant eps (Property 3.1), written in three
variables; they differ in round-off only, and each named method uses the form its paper and
its reference code use, so that odebench reproduces them to the last bit.

A transfer part declares

- ``slope(sched, x, t, eps)``: the quantity the gradient part combines. For the pseudo methods
  it is eps itself; for classical methods it is the ODE's right-hand side f(x, t).
- ``step(sched, x, g, t, s)``: the move from t to s with the assembled g.
- ``variable``: the time variable in which ``step`` is an Euler step. Variable-step
  multistep weights are computed in it. (Runge-Kutta stage times are placed in t,
  DPM-Solver's in lambda: that is the gradient part's choice, not the transfer's.)
- ``affine(sched, t, s)`` (optional): the (a, b) of a map x_s = a x + b g. With it,
  ``step_sum(sched, x, weights, values, t, s)``, the step of g = sum_j w_j values[j], adds the
  terms straight into a x (one pass over the state per term, g never stored): how the
  Runge-Kutta and multistep engines call the transfer.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from .._tensor import scaled_sum, weighted_sum
from ..ode import rhs_from_eps
from ..schedules import Schedule

NOISE_END = (
    "at alpha = 0 (flow matching's t = 1) eps = x says nothing about x0: the model must give "
    "x0 itself (model.x0, as odebench.models.from_prediction does)"
)


def _data_prediction(model, x: torch.Tensor, t) -> torch.Tensor:
    x0 = getattr(model, "x0", None)
    if x0 is None:
        raise ValueError(NOISE_END)
    return x0(x, t)


class Transfer(ABC):
    name: str
    variable: str
    description: str
    #: Whether ``evaluate`` is exact where alpha = 0, given a model that predicts x0 itself.
    noise_end: bool = False

    @abstractmethod
    def slope(
        self, sched: Schedule, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor: ...

    @abstractmethod
    def step(
        self, sched: Schedule, x: torch.Tensor, g: torch.Tensor, t: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor: ...

    def evaluate(self, sched: Schedule, model, x: torch.Tensor, t) -> torch.Tensor:
        """The slope at (x, t) from one model evaluation."""
        return self.slope(sched, x, t, model(x, t))

    def affine(self, sched: Schedule, t, s) -> tuple[float, float] | None:
        """(a, b) where ``step`` is the affine map x_s = a x + b g (None: not declared). A
        subclass that changes ``step`` changes this too (``step_sum`` reads it, not ``step``)."""
        return None

    def step_sum(self, sched: Schedule, x: torch.Tensor, weights, values, t, s) -> torch.Tensor:
        """``step`` with the slope g = sum_j weights[j] values[j] (a gradient part's combination).
        Where the map is affine (``affine``) the terms go straight into a x + sum_j (b w_j)
        values[j]: one pass per term, and g is never stored."""
        ab = self.affine(sched, t, s)
        if ab is None:
            return self.step(sched, x, weighted_sum(weights, values), t, s)
        a, b = ab
        return weighted_sum((a, *(b * w for w in weights)), (x, *values))

    def __repr__(self) -> str:
        return f"<Transfer {self.name}>"


class LinearTransfer(Transfer):
    """The classical transfer x_s = x + (s - t) g with g assembled from f(x, t) = dx/dt."""

    name, variable = "linear", "t"
    description = "x + (s - t) g, g built from the ODE right-hand side (classical methods)"

    noise_end = True

    def slope(self, sched, x, t, eps):
        if torch.as_tensor(t).ndim:  # per-sample times: the general path
            return rhs_from_eps(sched, x, t, eps)
        here = sched.scalars(float(t))
        return scaled_sum(-0.5 * here.beta, x, here.c_eps, eps)  # c_eps = inf at 0 if beta > 0

    def evaluate(self, sched, model, x, t):
        """At alpha = 0 both coefficients of the eps form are infinite; the interpolant's
        velocity alpha' x0 + sigma' eps is not, and there eps = x / sigma exactly, so one x0
        evaluation (``model.x0``) gives dx/dt."""
        if sched.scalars(float(t)).alpha == 0.0:
            x0 = _data_prediction(model, x, t)
            da, ds, sigma = (
                float(f(t)) for f in (sched.alpha_deriv, sched.sigma_deriv, sched.sigma)
            )
            return da * x0 + (ds / sigma) * x
        return self.slope(sched, x, t, model(x, t))

    def affine(self, sched, t, s):
        return 1.0, float(s) - float(t)

    def step(self, sched, x, g, t, s):
        return torch.add(x, g, alpha=float(s) - float(t))  # x + (s - t) g, one pass


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

    def affine(self, sched, t, s):
        """(alpha_s / alpha_t, -sigma_s expm1(lambda_s - lambda_t))."""
        at, as_ = sched.scalars(float(t)), sched.scalars(float(s))
        ratio = math.exp(0.5 * (as_.log_alpha_bar - at.log_alpha_bar))
        if as_.sigma == 0.0:  # clean data: lambda_s = inf, sigma_s = 0, coef -> -sigma_t/alpha_t
            return ratio, -at.sigma / at.alpha
        return ratio, -as_.sigma * math.expm1(as_.lam - at.lam)

    def step(self, sched, x, g, t, s):
        ratio, coef = self.affine(sched, t, s)
        return scaled_sum(ratio, x, coef, g)  # ratio x + coef g


class DataTransfer(Transfer):
    """The DDIM map with the data prediction as slope (DPM-Solver++(1), Lu et al. 2022b):

    g = x0 = (x - sigma eps) / alpha,   x_s = (sigma_s / sigma_t) x - alpha_s (e^{-h} - 1) g,

    h = lambda_s - lambda_t. It is Euler's step for x / sigma in e^lambda = alpha / sigma:
    x_s / sigma_s = x / sigma_t + (e^lambda_s - e^lambda_t) g. At sigma_s = 0 (lambda_s = inf)
    it returns alpha_s g, the clean-data estimate. Scalar times only (as solvers call it).
    """

    name, variable = "data", "exp_lambda"
    description = "DDIM map on the x0-prediction (DPM-Solver++ / UniPC data prediction)"

    def slope(self, sched, x, t, eps):
        here = sched.scalars(float(t))
        return torch.sub(x, eps, alpha=here.sigma).div_(here.alpha)  # (x - sigma eps) / alpha

    noise_end = True

    def evaluate(self, sched, model, x, t):
        """At alpha = 0 (flow matching's t = 1) the x0 of eps is 0 / 0: a model that predicts
        x0 by itself (``model.x0``, e.g. ``odebench.models.from_prediction``) gives it exactly."""
        if sched.scalars(float(t)).alpha == 0.0:
            return _data_prediction(model, x, t)
        return self.slope(sched, x, t, model(x, t))

    def affine(self, sched, t, s):
        """(sigma_s / sigma_t, -alpha_s expm1(-h)); (0, alpha_s) into sigma_s = 0."""
        at, as_ = sched.scalars(float(t)), sched.scalars(float(s))
        if as_.sigma == 0.0:
            return 0.0, as_.alpha
        return as_.sigma / at.sigma, -(as_.alpha * math.expm1(at.lam - as_.lam))

    def step(self, sched, x, g, t, s):
        a, b = self.affine(sched, t, s)
        return b * g if a == 0.0 else scaled_sum(a, x, b, g)


class EDMTransfer(Transfer):
    """The DDIM map as EDM evaluates it (Karras et al. 2022, Algorithm 1): with y = x / alpha_t
    and sigma_tilde = sigma / alpha, Euler's step y_s = y + (sigma_tilde_s - sigma_tilde_t) g,
    then x_s = alpha_s y_s; g is eps (dy / dsigma_tilde = eps). At sigma_s = 0 it is the
    x0-prediction alpha_s (x - sigma_t g) / alpha_t up to round-off."""

    name, variable = "edm", "sigma_tilde"
    description = "Euler in sigma_tilde for x / alpha (EDM's form of the DDIM map)"

    def slope(self, sched, x, t, eps):
        return eps

    def step(self, sched, x, g, t, s):
        at, as_ = sched.scalars(float(t)), sched.scalars(float(s))
        y = x / at.alpha
        return as_.alpha * (y + (as_.sigma / as_.alpha - at.sigma / at.alpha) * g)
