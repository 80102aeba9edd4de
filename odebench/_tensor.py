"""Small tensor helpers shared by every module: one dtype, one way to read a time argument,
one way to run small float64 work on one thread, and the weighted sums solvers form at every
step, in as few passes over the data as the formula allows."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

DTYPE = torch.float64


def as_time(t: torch.Tensor | float, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """Return ``t`` as a floating tensor (float64 unless ``like`` says otherwise).

    Schedules and analytic problems accept a Python float, a 0-d tensor or a batch of times.
    """
    dtype = like.dtype if like is not None and like.is_floating_point() else DTYPE
    device = like.device if like is not None else None
    if isinstance(t, torch.Tensor):
        if not t.is_floating_point():
            t = t.to(DTYPE)
        return t.to(dtype=dtype, device=device) if like is not None else t
    return torch.as_tensor(float(t), dtype=dtype, device=device)


def check_times_in(t: torch.Tensor, lo: float, hi: float, what: str) -> None:
    """Raise ValueError unless every entry of ``t`` is finite and in [lo, hi]."""
    if t.numel() == 1:  # one time (a solver's step, an adaptive solve's evaluation): no reductions
        v = float(t)
        if math.isfinite(v) and lo - 1e-12 <= v <= hi + 1e-12:
            return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what}: times must be finite, got {t.tolist()}")
    t_lo, t_hi = float(t.min()), float(t.max())
    if t_lo < lo - 1e-12 or t_hi > hi + 1e-12:
        raise ValueError(f"{what}: times must lie in [{lo:g}, {hi:g}], got [{t_lo:g}, {t_hi:g}]")


def per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Shape a 0-d or (B,) coefficient so it broadcasts against a batch ``x`` of shape (B, ...)."""
    if v.ndim == 0:
        return v
    if v.ndim == 1 and v.shape[0] == x.shape[0]:
        return v.reshape((-1,) + (1,) * (x.ndim - 1))
    raise ValueError(
        f"time of shape {tuple(v.shape)} does not match a batch of shape {tuple(x.shape)}"
    )


def add_into(total: torch.Tensor, term: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``total + alpha * term``, written into ``total``'s storage where the result has its
    shape and dtype (``total`` must be a temporary of the caller's own: it is overwritten).

    One pass over the data: ``alpha * term`` is never stored (torch.add's ``alpha``, a fused
    multiply-add where the CPU has one, so the result can differ from the two-step formula in
    the last bit). A sampler's step is a few such sums of state-sized tensors; each separate
    product or out-of-place sum costs as much again. With ``alpha`` = 1 it is ``total + term``
    bit for bit."""
    if total.shape == term.shape and total.dtype == term.dtype:
        return total.add_(term, alpha=alpha)
    return torch.add(total, term, alpha=alpha)


def weighted_sum(weights, values: list[torch.Tensor]) -> torch.Tensor:
    """sum_j weights[j] values[j], zero weights skipped, in one pass per term: the first term's
    product (none where its weight is 1; a lone weight-1 value is returned itself), then each
    further term added into it with its weight fused (``add_into``)."""
    terms = [(w, v) for w, v in zip(weights, values, strict=True) if w != 0.0]
    if not terms:
        raise ValueError("all combination weights are zero")
    (w0, v0), rest = terms[0], terms[1:]
    if not rest:
        return v0 if w0 == 1.0 else w0 * v0
    if w0 == 1.0:
        (w1, v1), rest = rest[0], rest[1:]
        total = torch.add(v0, v1, alpha=w1)
    else:
        total = w0 * v0
    for w, v in rest:
        total = add_into(total, v, w)
    return total


def scaled_sum(a: float, x: torch.Tensor, b: float, y: torch.Tensor) -> torch.Tensor:
    """``a * x + b * y`` in two passes (the product a x, then b y added into it; ``add_into``)
    instead of three, with one state-sized temporary instead of three."""
    return add_into(a * x, y, b)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with torch on one thread, then restore the previous count.

    Small float64 tensors run faster on one thread (no pool wake-up per operation).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
