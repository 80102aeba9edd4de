"""A batched adaptive DOP853 integrator in torch: the whole solve stays on the state's device.

``dop853(fun, y0, grid, rtol=, atol=)`` integrates dy/dv = fun(v, y) from grid[0] through the
monotone ``grid`` and returns y at grid[1:], with the step-size control of Hairer, Norsett &
Wanner (1993), II.4 and II.10, as scipy's ``solve_ivp(method="DOP853")`` does it:

- one step size for the whole state (a batch is one system): the error norm is the RMS over
  every component of err / (atol + rtol max(|y_old|, |y_new|)), with DOP853's blend of its
  order-5 and order-3 estimates, err5^2 / sqrt(err5^2 + 0.01 err3^2);
- h_new = h min(10, max(0.2, 0.9 err^(-1/8))), never grown right after a rejection; the first
  step from HNW's II.4 estimate (one extra evaluation);
- the states at the grid points come from the order-7 dense output of the step that covers
  them (three more evaluations for such a step), so the step sequence does not depend on the
  grid's resolution.

The accept/reject decision reads the error norm on the host: one device synchronisation per
step, nothing else leaves the device. ``fun`` gets v as a Python float and y in y0's shape,
dtype and device.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from . import dop853_tableau as tab

SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0
ERROR_EXPONENT = -1.0 / 8.0  # the error estimate is of order 7 in h (HNW II.10)
STAGES = 12  # stages of the order-8 step; stage 12 is f(v + h, y_new)


@dataclass
class Integration:
    """The states at grid[1:] (NaN from where the solve failed), and what the solve cost."""

    states: torch.Tensor  # (len(grid) - 1, *y0.shape); NaN after a failure
    nfev: int
    steps: int
    rejected: int
    success: bool
    message: str


class _Tableau:
    """The DOP853 coefficients as tensors of the state's dtype on its device."""

    def __init__(self, like: torch.Tensor):
        def t(rows) -> torch.Tensor:
            return torch.tensor(rows, dtype=like.dtype, device=like.device)

        n = len(tab.C)
        a = [list(row) + [0.0] * (n - len(row)) for row in tab.A]
        self.a = t(a)  # (16, 16) lower triangular
        self.b = t(tab.B)
        self.e = t([tab.E5, tab.E3])  # (2, 13)
        self.d = t(tab.D)  # (4, 16)
        self.c = [float(c) for c in tab.C]


def _rms(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x) / math.sqrt(x.numel())


def dop853(
    fun: Callable[[float, torch.Tensor], torch.Tensor],
    y0: torch.Tensor,
    grid: Sequence[float],
    *,
    rtol: float,
    atol: float,
    max_steps: int = 100_000,
) -> Integration:
    """Integrate dy/dv = fun(v, y) from v = grid[0], y = y0, through grid (monotone, either
    direction); return y at grid[1:]. See the module docstring for the method."""
    grid = [float(v) for v in grid]
    if not (rtol > 0 and atol > 0):
        raise ValueError("rtol and atol must be positive")
    if len(grid) < 2:
        raise ValueError("the grid needs a start and at least one more point")
    if not all(math.isfinite(v) for v in grid):
        raise ValueError("the grid must be finite")
    direction = 1.0 if grid[-1] > grid[0] else -1.0
    if any(direction * (b - a) <= 0 for a, b in itertools.pairwise(grid)):
        raise ValueError("the grid must be strictly monotone")
    if not y0.is_floating_point():
        raise ValueError("y0 must be a floating-point tensor")
    shape = y0.shape
    tb = _Tableau(y0)
    y = y0.reshape(-1).clone()
    out = torch.full((len(grid) - 1, y.numel()), float("nan"), dtype=y.dtype, device=y.device)
    counter = [0]

    def f(v: float, y_flat: torch.Tensor) -> torch.Tensor:
        counter[0] += 1
        out = fun(v, y_flat.view(shape)).reshape(-1)
        return out if out.dtype == y_flat.dtype else out.to(y_flat.dtype)

    v, v_end = grid[0], grid[-1]
    fv = f(v, y)
    h_abs = _initial_step(f, v, y, fv, v_end, direction, rtol, atol)
    k = torch.empty((len(tb.c), y.numel()), dtype=y.dtype, device=y.device)
    next_out, steps, rejected = 1, 0, 0
    while direction * (v_end - v) > 0:
        if steps >= max_steps:
            return _result(out, shape, counter, steps, rejected, f"more than {max_steps} steps")
        min_step = 10 * abs(math.nextafter(v, direction * math.inf) - v)
        h_abs = max(h_abs, min_step)
        just_rejected = False
        while True:
            if h_abs < min_step:
                return _result(out, shape, counter, steps, rejected, "the step size underflowed")
            v_new = v + direction * h_abs
            if direction * (v_new - v_end) > 0:
                v_new = v_end
            h = v_new - v
            h_abs = abs(h)
            y_new, f_new = _step(f, tb, k, v, y, fv, h)
            err = _error_norm(tb, k, h, y, y_new, rtol, atol)  # the one host sync of a step
            if err < 1:
                factor = MAX_FACTOR if err == 0 else min(MAX_FACTOR, SAFETY * err**ERROR_EXPONENT)
                h_abs *= min(1.0, factor) if just_rejected else factor
                break
            # err >= 1 or NaN (a non-finite state): shrink, at most five-fold
            shrink = SAFETY * err**ERROR_EXPONENT if math.isfinite(err) else MIN_FACTOR
            h_abs *= max(MIN_FACTOR, shrink)
            just_rejected = True
            rejected += 1
        steps += 1
        hits = []
        while next_out < len(grid) and direction * (grid[next_out] - v_new) <= 0:
            hits.append(next_out)
            next_out += 1
        if hits:
            _dense(f, tb, k, v, y, y_new, fv, f_new, h, [grid[i] for i in hits], out, hits)
        v, y, fv = v_new, y_new, f_new
    return _result(out, shape, counter, steps, rejected, "")


def _result(out, shape, counter, steps, rejected, failure: str) -> Integration:
    states = out.reshape((out.shape[0], *shape))
    return Integration(states, counter[0], steps, rejected, not failure, failure or "ok")


def _initial_step(f, v, y, fv, v_end, direction, rtol, atol) -> float:
    """HNW II.4's starting step for an error estimate of order 7 (as scipy's solve_ivp)."""
    span = abs(v_end - v)
    scale = atol + y.abs() * rtol
    d0, d1 = float(_rms(y / scale)), float(_rms(fv / scale))
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, span)
    f1 = f(v + direction * h0, y + direction * h0 * fv)
    d2 = float(_rms((f1 - fv) / scale)) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (-ERROR_EXPONENT)
    return min(100 * h0, h1, span)


def _step(f, tb: _Tableau, k, v, y, fv, h) -> tuple[torch.Tensor, torch.Tensor]:
    """One DOP853 step: stages 0-11 into k, y_new, and f(v + h, y_new) into k[12]."""
    k[0] = fv
    for s in range(1, STAGES):
        k[s] = f(v + tb.c[s] * h, torch.addmv(y, k[:s].T, tb.a[s, :s], alpha=h))
    y_new = torch.addmv(y, k[:STAGES].T, tb.b, alpha=h)
    f_new = f(v + h, y_new)
    k[STAGES] = f_new
    return y_new, f_new


def _error_norm(tb: _Tableau, k, h, y, y_new, rtol, atol) -> float:
    """DOP853's blended error norm (HNW II.10, scipy's convention), read on the host."""
    scale = torch.maximum(y.abs(), y_new.abs()).mul_(rtol).add_(atol)
    e = (tb.e @ k[: STAGES + 1]).div_(scale)  # (2, n): err5, err3
    sq = torch.linalg.vector_norm(e, dim=1) ** 2
    n5, n3 = (float(x) for x in sq.tolist())
    if n5 == 0 and n3 == 0:
        return 0.0
    return abs(h) * n5 / math.sqrt((n5 + 0.01 * n3) * y.numel())


def _dense(f, tb: _Tableau, k, v, y, y_new, fv, f_new, h, points, out, rows) -> None:
    """The order-7 dense output of the last step at ``points`` (HNW II.6, contd8)."""
    for s in range(STAGES + 1, len(tb.c)):
        k[s] = f(v + tb.c[s] * h, torch.addmv(y, k[:s].T, tb.a[s, :s], alpha=h))
    dy = y_new - y
    r = [dy, h * fv - dy, 2 * dy - h * (f_new + fv), *(h * (tb.d @ k))]
    for row, p in zip(rows, points, strict=True):
        theta = (p - v) / h
        acc = torch.zeros_like(y)
        for i, term in enumerate(reversed(r)):
            acc.add_(term).mul_(theta if i % 2 == 0 else 1.0 - theta)
        out[row - 1] = acc.add_(y)
