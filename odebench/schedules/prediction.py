"""What a model predicts, and the exact conversions between predictions, under any schedule.

With x = alpha x0 + sigma eps (one time t, one schedule) a network may predict

- ``"eps"``: the noise eps;
- ``"x0"``: the data x0 (diffusers' "sample");
- ``"v"``: alpha eps - sigma x0 (Salimans & Ho 2022; diffusers' "v_prediction");
- ``"velocity"``: dx/dt of the interpolant, alpha' x0 + sigma' eps (flow matching: z - x0;
  diffusers' "flow_prediction");
- ``"denoiser"``: EDM / k-diffusion's D(y; s) with y = x / alpha and s = sigma / alpha, which
  returns x0 (Karras et al. 2022). The function is called as fn(x / alpha, sigma / alpha).

Each pair (x, prediction) determines (x0, eps) by a 2x2 linear solve; these are written out
here once. The determinants are alpha^2 + sigma^2 for "v" and alpha sigma' - sigma alpha'
= alpha c_eps for "velocity" (1 under flow matching). Where a conversion divides by a quantity
that vanishes (eps from x0 where sigma = 0, x0 from eps where alpha = 0) it is ill-posed, and
it raises ValueError rather than return nan; the direct forms (``to_x0`` of an "x0",
"velocity" or "denoiser" output) stay exact there.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._tensor import as_time, per_sample
from .base import Schedule

KINDS = ("eps", "x0", "v", "velocity", "denoiser")

Prediction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown prediction kind {kind!r} (choose from {', '.join(KINDS)})")
    return kind


def _coefficients(sched: Schedule, t: torch.Tensor, x: torch.Tensor):
    """alpha, sigma, alpha', sigma' at t, shaped to broadcast against x."""
    t = as_time(t, like=x)
    out = (sched.alpha(t), sched.sigma(t), sched.alpha_deriv(t), sched.sigma_deriv(t))
    return tuple(per_sample(c.to(x.dtype), x) for c in out)


def call_native(fn: Prediction, kind: str, sched: Schedule, x: torch.Tensor, t) -> torch.Tensor:
    """Evaluate fn at (x, t) as its kind expects (the denoiser sees x / alpha, sigma / alpha)."""
    if kind != "denoiser":
        return fn(x, t)
    t = as_time(t, like=x)
    alpha = sched.alpha(t).to(x.dtype)
    return fn(x / per_sample(alpha, x), sched.sigma_tilde(t).to(x.dtype))


def to_eps(kind: str, out: torch.Tensor, x: torch.Tensor, t, sched: Schedule) -> torch.Tensor:
    """eps from the prediction ``out`` of ``kind`` at (x, t)."""
    a, s, da, ds = _coefficients(sched, as_time(t), x)
    if check_kind(kind) == "eps":
        return out
    if kind in ("x0", "denoiser"):
        _refuse_zero(s, f"eps from an {kind} prediction", "sigma")
        return (x - a * out) / s
    if kind == "v":
        return (a * out + s * x) / (a * a + s * s)
    return (a * out - da * x) / (a * ds - s * da)


def to_x0(kind: str, out: torch.Tensor, x: torch.Tensor, t, sched: Schedule) -> torch.Tensor:
    """x0 from the prediction ``out`` of ``kind`` at (x, t)."""
    a, s, da, ds = _coefficients(sched, as_time(t), x)
    if check_kind(kind) in ("x0", "denoiser"):
        return out
    if kind == "eps":
        _refuse_zero(a, "x0 from an eps prediction", "alpha")
        return (x - s * out) / a
    if kind == "v":
        return (a * x - s * out) / (a * a + s * s)
    return (ds * x - s * out) / (a * ds - s * da)


def _refuse_zero(c: torch.Tensor, what: str, name: str) -> None:
    if bool((c == 0).any()):
        raise ValueError(f"{what} is 0 / 0 where {name} = 0: the prediction does not determine it")


def from_pair(kind: str, x0: torch.Tensor, eps: torch.Tensor, x: torch.Tensor, t, sched: Schedule):
    """The prediction of ``kind`` given both x0 and eps at (x, t) (no division: exact
    everywhere, the ends included)."""
    a, s, da, ds = _coefficients(sched, as_time(t), x)
    if check_kind(kind) == "eps":
        return eps
    if kind in ("x0", "denoiser"):
        return x0
    if kind == "v":
        return a * eps - s * x0
    return da * x0 + ds * eps


def exact_prediction(eps_fn: Prediction, x0_fn: Prediction, kind: str, sched: Schedule):
    """fn(x, t) returning the prediction of ``kind`` from exact eps and x0 functions; a
    "denoiser" is returned as EDM calls it, fn(x / alpha, sigma / alpha)."""
    if check_kind(kind) == "eps":
        return eps_fn
    if kind == "x0":
        return x0_fn
    if kind == "denoiser":

        def denoiser(y: torch.Tensor, sigma_tilde) -> torch.Tensor:
            t = sched.t_from_sigma_tilde(as_time(sigma_tilde).to(torch.float64))
            x = y * per_sample(sched.alpha(t).to(y.dtype), y)
            return x0_fn(x, t)

        return denoiser

    def predict(x: torch.Tensor, t) -> torch.Tensor:
        return from_pair(kind, x0_fn(x, t), eps_fn(x, t), x, t, sched)

    return predict
