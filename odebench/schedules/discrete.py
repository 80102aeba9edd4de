"""Discrete 1000-step schedule tables and how they are evaluated between integers.

Time convention for a table of T betas (index i = 0 .. T-1, the model's training index):

    t = (i + 1) / T,     and t = 0 carries alpha_bar = 1 (clean data).

So abar(t_j) for the knots t_j = j / T is the "padded" table [1, abar_0, ..., abar_{T-1}] that
the DDIM / PNDM code and diffusers' ``set_alpha_to_one`` use, t = 1 is the last training step,
and continuous and discrete schedules share the same meaning of t = 0. (DPM-Solver maps its
discrete schedules the same way: t_n = (n + 1) / N.) A network trained on index i is called
at t = (i + 1) / T.

Between the knots, log abar is interpolated, by a choice the user makes explicit:

- ``"cubic"`` (default): a C^2 cubic spline of log abar through the T + 1 knots, so beta is
  continuous and the probability-flow ODE is smooth enough for order studies with steps
  coarser than 1 / T;
- ``"linear"``: piecewise-linear log abar, i.e. beta constant on each [j/T, (j+1)/T) (the
  interpolation of DPM-Solver's discrete wrapper). beta is right-continuous at the knots.

At the knots both return the table exactly.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.interpolate import CubicSpline

from .._tensor import DTYPE
from .base import bisect_decreasing_scalar
from .vp import VPSchedule, one_time_in_floats

INTERPOLATIONS = ("cubic", "linear")


class DiscreteSchedule(VPSchedule):
    """A table of betas with an explicit interpolation of log abar between knots t = j / T."""

    def __init__(self, betas, name: str, interpolation: str = "cubic", description: str = ""):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size < 2:
            raise ValueError("betas must be a 1-D table of at least 2 entries")
        if not np.all((betas > 0) & (betas < 1)):
            raise ValueError("every beta must lie in (0, 1)")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"unknown interpolation {interpolation!r} (choose from {', '.join(INTERPOLATIONS)})"
            )
        self.name, self.interpolation, self.T = name, interpolation, int(betas.size)
        self.description = description or f"discrete table of {betas.size} betas"
        self.betas = torch.as_tensor(betas, dtype=DTYPE)
        knots_t = np.arange(betas.size + 1) / betas.size
        knots_log = np.concatenate([[0.0], np.cumsum(np.log1p(-betas))])
        self.knots_t = torch.as_tensor(knots_t, dtype=DTYPE)
        self.knots_log_alpha_bar = torch.as_tensor(knots_log, dtype=DTYPE)
        if interpolation == "cubic":
            spline = CubicSpline(knots_t, knots_log, bc_type="not-a-knot")
            self._coef = torch.as_tensor(spline.c, dtype=DTYPE)  # (4, T): highest power first
            fine = np.linspace(0.0, 1.0, 20 * betas.size + 1)
            if np.any(spline(fine, 1) >= 0):
                raise ValueError(
                    f"{name}: the cubic interpolant of log abar is not decreasing; "
                    "use interpolation='linear'"
                )

    def __getstate__(self) -> dict:
        """The schedule without its float closure and inverse tables (made again on first
        use): pickles."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_float_fn", "_inverse_tables")}

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """The table abar_i, i = 0 .. T-1 (as training code stores it)."""
        return torch.exp(self.knots_log_alpha_bar[1:])

    def _locate(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        j = torch.clamp(torch.floor(t * self.T).long(), 0, self.T - 1)
        return j, t - self.knots_t[j]

    def _log_alpha_bar_tensor(self, t):
        j, dt = self._locate(t)
        if self.interpolation == "linear":
            slope = (self.knots_log_alpha_bar[j + 1] - self.knots_log_alpha_bar[j]) * self.T
            return self.knots_log_alpha_bar[j] + slope * dt
        c = self._coef[:, j]
        return ((c[0] * dt + c[1]) * dt + c[2]) * dt + c[3]

    def _log_alpha_bar_float(self, t: float) -> float:
        """``_log_alpha_bar`` of one time in Python floats: the same operations in the same
        order (so the same bits) without the tensor overhead."""
        return self._float_function()(t)

    def _float_function(self) -> Callable[[float], float]:
        """``_log_alpha_bar_float`` as a closure over the float tables, made once: the
        bisection of an adaptive reference calls it about 55 times per evaluation."""
        f = self.__dict__.get("_float_fn")
        if f is not None:
            return f
        knots_t, knots = self.knots_t.tolist(), self.knots_log_alpha_bar.tolist()
        cubic_table = self.interpolation == "cubic"
        coef = [tuple(c) for c in self._coef.T.tolist()] if cubic_table else []
        T, last = self.T, self.T - 1

        def linear(t: float) -> float:
            j = min(max(math.floor(t * T), 0), last)
            return knots[j] + (knots[j + 1] - knots[j]) * T * (t - knots_t[j])

        def cubic(t: float) -> float:
            j = min(max(math.floor(t * T), 0), last)
            dt = t - knots_t[j]
            c0, c1, c2, c3 = coef[j]
            return ((c0 * dt + c1) * dt + c2) * dt + c3

        f = cubic if cubic_table else linear
        self.__dict__["_float_fn"] = f
        return f

    # one time (a 0-d tensor) takes the float path: the same bits
    _log_alpha_bar = one_time_in_floats(_log_alpha_bar_tensor, _log_alpha_bar_float)

    def _t_from_log_alpha_bar(self, log_abar: torch.Tensor) -> torch.Tensor:
        """The generic bisection; for one time (an adaptive solve's every evaluation) in
        Python floats, bit for bit the same root."""
        if log_abar.numel() != 1:
            return super()._t_from_log_alpha_bar(log_abar)
        root = bisect_decreasing_scalar(
            self._float_function(), float(log_abar), self.t_lo, self.t_hi
        )
        return torch.full_like(log_abar, root)

    def t_from_lambda_float(self, lam: float) -> float:
        """t at one lambda in floats, without the bisection: log abar = -softplus(-2 lambda),
        its knot interval by a binary search of the table, then the interval's own
        interpolant inverted (linear: in closed form; cubic: Newton's method from the
        linear guess, monotone on the interval, so a few iterations reach round-off). It agrees
        with ``t_from_lambda`` to round-off (``tests/test_schedules_fast_inverse.py``), in
        about a tenth of the time of the float bisection; only the device reference uses it."""
        x = -2.0 * lam
        log_abar = -(x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x)))
        tables = self.__dict__.get("_inverse_tables")
        if tables is None:
            tables = self.__dict__["_inverse_tables"] = self._make_inverse_tables()
        knots_t, knots, descending, coef = tables
        if log_abar >= knots[0]:
            return self.t_lo
        if log_abar <= knots[-1]:
            return self.t_hi
        j = min(max(bisect.bisect_right(descending, -log_abar) - 1, 0), self.T - 1)
        width = knots_t[j + 1] - knots_t[j]
        fall = knots[j] - knots[j + 1]
        dt = width * (knots[j] - log_abar) / fall  # the linear interpolant's exact inverse
        if coef:
            c0, c1, c2, c3 = coef[j]
            for _ in range(20):
                slope = (3.0 * c0 * dt + 2.0 * c1) * dt + c2
                step = (((c0 * dt + c1) * dt + c2) * dt + c3 - log_abar) / slope
                dt = min(max(dt - step, 0.0), width)
                if abs(step) <= 1e-15 * width:
                    break
        return min(max(knots_t[j] + dt, self.t_lo), self.t_hi)

    def _make_inverse_tables(self) -> tuple[list[float], list[float], list[float], list]:
        knots = self.knots_log_alpha_bar.tolist()
        coef = [tuple(c) for c in self._coef.T.tolist()] if self.interpolation == "cubic" else []
        return self.knots_t.tolist(), knots, [-k for k in knots], coef

    def _beta(self, t):
        j, dt = self._locate(t)
        if self.interpolation == "linear":
            return -(self.knots_log_alpha_bar[j + 1] - self.knots_log_alpha_bar[j]) * self.T
        c = self._coef[:, j]
        return -((3.0 * c[0] * dt + 2.0 * c[1]) * dt + c[2])

    def t_of_index(self, i) -> torch.Tensor:
        """Continuous time of training index i: t = (i + 1) / T."""
        return (torch.as_tensor(i, dtype=DTYPE) + 1.0) / self.T


def ddpm_linear_betas(T: int = 1000, start: float = 1e-4, end: float = 0.02) -> np.ndarray:
    """Ho et al. (2020): betas linspace(1e-4, 0.02, T)."""
    return np.linspace(start, end, T, dtype=np.float64)


def scaled_linear_betas(T: int = 1000, start: float = 0.00085, end: float = 0.012) -> np.ndarray:
    """Stable Diffusion: betas linspace(sqrt(start), sqrt(end), T) ** 2."""
    return np.linspace(math.sqrt(start), math.sqrt(end), T, dtype=np.float64) ** 2


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal (2021): beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta)."""
    u = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((u + s) / (1.0 + s) * math.pi / 2.0) ** 2
    return np.minimum(1.0 - f[1:] / f[:-1], max_beta)
