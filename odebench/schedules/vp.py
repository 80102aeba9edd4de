"""The variance-preserving interpolant (alpha^2 + sigma^2 = 1): everything from log alpha_bar(t).

A VP schedule is defined by ``log_alpha_bar(t)`` and its exact derivative ``-beta(t)``; every other
quantity (alpha, sigma, the log-SNR lambda, the VE variable sigma_tilde and their inverses) is
computed from those two in a way that keeps full float64 accuracy near t = 0, where
1 - alpha_bar is tiny and a naive ``1 - alpha_bar`` would lose most of its digits.
"""

from __future__ import annotations

import functools
import math
from abc import abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .._tensor import as_time, check_times_in
from .base import Schedule, ScheduleScalars, bisect_decreasing


def one_time_in_floats(formula: Callable, in_floats: Callable | None = None) -> Callable:
    """For a schedule formula of + - * / only (no library function, no ``**``): one time, a
    0-d tensor (an adaptive solve's or a solver step's every evaluation), is evaluated in
    Python floats: the same IEEE operations in the same order, so the same bits, without the
    tensor overhead (tests/test_schedules.py compares the two). ``in_floats``: the float
    version where the tensor formula cannot take a float (a table lookup), else the formula."""
    scalar = formula if in_floats is None else in_floats

    @functools.wraps(formula)
    def evaluate(self, t):
        if isinstance(t, torch.Tensor) and t.ndim == 0 and not t.requires_grad:
            return torch.full_like(t, scalar(self, float(t)))
        return formula(self, t)

    return evaluate


class VPSchedule(Schedule):
    """A VP schedule on forward time t in [t_lo, t_hi] (t = 0 is data).

    Notation (docs/design/conventions.md): abar = alpha_bar, alpha = sqrt(abar),
    sigma = sqrt(1 - abar), lambda = log(alpha / sigma), sigma_tilde = sigma / alpha
    = exp(-lambda).
    """

    interpolant = "vp"

    # -- the two primitives ------------------------------------------------------------------
    @abstractmethod
    def _log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _beta(self, t: torch.Tensor) -> torch.Tensor:
        """beta(t) = -d log abar / dt (exact)."""

    def _t_from_log_alpha_bar(self, log_abar: torch.Tensor) -> torch.Tensor:
        """Inverse of log abar; closed forms override this generic bisection."""
        return bisect_decreasing(self._log_alpha_bar, log_abar, self.t_lo, self.t_hi)

    # -- the interpolant's primitives, from the two above -------------------------------------
    def _alpha(self, t):
        return torch.exp(0.5 * self._log_alpha_bar(t))

    def _sigma(self, t):
        return torch.sqrt(-torch.expm1(self._log_alpha_bar(t)))

    def _lambda(self, t):
        la = self._log_alpha_bar(t)
        return 0.5 * (la - torch.log(-torch.expm1(la)))

    def _dlog_alpha(self, t):
        return -0.5 * self._beta(t)

    def _c_eps(self, t):
        beta, sigma = self._beta(t), self._sigma(t)
        c_eps = 0.5 * beta / torch.where(sigma > 0, sigma, 1.0)
        if bool((sigma > 0).all()):
            return c_eps
        return torch.where(sigma > 0, c_eps, self.eps_coefficient_at_zero())  # the t = 0 limit

    def _dlog_alpha_dlambda(self, t):
        sigma = self._sigma(t)
        return sigma * sigma

    def _t_from_lambda(self, lam):
        return self._t_from_log_alpha_bar(-F.softplus(-2.0 * lam))

    def t_from_lambda_float(self, lam: float) -> float:
        """t at one lambda, as a float, for a caller that inverts one time per evaluation (the
        device reference, ``odebench.integrate.pf``). This generic form is ``t_from_lambda``;
        tables override it with a faster inverse that agrees with it to round-off, not to the
        bit, so the CPU references, which use ``t_from_lambda``, are not touched."""
        return float(
            self._t_from_lambda(torch.tensor(lam, dtype=torch.float64)).clamp(self.t_lo, self.t_hi)
        )

    # -- public API (the VP forms, evaluated from log abar for full accuracy near t = 0) ---------
    def log_alpha_bar(self, t: torch.Tensor | float) -> torch.Tensor:
        return self._log_alpha_bar(self._t(t))

    def signal_and_noise(self, t: torch.Tensor | float) -> tuple[torch.Tensor, ...]:
        la = self.log_alpha_bar(t)
        return torch.exp(0.5 * la), torch.exp(la), -torch.expm1(la)

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

    def _compute_scalars(self, t: float) -> ScheduleScalars:
        tt = self._t(t)
        la = float(self._log_alpha_bar(tt))
        var = -math.expm1(la)  # 1 - abar
        lam = 0.5 * (la - math.log(var)) if var > 0 else math.inf
        beta = float(self._beta(tt))
        sigma = math.sqrt(var)
        c_eps = 0.5 * beta / sigma if sigma > 0 else self.eps_coefficient_at_zero()
        return ScheduleScalars(la, math.exp(0.5 * la), sigma, lam, beta, c_eps)

    def eps_coefficient_at_zero(self) -> float:
        """The limit of beta / (2 sigma) as t -> 0: infinite when beta(0) > 0 (sigma ~ t^1/2),
        finite when beta(0) = 0 (e.g. "cosine-s0", where it is pi / 2). The finite limit is
        read at t = 1e-9, where the ratio agrees with it to about 1e-9 relative."""
        if float(self._beta(torch.zeros((), dtype=torch.float64))) > 0:
            return math.inf
        tiny = torch.tensor(1e-9, dtype=torch.float64)
        return float(0.5 * self._beta(tiny) / torch.sqrt(-torch.expm1(self._log_alpha_bar(tiny))))
