"""The variance-preserving noise schedule: everything is derived from log alpha_bar(t).

A schedule is defined by ``log_alpha_bar(t)`` and its exact derivative ``-beta(t)``; every other
quantity (alpha, sigma, the log-SNR lambda, the VE variable sigma_tilde and their inverses) is
computed from those two in a way that keeps full float64 accuracy near t = 0, where
1 - alpha_bar is tiny and a naive ``1 - alpha_bar`` would lose most of its digits.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .._tensor import as_time, check_times_in


class ScheduleScalars(NamedTuple):
    """The schedule at one time, as floats: log abar, alpha, sigma, lambda, beta, and the
    ODE's eps coefficient beta / (2 sigma) (its limit at t = 0, see ``eps_coefficient``)."""

    log_alpha_bar: float
    alpha: float
    sigma: float
    lam: float
    beta: float
    c_eps: float


class Schedule(ABC):
    """A VP schedule on forward time t in [t_lo, t_hi] (t = 0 is data).

    Notation (docs/design/conventions.md): abar = alpha_bar, alpha = sqrt(abar),
    sigma = sqrt(1 - abar), lambda = log(alpha / sigma), sigma_tilde = sigma / alpha
    = exp(-lambda).
    """

    name: str = "schedule"
    description: str = ""
    #: Domain of t. ``t_hi`` < 1 marks an explicit clipping (e.g. the cosine schedule).
    t_lo: float = 0.0
    t_hi: float = 1.0
    #: Number of training steps of a discrete table, None for continuous schedules.
    T: int | None = None

    # -- the two primitives ------------------------------------------------------------------
    @abstractmethod
    def _log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _beta(self, t: torch.Tensor) -> torch.Tensor:
        """beta(t) = -d log abar / dt (exact)."""

    def _t_from_log_alpha_bar(self, log_abar: torch.Tensor) -> torch.Tensor:
        """Inverse of log abar; closed forms override this generic bisection."""
        return _bisect_decreasing(self._log_alpha_bar, log_abar, self.t_lo, self.t_hi)

    # -- public API ----------------------------------------------------------------------------
    def _t(self, t: torch.Tensor | float) -> torch.Tensor:
        t = as_time(t)
        check_times_in(t, self.t_lo, self.t_hi, f"schedule {self.name!r}")
        return t

    def log_alpha_bar(self, t: torch.Tensor | float) -> torch.Tensor:
        return self._log_alpha_bar(self._t(t))

    def alpha_bar(self, t: torch.Tensor | float) -> torch.Tensor:
        return torch.exp(self.log_alpha_bar(t))

    def beta(self, t: torch.Tensor | float) -> torch.Tensor:
        """beta(t) = -abar'(t) / abar(t), the instantaneous noise rate."""
        return self._beta(self._t(t))

    def alpha_bar_deriv(self, t: torch.Tensor | float) -> torch.Tensor:
        """d abar / dt, exact (from beta, never by finite differences)."""
        t = self._t(t)
        return -self._beta(t) * torch.exp(self._log_alpha_bar(t))

    def alpha(self, t: torch.Tensor | float) -> torch.Tensor:
        return torch.exp(0.5 * self.log_alpha_bar(t))

    def sigma(self, t: torch.Tensor | float) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(self.log_alpha_bar(t)))

    def lambda_(self, t: torch.Tensor | float) -> torch.Tensor:
        """log-SNR lambda = log(alpha / sigma) (half the log signal-to-noise ratio)."""
        la = self.log_alpha_bar(t)
        return 0.5 * (la - torch.log(-torch.expm1(la)))

    def sigma_tilde(self, t: torch.Tensor | float) -> torch.Tensor:
        """sigma / alpha = exp(-lambda), the noise level of the VE (x / alpha) variable."""
        return torch.sqrt(torch.expm1(-self.log_alpha_bar(t)))

    def t_from_log_alpha_bar(self, log_abar: torch.Tensor | float) -> torch.Tensor:
        log_abar = as_time(log_abar)
        lo, hi = self._log_alpha_bar(as_time(self.t_hi)), self._log_alpha_bar(as_time(self.t_lo))
        check_times_in(log_abar, float(lo), float(hi), f"schedule {self.name!r} log alpha_bar")
        return self._t_from_log_alpha_bar(log_abar).clamp(self.t_lo, self.t_hi)

    def t_from_lambda(self, lam: torch.Tensor | float) -> torch.Tensor:
        """Inverse of lambda(t): abar = sigmoid(2 lambda), so log abar = -softplus(-2 lambda)."""
        lam = as_time(lam)
        return self.t_from_log_alpha_bar(-F.softplus(-2.0 * lam))

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
            tt = self._t(t)
            la = float(self._log_alpha_bar(tt))
            var = -math.expm1(la)  # 1 - abar
            lam = 0.5 * (la - math.log(var)) if var > 0 else math.inf
            beta = float(self._beta(tt))
            sigma = math.sqrt(var)
            c_eps = 0.5 * beta / sigma if sigma > 0 else self.eps_coefficient_at_zero()
            hit = ScheduleScalars(la, math.exp(0.5 * la), sigma, lam, beta, c_eps)
            if len(cache) > 100_000:
                cache.clear()
            cache[t] = hit
        return hit

    def eps_coefficient_at_zero(self) -> float:
        """The limit of beta / (2 sigma) as t -> 0: infinite when beta(0) > 0 (sigma ~ t^1/2),
        finite when beta(0) = 0 (e.g. "cosine-s0", where it is pi / 2). The finite limit is
        read at t = 1e-9, where the ratio agrees with it to about 1e-9 relative."""
        if float(self._beta(torch.zeros((), dtype=torch.float64))) > 0:
            return math.inf
        tiny = torch.tensor(1e-9, dtype=torch.float64)
        return float(0.5 * self._beta(tiny) / torch.sqrt(-torch.expm1(self._log_alpha_bar(tiny))))

    @property
    def lambda_range(self) -> tuple[float, float]:
        """(lambda at t_hi, lambda at t_lo); the second is +inf when abar(t_lo) = 1."""
        return float(self.lambda_(self.t_hi)), float(self.lambda_(self.t_lo))

    def __repr__(self) -> str:
        return f"<Schedule {self.name!r} on [{self.t_lo:g}, {self.t_hi:g}]>"


def _bisect_decreasing(f, target: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
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
