"""Time grids for sampling: decreasing tensors from t_max down to t_min.

``timesteps(n, spacing, ...)`` returns n + 1 times (n steps) for every spacing but "pndm", whose
step count is fixed by the PNDM authors' integer rule (see below).
"""

from __future__ import annotations

import math
import reprlib

import torch

from ._tensor import DTYPE
from .schedules import Schedule
from .schedules import get as get_schedule

SPACINGS = {
    "uniform": "uniform in t",
    "quadratic": "t_min + (t_max - t_min) u^2, u uniform: dense near the data (DDIM's 'quad')",
    "lambda": "uniform in log-SNR lambda (DPM-Solver's 'logSNR'); needs a schedule",
    "karras": "sigma_tilde^(1/rho) uniform (Karras et al. 2022, rho = 7); needs a schedule",
    "pndm": "the PNDM authors' integer grid range(0, T, T // S) then the clean-data end t = 0",
}


def timesteps(
    n: int,
    spacing: str = "uniform",
    t_max: float | None = None,
    t_min: float | None = None,
    *,
    schedule: Schedule | str | None = None,
    rho: float = 7.0,
    T: int | None = None,
    shift: float | None = None,
) -> torch.Tensor:
    """A strictly decreasing float64 grid of sampling times.

    >>> timesteps(4, t_max=1.0, t_min=0.2).tolist()
    [1.0, 0.8, 0.6000000000000001, 0.4, 0.2]

    ``t_max`` defaults to the schedule's upper end (1, or the clipping point of "cosine"),
    ``t_min`` to 1e-3. "lambda" and "karras" need ``schedule``. "pndm" reproduces the grid of
    Liu et al.'s code for S = ``n`` sampling steps on a T-step table: the training indices
    range(0, T, T // S) visited from the top, mapped to t = (i + 1) / T, followed by t = 0 (the
    final step to clean data); its length is len(range(0, T, T // S)) + 1.

    ``shift`` applies the time shift of flow-matching samplers to the whole grid, ends
    included, after the spacing: t -> shift t / (1 + (shift - 1) t) (Esser et al. 2024, SD3,
    shift = 3; Flux's resolution-dependent shift is ``shift = exp(mu)``, see ``flux_shift``).
    It maps [0, 1] onto itself and keeps t = 0 and t = 1; shift > 1 spends more steps at high
    noise. As in diffusers, t_max and t_min are the ends before the shift.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of steps must be a positive integer, got {n!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r} (choose from {', '.join(SPACINGS)})")
    sched = get_schedule(schedule) if schedule is not None else None
    if spacing == "pndm":
        return _pndm_grid(
            n, T if T is not None else (sched.T if sched else None) or 1000, t_max, t_min
        )
    hi = sched.t_hi if sched is not None else 1.0
    lo = sched.t_lo if sched is not None else 0.0
    t_max = hi if t_max is None else float(t_max)
    t_min = 1e-3 if t_min is None else float(t_min)
    if not lo <= t_min < t_max <= hi:
        raise ValueError(
            f"need {lo:g} <= t_min < t_max <= {hi:g}, got t_min={t_min}, t_max={t_max}"
        )
    u = torch.linspace(1.0, 0.0, n + 1, dtype=DTYPE)
    if spacing == "uniform":
        ts = t_min + (t_max - t_min) * u
    elif spacing == "quadratic":
        ts = t_min + (t_max - t_min) * u**2
    else:
        if sched is None:
            raise ValueError(f"spacing {spacing!r} needs a schedule (schedule=...)")
        ts = _schedule_spaced(sched, spacing, u, t_max, t_min, rho)
    ts[0], ts[-1] = t_max, t_min
    if shift is not None:
        ts = shifted(ts, shift)
    check_grid(ts)
    return ts


#: Where sampling starts when the schedule's end has alpha = 0 (flow matching at t = 1, where
#: eps = x says nothing about x0): sigma / alpha = 80, EDM's sigma_max (Karras et al. 2022),
#: which is t = 80/81 under flow matching and the end t = 1 of the "ve" schedule.
SIGMA_TILDE_START = 80.0


def start_time(schedule: Schedule, t_max: float) -> float:
    """``t_max`` capped at the schedule's start: its end ``t_hi``, or, where alpha vanishes
    there (t = 1 under flow matching), the time where sigma / alpha = ``SIGMA_TILDE_START``."""
    hi = float(schedule.t_hi)
    if float(schedule.alpha(hi)) == 0.0:
        hi = float(schedule.t_from_sigma_tilde(SIGMA_TILDE_START))
    return min(float(t_max), hi)


def shifted(ts: torch.Tensor, shift: float) -> torch.Tensor:
    """The flow-matching time shift t -> shift t / (1 + (shift - 1) t), elementwise."""
    if isinstance(shift, bool) or not isinstance(shift, int | float) or not shift > 0:
        raise ValueError(f"shift must be a positive number, got {shift!r}")
    if not shift < float("inf"):
        raise ValueError(f"shift must be finite, got {shift!r}")
    ts = torch.as_tensor(ts, dtype=DTYPE)
    return shift * ts / (1.0 + (shift - 1.0) * ts)


def flux_shift(
    image_seq_len: int,
    base_seq_len: int = 256,
    max_seq_len: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
) -> float:
    """Flux's resolution-dependent ("dynamic") shift exp(mu), mu linear in the number of image
    tokens from ``base_shift`` at ``base_seq_len`` to ``max_shift`` at ``max_seq_len`` (the
    defaults of diffusers' FluxPipeline). With its exponent 1, diffusers' time_shift(mu, 1, t)
    is ``shifted(t, exp(mu))``."""
    if isinstance(image_seq_len, bool) or not isinstance(image_seq_len, int) or image_seq_len < 1:
        raise ValueError(f"image_seq_len must be a positive integer, got {image_seq_len!r}")
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    mu = image_seq_len * slope + (base_shift - slope * base_seq_len)
    return math.exp(mu)


def _schedule_spaced(sched: Schedule, spacing: str, u, t_max, t_min, rho) -> torch.Tensor:
    if float(sched.sigma(t_min)) == 0.0:
        raise ValueError(
            f"spacing {spacing!r} needs t_min > 0: lambda and sigma_tilde are infinite / zero "
            "at the clean-data end"
        )
    if spacing == "lambda":
        l_hi, l_lo = sched.lambda_(t_min), sched.lambda_(t_max)
        return sched.t_from_lambda(l_lo + (l_hi - l_lo) * (1.0 - u))
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    s_max = float(sched.sigma_tilde(t_max)) ** (1.0 / rho)
    s_min = float(sched.sigma_tilde(t_min)) ** (1.0 / rho)
    return sched.t_from_sigma_tilde((s_min + (s_max - s_min) * u) ** rho)


def _pndm_grid(steps: int, T: int, t_max, t_min) -> torch.Tensor:
    if t_max is not None or t_min is not None:
        raise ValueError("the 'pndm' grid fixes its own end points; leave t_max and t_min unset")
    if steps > T:
        raise ValueError(f"'pndm' grid: at most T = {T} steps, got {steps}")
    seq = torch.arange(0, T, T // steps, dtype=DTYPE)
    ts = torch.cat([torch.flip(seq + 1.0, [0]) / T, torch.zeros(1, dtype=DTYPE)])
    check_grid(ts)
    return ts


def check_grid(
    ts, schedule: Schedule | None = None, *, name: str = "ts", min_points: int = 2
) -> torch.Tensor:
    """``ts`` as a float64 tensor; raise ValueError (naming the argument ``name``) unless it
    is a 1-D, finite, strictly decreasing grid of numbers (at least ``min_points``) inside
    [0, 1] (and inside the schedule's domain when one is given)."""
    ts = _as_times(ts, name)
    if ts.ndim != 1 or ts.numel() < min_points:
        raise ValueError(
            f"{name}: a time grid must be 1-D with at least {min_points} point"
            f"{'s' if min_points > 1 else ''}, got shape {tuple(ts.shape)}"
        )
    finite = torch.isfinite(ts)
    if not bool(finite.all()):
        k = int(torch.nonzero(~finite)[0])
        raise ValueError(f"{name}: a time grid must be finite, got {float(ts[k])} at index {k}")
    diffs = ts[1:] - ts[:-1]
    if not bool((diffs < 0).all()):
        k = int(torch.nonzero(diffs >= 0)[0])
        raise ValueError(
            f"{name}: a time grid must be strictly decreasing (sampling runs from t_max to "
            f"t_min); t[{k}] = {float(ts[k]):g} is followed by t[{k + 1}] = {float(ts[k + 1]):g}"
        )
    lo, hi = (schedule.t_lo, schedule.t_hi) if schedule is not None else (0.0, 1.0)
    if float(ts[-1]) < lo or float(ts[0]) > hi:
        where = f"schedule {schedule.name!r}" if schedule is not None else "[0, 1]"
        raise ValueError(
            f"{name}: time grid [{float(ts[-1]):g}, {float(ts[0]):g}] leaves the domain of "
            f"{where}: [{lo:g}, {hi:g}]"
        )
    return ts.to(DTYPE)


def _as_times(ts, name: str) -> torch.Tensor:
    """A real tensor from a tensor, array or sequence of numbers; ValueError otherwise (a
    string, a list of non-numbers, a boolean or complex tensor)."""
    if isinstance(ts, str | bytes):
        raise ValueError(
            f"{name}: a time grid must be a sequence of numbers, got the string {reprlib.repr(ts)}"
        )
    if not isinstance(ts, torch.Tensor):
        try:
            ts = torch.as_tensor(ts, dtype=DTYPE)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"{name}: a time grid must be a sequence of numbers, got {reprlib.repr(ts)}"
            ) from None
    if ts.dtype == torch.bool or ts.is_complex():
        raise ValueError(f"{name}: a time grid must hold real numbers, got dtype {ts.dtype}")
    return ts
