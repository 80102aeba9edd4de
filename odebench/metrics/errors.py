"""Error norms between sampled states and a reference, batch first, any trailing shape.

Each sample's error is the Euclidean norm of its difference over all non-batch dimensions;
the norms then aggregate over the batch. Everything is computed in float64. A non-finite
state gives ``inf`` (never nan), so a diverged run is a measurable result; a non-finite
reference is a bug and raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["ERROR_NORMS", "max_error", "path_error", "relative_rms_error", "rms_error"]


def _pair(x: torch.Tensor, ref: torch.Tensor, min_ndim: int = 1) -> tuple[torch.Tensor, ...]:
    """Validate shapes and return float64 copies of (x, ref) on x's device."""
    x, ref = torch.as_tensor(x), torch.as_tensor(ref)
    if x.shape != ref.shape:
        raise ValueError(
            f"shape mismatch: x has shape {tuple(x.shape)}, ref has shape {tuple(ref.shape)}"
        )
    if x.ndim < min_ndim or x.shape[0] == 0:
        raise ValueError(
            f"expected at least {min_ndim} dimension(s) with a non-empty leading one, "
            f"got shape {tuple(x.shape)}"
        )
    x = x.detach().to(torch.float64)
    ref = ref.detach().to(device=x.device, dtype=torch.float64)
    if not torch.isfinite(ref).all():
        raise ValueError("reference contains non-finite values")
    return x, ref


def _norms(v: torch.Tensor) -> torch.Tensor:
    """Per-sample Euclidean norms over all non-batch dims, scaled to avoid overflow."""
    flat = v.reshape(v.shape[0], -1)
    if flat.shape[1] == 0:
        return torch.zeros(flat.shape[0], dtype=flat.dtype, device=flat.device)
    scale = flat.abs().amax(dim=1, keepdim=True)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.linalg.vector_norm(flat / safe, dim=1) * scale.squeeze(1)


def _rms(d: torch.Tensor) -> float:
    """sqrt(mean(d**2)) for non-negative d, without overflow."""
    top = float(d.max())
    if top == 0 or not math.isfinite(top):
        return top
    return top * float(torch.sqrt(torch.mean((d / top) ** 2)))


def _distances(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor | None:
    x, ref = _pair(x, ref)
    if not torch.isfinite(x).all():
        return None
    return _norms(x - ref)


def rms_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Root mean square over samples of |x_i - ref_i| (inf if x has non-finite entries)."""
    d = _distances(x, ref)
    return math.inf if d is None else _rms(d)


def max_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Worst sample's |x_i - ref_i| (inf if x has non-finite entries)."""
    d = _distances(x, ref)
    return math.inf if d is None else float(d.max())


def relative_rms_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """rms_error(x, ref) / sqrt(mean_i |ref_i|^2): the error in units of the reference's size."""
    err = rms_error(x, ref)
    size = _rms(_norms(_pair(x, ref)[1]))
    if size == 0:
        raise ValueError("reference is identically zero; the relative error is undefined")
    return err / size


ERROR_NORMS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "rms": rms_error,
    "max": max_error,
}


def path_error(
    traj: torch.Tensor,
    ref_traj: torch.Tensor,
    norm: str | Callable[[torch.Tensor, torch.Tensor], float] = "rms",
) -> float:
    """Worst error along a trajectory: max over time points t of norm(traj[t], ref_traj[t]).

    ``traj`` and ``ref_traj`` have shape (T, B, ...); ``norm`` is a key of
    :data:`ERROR_NORMS` or a callable with the same signature.
    """
    if isinstance(norm, str):
        if norm not in ERROR_NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {sorted(ERROR_NORMS)}")
        fn = ERROR_NORMS[norm]
    else:
        fn = norm
    traj, ref_traj = _pair(traj, ref_traj, min_ndim=2)
    if traj.shape[1] == 0:
        raise ValueError(f"empty batch: trajectory shape {tuple(traj.shape)}")
    if fn is rms_error or fn is max_error:  # every time point at once: the same numbers
        return max(_norm_along(traj, ref_traj, rms=fn is rms_error))
    return max(fn(traj[t], ref_traj[t]) for t in range(traj.shape[0]))


def _norm_along(traj: torch.Tensor, ref_traj: torch.Tensor, rms: bool) -> list[float]:
    """``[rms_error(traj[t], ref_traj[t]) for t]`` (``max_error`` if not ``rms``), with the
    per-sample norms of every time point in one pass: each row is reduced as it is alone."""
    steps, batch = traj.shape[:2]
    diff = (traj - ref_traj).reshape(steps, batch, -1)
    finite = torch.isfinite(traj.reshape(steps, -1)).all(1).tolist()
    if diff.shape[2] == 0:
        dist = torch.zeros(steps, batch, dtype=diff.dtype, device=diff.device)
    else:
        scale = diff.abs().amax(dim=2, keepdim=True)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        dist = torch.linalg.vector_norm(diff / safe, dim=2) * scale.squeeze(2)
    tops = dist.amax(dim=1)
    if rms:
        ok = (tops > 0) & torch.isfinite(tops)
        unit = torch.where(ok, tops, torch.ones_like(tops))
        ratio = torch.sqrt(torch.mean((dist / unit[:, None]) ** 2, dim=1)).tolist()
    out = []
    for t, top in enumerate(tops.tolist()):
        if not finite[t]:
            out.append(math.inf)
        elif not rms or top == 0 or not math.isfinite(top):
            out.append(top)
        else:
            out.append(top * ratio[t])
    return out
