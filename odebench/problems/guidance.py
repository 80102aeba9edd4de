"""Exact class-conditional and classifier-free-guided eps of a Gaussian mixture.

A mixture's components carry classes (``GaussianMixture.classes``: each component its own
class by default; digits-data groups its 1797 images by digit). Conditioned on class c the
data law is the mixture restricted to the components of c (weights renormalised), so its eps
is the mixture's eps with the posterior P(k | x_t) replaced by P(k | x_t, c), the posterior
restricted to c. Both are exact.

Classifier-free guidance (Ho & Salimans 2022) with scale w evaluates

    eps_w = eps_null + w (eps_c - eps_null),

w = 0 the unconditional eps, w = 1 the conditional one, w > 1 guided. eps (and x0) are
linear in the posterior weights, so eps_w is the mixture's eps with the weights
post_null + w (post_c - post_null) (negative for w > 1): exact guided eps for any w, to
measure what guidance does to a sampler with no network error in the way.
"""

from __future__ import annotations

import torch

from .._tensor import DTYPE, as_time
from .mixture import GaussianMixture


def class_labels(n: int, num_classes: int) -> torch.Tensor:
    """The labels odebench's studies condition on: sample i gets class i mod ``num_classes``
    (balanced and deterministic, so a cell's labels do not depend on its seed)."""
    return torch.arange(n) % num_classes


class GuidedMixture:
    """``model(x, t) -> eps_w`` of ``mixture`` for per-sample ``labels`` and guidance ``scale``.

    >>> import torch, odebench as ob
    >>> prob = ob.problems.get("gmm-2d")
    >>> model = GuidedMixture(prob, torch.tensor([0, 1]), scale=0.0)
    >>> x = torch.randn(2, 2, dtype=torch.float64)
    >>> bool(torch.allclose(model(x, 0.5), prob.eps(x, 0.5)))
    True
    """

    def __init__(self, mixture: GaussianMixture, labels: torch.Tensor, scale: float = 1.0):
        if not isinstance(mixture, GaussianMixture):
            raise ValueError(f"guidance needs a Gaussian mixture problem, got {mixture!r}")
        labels = torch.as_tensor(labels)
        if labels.ndim != 1 or labels.is_floating_point():
            raise ValueError("labels must be a 1-d tensor of integer classes")
        known = torch.unique(mixture.classes)
        if not bool(torch.isin(labels, known).all()):
            raise ValueError(
                f"{mixture.name}: labels must be among its classes "
                f"{int(known.min())}..{int(known.max())}"
            )
        if (
            isinstance(scale, bool)
            or not isinstance(scale, int | float)
            or not 0 <= scale < float("inf")
        ):
            raise ValueError(f"guidance scale must be a finite number >= 0, got {scale!r}")
        self.problem, self.labels, self.scale = mixture, labels, float(scale)
        self.schedule = mixture.schedule
        self.prediction = "eps"
        self.name = f"{mixture.name} guided w={self.scale:g}"

    def weights(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor):
        """(z, c, guided posterior weights (B, K)) at one time t for rows with ``labels``."""
        mix = self.problem
        z, c, log_norm = mix._terms(x, t)
        logits = mix.log_weights + log_norm
        post = torch.softmax(logits, dim=-1)
        if self.scale == 0.0:
            return z, c, post
        member = mix.classes[None, :] == labels[:, None]
        post_c = torch.softmax(logits.masked_fill(~member, -torch.inf), dim=-1)
        return z, c, post + self.scale * (post_c - post)

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        """The guided eps at (x, t)."""
        return self._per_time(self.problem._eps_from, x, t)

    def x0(self, x: torch.Tensor, t) -> torch.Tensor:
        """The guided data prediction x0_null + w (x0_c - x0_null)."""
        return self._per_time(self.problem._x0_from, x, t)

    def _per_time(self, combine, x: torch.Tensor, t) -> torch.Tensor:
        x = self.problem._check_x(x)
        if x.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"{self.name}: {self.labels.shape[0]} labels for a batch of {x.shape[0]}"
            )
        t = as_time(t)
        out_dtype, x = x.dtype, x.to(DTYPE)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},)")
        out = torch.empty_like(x)
        values, inverse = torch.unique(t.to(DTYPE), return_inverse=True)
        for i, v in enumerate(values):
            rows = inverse == i
            z, c, w = self.weights(x[rows], v, self.labels[rows])
            out[rows] = combine(z, c, w, v)
        return out.to(out_dtype)

    def __repr__(self) -> str:
        return f"<GuidedMixture {self.name!r}>"
