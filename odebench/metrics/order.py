"""Empirical convergence order: err ~ C * h**p, fitted honestly.

The order is the least-squares slope of log(err) on log(h) over an automatically chosen
window of the data (never the end-point secant), reported with a Student-t confidence
interval, R^2 and the local slopes, and with every left-out point flagged with the reason.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FLAG_FLOOR",
    "FLAG_INCONSISTENT",
    "FLAG_NONFINITE",
    "FLAG_PRE_ASYMPTOTIC",
    "FLAG_TOO_FEW",
    "FLAG_UNRELIABLE",
    "VERDICTS",
    "OrderFit",
    "fit_order",
    "verdict",
]

FLAG_NONFINITE = "nonfinite"
FLAG_UNRELIABLE = "unreliable-reference"
FLAG_FLOOR = "floor"
FLAG_PRE_ASYMPTOTIC = "pre-asymptotic"
FLAG_INCONSISTENT = "inconsistent"  # off the trend but not flattening, or no window at all
FLAG_TOO_FEW = "too-few-points"  # fewer than min_points usable points remain

VERDICTS = ("as declared", "superconvergent", "reduced", "diverged", "inconclusive", "measured")

_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class OrderFit:
    """Result of :func:`fit_order`; ``slope`` is the measured order (nan when there is no fit).

    The CI is the Student-t interval of the least-squares slope, widened by the drift of the
    local slopes when they move monotonically through the window (see ``_drift``).
    ``used``, ``flags``, ``h`` and ``err`` follow the input order; ``local_slopes`` follows the
    points sorted from coarse to fine (nan where an error is non-finite or zero). ``r2`` is
    nan when the fitted errors are all equal; the CI is nan when only two points are fitted.
    """

    slope: float
    ci_low: float
    ci_high: float
    r2: float
    intercept: float
    n_used: int
    used: tuple[bool, ...]
    flags: tuple[str, ...]
    local_slopes: tuple[float, ...]
    h: tuple[float, ...]
    err: tuple[float, ...]

    @property
    def ok(self) -> bool:
        """True when a line was fitted."""
        return math.isfinite(self.slope)

    @property
    def ci_halfwidth(self) -> float:
        """Half-width of the 95% confidence interval (nan with only two points)."""
        return 0.5 * (self.ci_high - self.ci_low)


def _as_1d(name: str, values: Any) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


@functools.lru_cache(maxsize=256)
def _t_quantile_975(dof: int) -> float:
    """0.975 quantile of Student's t with integer ``dof`` (exact, by bisection on the CDF).

    Uses the finite series for P(|T| < t) of Abramowitz & Stegun 26.7.3-4, so no scipy needed.
    """
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    if dof > 20000:  # Cornish-Fisher; error far below 1e-9 here
        z = 1.959963984540054
        return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)

    def central_mass(t: float) -> float:
        theta = math.atan(t / math.sqrt(dof))
        c2 = math.cos(theta) ** 2
        if dof % 2:  # odd
            total = 0.0
            if dof > 1:
                term = total = math.cos(theta)
                for k in range(3, dof - 1, 2):
                    term *= (k - 1) / k * c2
                    total += term
            return 2.0 / math.pi * (theta + math.sin(theta) * total)
        term = total = 1.0
        for k in range(2, dof - 1, 2):
            term *= (k - 1) / k * c2
            total += term
        return math.sin(theta) * total

    lo, hi = 0.0, 2.0
    while central_mass(hi) < 0.95:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if central_mass(mid) < 0.95:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


def _ols_slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    return float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Slope, intercept, R^2 and 95% CI half-width of the least-squares line y = a + b x."""
    n = len(x)
    xm, ym = x.mean(), y.mean()
    sxx = float(np.dot(x - xm, x - xm))
    slope = float(np.dot(x - xm, y - ym) / sxx)
    intercept = float(ym - slope * xm)
    ss_res = float(np.sum((y - intercept - slope * x) ** 2))
    ss_tot = float(np.sum((y - ym) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    dof = n - 2
    halfwidth = _t_quantile_975(dof) * math.sqrt(ss_res / dof / sxx) if dof else math.nan
    return slope, intercept, r2, halfwidth


def _floor_start(lh: np.ndarray, le: np.ndarray, theta: float) -> int:
    """Number of leading (coarse) points kept after cutting the round-off floor at the fine end.

    The floor starts at the first point k such that no point j >= k beats the best error
    before k by the factor that a slope of ``theta`` would give from h[k-1] to h[j]. If that
    is k = 1 (nothing ever converged), nothing is cut: flat or growing errors are data.
    """
    m = len(le)
    best_before = np.minimum.accumulate(le)  # best_before[i] = min(le[: i + 1])
    for k in range(1, m):
        gain = best_before[k - 1] - le[k:]
        if np.all(gain < theta * (lh[k - 1] - lh[k:])):
            return k if k > 1 else m
    return m


def _best_window(
    lh: np.ndarray,
    le: np.ndarray,
    min_points: int,
    slope_tol: float,
    theta: float,
    floor_seen: bool,
) -> tuple[int, int] | None:
    """Best consistent window (a, b), a..b inclusive, or None if there is none.

    A window is consistent when each local slope inside it is within ``slope_tol`` of the
    window's least-squares slope p; for neighbours closer than a factor 2 in h the tolerance
    is widened to the same error-ratio deviation, 2**slope_tol, so close spacing is not
    penalised. Ranking: converging windows (p > theta) first, so a flat stretch cannot win
    by length; then the most points, where fine-end points left out count against the
    window unless they look like a floor (one was seen, or the finest local slope fell below
    p / 2): a long decreasing tail is the asymptotic regime, not a floor; then the finer
    window, then the longer.
    """
    m = len(le)
    dlh = lh[:-1] - lh[1:]
    local = (le[:-1] - le[1:]) / dlh
    tol = slope_tol * np.maximum(1.0, _LOG2 / dlh)
    best: tuple[bool, int, int, int] | None = None
    for a in range(m - min_points + 1):
        for b in range(a + min_points - 1, m):
            p = _ols_slope(lh[a : b + 1], le[a : b + 1])
            if not np.all(np.abs(local[a:b] - p) <= tol[a:b]):
                continue
            length = b - a + 1
            floor_like = floor_seen or local[-1] < 0.5 * p
            score = length if floor_like else length - (m - 1 - b)
            key = (bool(p > theta), score, b, length)
            if best is None or key > best:
                best = key
    return None if best is None else (best[2] - best[3] + 1, best[2])


def fit_order(
    h: Sequence[float] | np.ndarray,
    err: Sequence[float] | np.ndarray,
    *,
    floor: float | None = None,
    exclude: Sequence[bool] | np.ndarray | None = None,
    min_points: int = 3,
    slope_tol: float = 0.3,
) -> OrderFit:
    """Fit the convergence order p in err ~ C * h**p (p > 0 means convergent).

    ``h``: distinct positive step sizes (pass h = 1/NFE to fit against NFE); ``err``: errors
    >= 0, nan/inf allowed (a diverged run is data). ``floor``: known round-off level, points at
    or below it are dropped. ``exclude``: mask of points known to be unreliable (reference not
    accurate enough); they are flagged ``"unreliable-reference"`` and never fitted.

    Window algorithm, on the usable points sorted coarse -> fine:
      1. floor: cut the fine-end suffix none of whose errors beats the best coarser error by
         the factor a slope of slope_tol/2 would give (the error stopped decreasing);
      2. window: among contiguous runs of >= min_points points whose local slopes all lie
         within slope_tol of the run's least-squares slope, take the one keeping the most
         points (finer on ties), converging runs first; fine-end points a run leaves out
         count against it unless they look like a floor (step 1 or ``floor`` found one, or
         the finest local slope is below half the run's slope), so a still-decreasing tail
         is taken as the asymptotic regime rather than dropped;
      3. points coarser than the window are "pre-asymptotic"; finer ones are "floor" where
         the error fell more slowly than the window's rate, else "inconsistent".
    The slope, intercept (log C), R^2 and 95% Student-t CI (n-2 dof) come from ordinary
    least squares over that window. Fewer than ``min_points`` usable points, or no consistent
    window, gives slope = nan.
    """
    h_arr = _as_1d("h", h)
    e_arr = _as_1d("err", err)
    n = len(h_arr)
    if len(e_arr) != n:
        raise ValueError(f"h and err must have the same length, got {n} and {len(e_arr)}")
    if n < 2:
        raise ValueError(f"need at least 2 points to fit an order, got {n}")
    bad_h = ~(np.isfinite(h_arr) & (h_arr > 0))
    if bad_h.any():
        i = int(np.argmax(bad_h))
        raise ValueError(f"step sizes h must be finite and > 0, got h[{i}] = {h_arr[i]}")
    if len(np.unique(h_arr)) != n:
        raise ValueError("step sizes h must be distinct")
    neg = e_arr < 0
    if neg.any():
        i = int(np.argmax(neg))
        raise ValueError(f"errors must be >= 0 (nan/inf allowed), got err[{i}] = {e_arr[i]}")
    if exclude is None:
        excl = np.zeros(n, dtype=bool)
    else:
        excl = np.asarray(exclude)
        if excl.shape != (n,) or excl.dtype != bool:
            raise ValueError(
                f"exclude must be a boolean mask of length {n}, got {excl.dtype} {excl.shape}"
            )
    if floor is not None and not (math.isfinite(floor) and floor >= 0):
        raise ValueError(f"floor must be a finite number >= 0, got {floor}")
    if int(min_points) != min_points or min_points < 2:
        raise ValueError(f"min_points must be an integer >= 2, got {min_points}")
    if not slope_tol > 0:
        raise ValueError(f"slope_tol must be > 0, got {slope_tol}")
    theta = 0.5 * slope_tol

    order = np.argsort(-h_arr, kind="stable")  # coarse -> fine
    hs, es = h_arr[order], e_arr[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_h, log_e = np.log(hs), np.log(es)
    finite = np.isfinite(log_e)  # false for nan, inf and 0

    flags = [""] * n  # sorted order
    for k in range(n):
        if not finite[k]:
            flags[k] = FLAG_NONFINITE
        elif excl[order[k]]:
            flags[k] = FLAG_UNRELIABLE
        elif floor is not None and es[k] <= floor:
            flags[k] = FLAG_FLOOR

    with np.errstate(invalid="ignore"):
        local_all = (log_e[:-1] - log_e[1:]) / (log_h[:-1] - log_h[1:])
    local_all = np.where(finite[:-1] & finite[1:], local_all, np.nan)

    cand = [k for k in range(n) if not flags[k]]
    window: tuple[int, int] | None = None
    if len(cand) >= min_points:
        lh, le = log_h[cand], log_e[cand]
        kept = _floor_start(lh, le, theta)
        for k in cand[kept:]:
            flags[k] = FLAG_FLOOR
        cand = cand[:kept]
    floor_seen = FLAG_FLOOR in flags
    if len(cand) < min_points:
        for k in cand:
            flags[k] = FLAG_TOO_FEW
    else:
        window = _best_window(log_h[cand], log_e[cand], min_points, slope_tol, theta, floor_seen)
        if window is None:
            for k in cand:
                flags[k] = FLAG_INCONSISTENT
        else:
            a, b = window
            for k in cand[:a]:
                flags[k] = FLAG_PRE_ASYMPTOTIC
            p_w = _ols_slope(log_h[cand[a : b + 1]], log_e[cand[a : b + 1]])
            for prev, k in zip(cand[b:-1], cand[b + 1 :], strict=True):
                slower = (log_e[prev] - log_e[k]) < p_w * (log_h[prev] - log_h[k])
                flags[k] = FLAG_FLOOR if slower else FLAG_INCONSISTENT

    slope = ci_low = ci_high = r2 = intercept = math.nan
    n_used = 0
    if window is not None:
        idx = cand[window[0] : window[1] + 1]
        slope, intercept, r2, hw = _ols(log_h[idx], log_e[idx])
        drift = _drift(log_h[idx], log_e[idx], slope)
        ci_low, ci_high = slope - hw - drift, slope + hw + drift
        n_used = len(idx)

    flags_in = [""] * n
    for k in range(n):
        flags_in[order[k]] = flags[k]
    return OrderFit(
        slope=slope,
        ci_low=ci_low,
        ci_high=ci_high,
        r2=r2,
        intercept=intercept,
        n_used=n_used,
        used=tuple(f == "" for f in flags_in),
        flags=tuple(flags_in),
        local_slopes=tuple(float(s) for s in local_all),
        h=tuple(float(v) for v in h_arr),
        err=tuple(float(v) for v in e_arr),
    )


def _drift(log_h: np.ndarray, log_e: np.ndarray, slope: float) -> float:
    """Systematic part of the slope's uncertainty: zero unless the local slopes inside the
    window move monotonically (a pre-asymptotic term still fading, e.g. C h + D h^2).

    Then the asymptotic order lies near or beyond the finest local slope, which the OLS slope
    of the whole window misses by |s_fine - slope|; the fading term may move it by about one
    more increment |s_fine - s_prev|. The Student-t interval covers only the scatter, so this
    sum widens it.
    """
    if len(log_h) < 3:
        return 0.0
    local = np.diff(log_e) / np.diff(log_h)
    steps = np.diff(local)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        return 0.0
    return float(abs(local[-1] - slope) + abs(local[-1] - local[-2]))


def _errors_grow(h: np.ndarray, err: np.ndarray) -> bool:
    """True when the finite positive errors grow as h shrinks (overall)."""
    ok = np.isfinite(err) & (err > 0)
    if ok.sum() < 2:
        return False
    hs, es = h[ok], err[ok]
    coarse, fine = int(np.argmax(hs)), int(np.argmin(hs))
    return _ols_slope(np.log(hs), np.log(es)) <= 0 and es[fine] > es[coarse]


def verdict(
    fit: OrderFit, declared: float | None, *, tol: float = 0.2, max_halfwidth: float = 0.5
) -> str:
    """Classify a fit against the declared order; one of :data:`VERDICTS`.

    "diverged": error non-finite at the finest step, fitted slope <= 0, or (with no fit)
    errors that grow as h shrinks. "inconclusive": no fit, or a CI half-width above
    ``max_halfwidth`` (too few consistent points to tell orders apart). Otherwise, with
    declared order p and band = max(tol, CI half-width): "as declared" if |slope - p| <= band, else
    "superconvergent" (above) or "reduced" (below); "measured" when ``declared`` is None.
    """
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if declared is not None and not math.isfinite(declared):
        raise ValueError(f"declared order must be finite or None, got {declared}")
    h = np.asarray(fit.h, dtype=float)
    err = np.asarray(fit.err, dtype=float)
    if not np.isfinite(err[int(np.argmin(h))]):
        return "diverged"
    if not fit.ok:
        return "diverged" if _errors_grow(h, err) else "inconclusive"
    if fit.slope <= 0:
        return "diverged"
    if declared is None:
        return "measured"
    hw = fit.ci_halfwidth
    if math.isfinite(hw) and hw > max_halfwidth:
        return "inconclusive"  # a CI this wide would call almost any order "as declared"
    band = max(tol, hw) if math.isfinite(hw) else tol
    if abs(fit.slope - declared) <= band:
        return "as declared"
    return "superconvergent" if fit.slope > declared else "reduced"
