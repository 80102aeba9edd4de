"""Probes that read a scheduler from outside: where its states are in time, whether it
computes in float64, whether it is deterministic, what its tables hold.

- ``state_times``: on a point mass (Dirac) problem every exact trajectory is
  x = alpha x0 + sigma n with n fixed, and every state a linear sampler produces is
  c1 x0 + c2 n (with c1, c2 shared by the batch). Least squares gives (c1, c2) for each model
  input and for the output, and sigma_tilde = c2 / c1 names the time the state is at. Compared
  with the time the model is *called* at, this exposes wrong previous-timestep rules and
  final calls at a timestep that is not the state's; the output's time is the effective end.
- ``linearity_defect``: the output's response to perturbations of x_T of size d and 2d; a
  float64 computation answers linearly (defect ~1e-6), one that rounds the state to float32
  does not (defect ~1).
- ``table_facts``: float32 tensors among the scheduler's attributes, and how far its
  alphas_cumprod is from odebench's float64 table.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .._tensor import DTYPE
from ..metrics import rms_error
from .adapters import Trace

SNAP = 0.02  # in index units: a time this close to a knot j / T is that knot
ZERO = 1e-6  # on a continuous schedule, a time below this is t = 0 (float32 round-off)


def snap_time(t: float, T: int | None) -> float:
    """t rounded to the knot j / T when within SNAP / T of it (unchanged when T is None: a
    continuous schedule has no knots)."""
    if not math.isfinite(t):
        return t
    if not T:
        return 0.0 if abs(t) < ZERO else t
    j = round(t * T)
    return j / T if abs(t * T - j) <= SNAP else t


def times_of_sigma_tilde(sched, values) -> list[float]:
    """odebench times of VE noise levels (one vectorised inversion), clamped to the table's
    range: 0 for levels <= 0, the top for levels within 0.1% above it, nan beyond."""
    s = torch.as_tensor(values, dtype=DTYPE).reshape(-1)
    top = float(sched.sigma_tilde(torch.tensor(sched.t_hi, dtype=DTYPE)))
    inside = torch.isfinite(s) & (s > 0) & (s < top)
    out = torch.full_like(s, math.nan)
    out[torch.isfinite(s) & (s <= 0)] = 0.0
    out[(s >= top) & (s <= top * (1.0 + 1e-3))] = sched.t_hi
    if bool(inside.any()):
        out[inside] = sched.t_from_sigma_tilde(s[inside]).to(DTYPE)
    return [float(v) for v in out]


def t_of_sigma_tilde(sched, s: float) -> float:
    """odebench time of one VE noise level (see :func:`times_of_sigma_tilde`)."""
    return times_of_sigma_tilde(sched, [s])[0]


def dirac_start(problem, sched, noise: torch.Tensor):
    """The start function of the Dirac probe: x_T = alpha x0 + sigma n at time t."""
    x0 = problem.mean.to(DTYPE)

    def start(t: float) -> torch.Tensor:
        tt = torch.tensor(t, dtype=DTYPE)
        return sched.alpha(tt) * x0 + sched.sigma(tt) * noise

    return start


def _two_column_fit(u: torch.Tensor, v: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(c1, c2) minimising |y - c1 u - c2 v| (normal equations, every sum exactly rounded).

    Deterministic to the bit, unlike LAPACK's least squares (``torch.linalg.lstsq`` on MKL
    returned results 1e-14 apart for the same input from one call to the next, which moved
    the audit's state times and errors in their last digits from run to run). The probe's
    columns (its point mass and its noise) are far from parallel, so the normal equations
    lose nothing a QR would keep at this size.
    """
    a, b, z = u.to(DTYPE).tolist(), v.to(DTYPE).tolist(), y.to(DTYPE).tolist()
    g11 = math.fsum(p * p for p in a)
    g12 = math.fsum(p * q for p, q in zip(a, b, strict=True))
    g22 = math.fsum(q * q for q in b)
    r1 = math.fsum(p * w for p, w in zip(a, z, strict=True))
    r2 = math.fsum(q * w for q, w in zip(b, z, strict=True))
    det = math.fsum((g11 * g22, -g12 * g12))
    if det <= 0.0:
        raise ValueError("the probe's point mass and noise are parallel: no fit")
    return math.fsum((g22 * r1, -g12 * r2)) / det, math.fsum((g11 * r2, -g12 * r1)) / det


def sigma_tilde_of_state(x: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor) -> float:
    """sigma_tilde = c2 / c1 for a state x = c1 x0 + c2 noise of the Dirac probe (least
    squares over the batch); |c2| is used, so round-off around sigma = 0 reads as ~0; inf
    when c1 is round-off next to c2 (pure noise: flow matching's t = 1); nan when c1 < 0 (no
    longer a state of the probe's family)."""
    c1, c2 = _two_column_fit(
        x0.expand_as(noise).reshape(-1), noise.reshape(-1), x.reshape(-1).to(DTYPE)
    )
    if abs(c1) <= 1e-12 * abs(c2):
        return math.inf
    return abs(c2) / c1 if c1 > 0 else math.nan


def state_times(trace: Trace, problem, sched, noise: torch.Tensor, T: int | None) -> dict[str, Any]:
    """Times of every model input and of the output of a Dirac-probe trace, and the worst
    gap (in index units, 1 / T; 1/1000 of t on a continuous schedule, T None: no snapping)
    between a call's time and its input's time."""
    x0 = problem.mean.to(DTYPE)
    levels = [sigma_tilde_of_state(x, x0, noise) for x in trace.inputs]
    if trace.ok and trace.x_vp is not None:
        levels.append(sigma_tilde_of_state(trace.x_vp, x0, noise))
    else:
        levels.append(math.nan)
    all_t = [snap_time(t, T) for t in times_of_sigma_tilde(sched, levels)] if levels else []
    times, t_end = all_t[:-1], all_t[-1]
    unit = T or 1000
    gaps = [abs(s - c.t) * unit for s, c in zip(times, trace.calls, strict=True)]
    finite = [g for g in gaps if math.isfinite(g)]
    worst = int(np.nanargmax(gaps)) if finite else -1
    return {
        "state_t": times,
        "t_end": t_end,
        "max_gap": gaps[worst] if worst >= 0 else math.nan,
        "worst_call": worst + 1,
        "worst_t_call": trace.calls[worst].t if worst >= 0 else math.nan,
        "worst_t_state": times[worst] if worst >= 0 else math.nan,
        "n_off": sum(1 for g in finite if g >= 0.25),
    }


def linearity_defect(base: Trace, small: Trace, large: Trace) -> float:
    """|D(2d) - 2 D(d)| / |2 D(d)| for output differences D of runs from x_T + d v, x_T + 2d v."""
    if not (base.ok and small.ok and large.ok):
        return math.nan
    d1 = small.x_vp - base.x_vp
    d2 = large.x_vp - base.x_vp
    den = float((2.0 * d1).norm())
    if den == 0.0:
        return math.inf  # the perturbation vanished: the state was rounded coarser than d
    return float((d2 - 2.0 * d1).norm()) / den


def difference(a: Trace, b: Trace) -> float:
    """RMS distance of two runs' outputs (0 for a deterministic scheduler)."""
    if not (a.ok and b.ok):
        return math.nan
    return rms_error(a.x_vp, b.x_vp)


def _float32_names(sch: Any) -> list[str]:
    names = []
    for key, value in sorted(vars(sch).items()):
        if (isinstance(value, torch.Tensor) and value.dtype in (torch.float32, torch.float16)) or (
            isinstance(value, np.ndarray) and value.dtype in (np.float32, np.float16)
        ):
            names.append(key)
    return names


def table_facts(sch: Any, sched, t_of_sigma=None) -> dict[str, Any]:
    """float32 attributes, alphas_cumprod's deviation from the float64 table, and the end time
    the scheduler's own attributes declare (final_alpha_cumprod or the last sigma, a VE noise
    level unless ``t_of_sigma`` reads it, as for flow matching's sigma = t)."""
    out: dict[str, Any] = {"float32_attrs": ";".join(_float32_names(sch))}
    acp = getattr(sch, "alphas_cumprod", None)
    ours = getattr(sched, "alphas_cumprod", None)
    if isinstance(acp, torch.Tensor) and ours is not None and acp.numel() == ours.numel():
        dev = (acp.to(DTYPE) - ours).abs() / ours
        out["table_dtype"] = str(acp.dtype).replace("torch.", "")
        out["table_rel_dev"] = float(dev.max())
    else:
        out["table_dtype"] = "unknown"
        out["table_rel_dev"] = math.nan
    t_attr, how = math.nan, ""
    final = getattr(sch, "final_alpha_cumprod", None)
    sigmas = getattr(sch, "sigmas", None)
    if final is not None:
        fa = float(final)
        t_attr = 0.0 if fa >= 1.0 else t_of_sigma_tilde(sched, math.sqrt((1.0 - fa) / fa))
        how = f"final_alpha_cumprod = {fa:.6g}"
    elif sigmas is not None and len(sigmas):
        s = float(sigmas[-1])
        t_attr = t_of_sigma(s) if t_of_sigma is not None else t_of_sigma_tilde(sched, s)
        how = f"last sigma = {s:.6g}"
    out["t_end_attr"] = snap_time(t_attr, getattr(sched, "T", None)) if how else math.nan
    out["t_end_attr_from"] = how
    config = getattr(sch, "config", None)
    out["clip_sample"] = bool(config.get("clip_sample", False)) if config is not None else False
    out["clip_range"] = float(config.get("clip_sample_range", 1.0)) if config is not None else 1.0
    out["thresholding"] = bool(config.get("thresholding", False)) if config is not None else False
    return out
