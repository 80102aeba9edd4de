"""A schedule is an interpolant x_t = alpha(t) x0 + sigma(t) z on forward time t in [t_lo, t_hi].

Every family is one: variance preserving (alpha^2 + sigma^2 = 1, :mod:`.vp`), variance
exploding / EDM (alpha = 1, :mod:`.ve`) and flow matching (alpha = 1 - t, sigma = t,
:mod:`.flow`). What solvers and problems read is the same for all of them:

- alpha, sigma, the log-SNR lambda = log(alpha / sigma) and its inverse t(lambda);
- the probability-flow ODE dx/dt = (alpha'/alpha) x + c_eps eps with
  c_eps = sigma' - sigma alpha'/alpha = -sigma lambda' (the "eps coefficient");
- beta = -2 alpha'/alpha (the VP noise rate; 0 for VE) and log alpha_bar = 2 log alpha, the
  names the VP code has always used, defined for every interpolant.

The DDIM map x_s = (alpha_s/alpha_t) x - sigma_s expm1(lambda_s - lambda_t) eps is exact for
constant eps under every one of them (Liu et al. 2022, Property 3.1).

Subclasses give six tensor primitives on already-checked times: ``_alpha``, ``_sigma``,
``_lambda``, ``_dlog_alpha`` (alpha'/alpha), ``_c_eps`` and ``_t_from_lambda``; each handles
its own singular ends (sigma = 0 at the data end, alpha = 0 at flow matching's noise end)
with the exact limit, never a division that makes nan.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import torch

from .._tensor import as_time, check_times_in


class ScheduleScalars(NamedTuple):
    """The schedule at one time, as floats: log abar (= 2 log alpha), alpha, sigma, lambda,
    beta (= -2 alpha'/alpha) and the ODE's eps coefficient c_eps = -sigma lambda' (its limit
    where sigma or alpha vanishes)."""

    log_alpha_bar: float
    alpha: float
    sigma: float
    lam: float
    beta: float
    c_eps: float


class Schedule(ABC):
    """x_t = alpha(t) x0 + sigma(t) z on forward time t in [t_lo, t_hi] (t = 0 is data).

    Notation (docs/design/conventions.md): lambda = log(alpha / sigma), sigma_tilde =
    sigma / alpha = exp(-lambda) (the VE noise level, EDM's sigma).
    """

    name: str = "schedule"
    description: str = ""
    #: The family: "vp", "ve" or "flow".
    interpolant: str = "schedule"
    #: Domain of t. ``t_hi`` < 1 marks an explicit clipping (e.g. the cosine schedule).
    t_lo: float = 0.0
    t_hi: float = 1.0
    #: Number of training steps of a discrete table, None for continuous schedules.
    T: int | None = None

    # -- primitives (times already checked) -----------------------------------------------------
    @abstractmethod
    def _alpha(self, t: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _sigma(self, t: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _lambda(self, t: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _dlog_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """alpha'(t) / alpha(t), exact."""

    @abstractmethod
    def _c_eps(self, t: torch.Tensor) -> torch.Tensor:
        """-sigma lambda' = sigma' - sigma alpha'/alpha, exact, with its limits at the ends."""

    def _t_from_lambda(self, lam: torch.Tensor) -> torch.Tensor:
        """Inverse of lambda; closed forms override this generic bisection."""
        return bisect_decreasing(self._lambda, lam, self.t_lo, self.t_hi)

    def _alpha_deriv(self, t: torch.Tensor) -> torch.Tensor:
        return self._alpha(t) * self._dlog_alpha(t)

    def _sigma_deriv(self, t: torch.Tensor) -> torch.Tensor:
        return self._c_eps(t) + self._sigma(t) * self._dlog_alpha(t)

    def _dlog_alpha_dlambda(self, t: torch.Tensor) -> torch.Tensor:
        return -self._sigma(t) * self._dlog_alpha(t) / self._c_eps(t)

    # -- public API ---------------------------------------------------------------------------
    def _t(self, t: torch.Tensor | float) -> torch.Tensor:
        t = as_time(t)
        check_times_in(t, self.t_lo, self.t_hi, f"schedule {self.name!r}")
        return t

    def alpha(self, t: torch.Tensor | float) -> torch.Tensor:
        return self._alpha(self._t(t))

    def sigma(self, t: torch.Tensor | float) -> torch.Tensor:
        return self._sigma(self._t(t))

    def lambda_(self, t: torch.Tensor | float) -> torch.Tensor:
        """log-SNR lambda = log(alpha / sigma) (half the log signal-to-noise ratio)."""
        return self._lambda(self._t(t))

    def signal_and_noise(self, t: torch.Tensor | float) -> tuple[torch.Tensor, ...]:
        """(alpha, alpha^2, sigma^2) at t: what a Gaussian's marginal needs, each to full
        accuracy (VP forms 1 - abar without cancellation)."""
        t = self._t(t)
        alpha, sigma = self._alpha(t), self._sigma(t)
        return alpha, alpha * alpha, sigma * sigma

    def log_alpha_bar(self, t: torch.Tensor | float) -> torch.Tensor:
        """2 log alpha (log alpha_bar in VP notation)."""
        return 2.0 * torch.log(self.alpha(t))

    def alpha_bar(self, t: torch.Tensor | float) -> torch.Tensor:
        """alpha^2 (alpha_bar in VP notation)."""
        return self.alpha(t) ** 2

    def beta(self, t: torch.Tensor | float) -> torch.Tensor:
        """-2 alpha'/alpha: the VP noise rate, 0 for VE, 2 / (1 - t) for flow matching."""
        return -2.0 * self._dlog_alpha(self._t(t))

    def alpha_bar_deriv(self, t: torch.Tensor | float) -> torch.Tensor:
        """d alpha^2 / dt, exact."""
        t = self._t(t)
        return 2.0 * self._alpha(t) * self._alpha_deriv(t)

    def alpha_deriv(self, t: torch.Tensor | float) -> torch.Tensor:
        """d alpha / dt, exact."""
        return self._alpha_deriv(self._t(t))

    def sigma_deriv(self, t: torch.Tensor | float) -> torch.Tensor:
        """d sigma / dt, exact."""
        return self._sigma_deriv(self._t(t))

    def eps_coefficient(self, t: torch.Tensor | float) -> torch.Tensor:
        """c_eps = -sigma lambda': dx/dt = (alpha'/alpha) x + c_eps eps."""
        return self._c_eps(self._t(t))

    def dlog_alpha_dlambda(self, t: torch.Tensor | float) -> torch.Tensor:
        """d log alpha / d lambda: the x coefficient of dx/dlambda = (this) x - sigma eps
        (sigma^2 for VP, sigma for flow matching, 0 for VE)."""
        return self._dlog_alpha_dlambda(self._t(t))

    def sigma_tilde(self, t: torch.Tensor | float) -> torch.Tensor:
        """sigma / alpha = exp(-lambda), the noise level of the VE (x / alpha) variable."""
        return torch.exp(-self.lambda_(t))

    def t_from_lambda(self, lam: torch.Tensor | float) -> torch.Tensor:
        """Inverse of lambda(t); +inf and -inf map to the ends where sigma or alpha vanish."""
        lam = as_time(lam)
        if bool(torch.isnan(lam).any()):
            raise ValueError(f"schedule {self.name!r}: lambda must not be nan")
        lo, hi = self.lambda_range
        if float(lam.min()) < lo - 1e-9 * max(1.0, abs(lo)) or float(lam.max()) > hi + 1e-9 * max(
            1.0, abs(hi)
        ):
            raise ValueError(
                f"schedule {self.name!r}: lambda must lie in [{lo:g}, {hi:g}], "
                f"got [{float(lam.min()):g}, {float(lam.max()):g}]"
            )
        return self._t_from_lambda(lam).clamp(self.t_lo, self.t_hi)

    def t_from_sigma_tilde(self, sigma_tilde: torch.Tensor | float) -> torch.Tensor:
        """Inverse of sigma_tilde(t)."""
        return self.t_from_lambda(-torch.log(as_time(sigma_tilde)))

    def scalars(self, t: float) -> ScheduleScalars:
        """Every quantity at one time t as Python floats, memoised: solvers ask for the same
        grid and stage times at every step, and this keeps their per-step cost to dictionary
        look-ups (the tensor methods validate and allocate on every call)."""
        cache = self.__dict__.setdefault("_scalar_cache", {})
        hit = cache.get(t)
        if hit is None:
            hit = self._compute_scalars(t)
            if len(cache) > 100_000:
                cache.clear()
            cache[t] = hit
        return hit

    def _compute_scalars(self, t: float) -> ScheduleScalars:
        tt = self._t(t)
        alpha = float(self._alpha(tt))
        log_abar = 2.0 * math.log(alpha) if alpha > 0 else -math.inf
        return ScheduleScalars(
            log_abar,
            alpha,
            float(self._sigma(tt)),
            float(self._lambda(tt)),
            0.0 - 2.0 * float(self._dlog_alpha(tt)),  # 0.0 - : no -0.0 for VE
            float(self._c_eps(tt)),
        )

    def eps_coefficient_at_zero(self) -> float:
        """The limit of c_eps as t -> t_lo (the data end)."""
        return float(self._c_eps(torch.tensor(self.t_lo, dtype=torch.float64)))

    @property
    def lambda_range(self) -> tuple[float, float]:
        """(lambda at t_hi, lambda at t_lo); infinite where alpha or sigma vanishes."""
        return float(self.lambda_(self.t_hi)), float(self.lambda_(self.t_lo))

    def __repr__(self) -> str:
        return f"<Schedule {self.name!r} ({self.interpolant}) on [{self.t_lo:g}, {self.t_hi:g}]>"


def bisect_decreasing(f, target: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Solve f(t) = target for a decreasing f on [lo, hi], elementwise, to float64 resolution."""
    a = torch.full_like(target, lo)
    b = torch.full_like(target, hi)
    for _ in range(80):  # 2**-80 << float64 spacing on [0, 1]
        mid = 0.5 * (a + b)
        above = f(mid) > target  # f decreasing: root lies to the right
        a = torch.where(above, mid, a)
        b = torch.where(above, b, mid)
    out = 0.5 * (a + b)
    lo_t, hi_t = torch.full_like(target, lo), torch.full_like(target, hi)
    out = torch.where(target >= f(lo_t), lo_t, out)  # the ends exactly (e.g. t = 0: abar = 1)
    return torch.where(target <= f(hi_t), hi_t, out)


def bisect_decreasing_scalar(f, target: float, lo: float, hi: float) -> float:
    """:func:`bisect_decreasing` for one target with a float function ``f``: the same
    iterations in the same float64 operations, so the same root to the last bit, without a
    tensor operation per iteration (an adaptive reference inverts one time per evaluation).

    It stops early where no later iteration could move an end: once the midpoint equals an end
    the loop itself set (f(a) > target was seen at a, not f(b) > target at b), every later
    midpoint is that end again and leaves both ends as they are (about 55 of the 80 on [0, 1])."""
    a, b = lo, hi
    a_set = b_set = False
    for _ in range(80):
        mid = 0.5 * (a + b)
        if (mid == a and a_set) or (mid == b and b_set):
            break
        if f(mid) > target:
            a, a_set = mid, True
        else:
            b, b_set = mid, True
    out = 0.5 * (a + b)
    if target >= f(lo):
        out = lo
    if target <= f(hi):
        out = hi
    return out
