"""What an analytic diffusion problem provides: the exact eps and everything derived from it."""

from __future__ import annotations

import copy
import reprlib
from abc import ABC, abstractmethod

import torch

from .._tensor import DTYPE, as_time, per_sample
from ..schedules import Schedule
from ..schedules import get as get_schedule
from ..schedules.prediction import exact_prediction


class Problem(ABC):
    """Data distribution p_0 in R^dim diffused by a schedule: x_t = alpha x_0 + sigma n.

    eps(x, t) = E[n | x_t = x] is exact; score = -eps / sigma; x0-prediction =
    (x - sigma eps) / alpha. Inputs are batches (B, dim); t is a float, a 0-d tensor or (B,).
    """

    name: str = "problem"
    dim: int
    #: (offset, basis): the data lie on or near offset + span(basis columns); None if no such set.
    subspace: tuple[torch.Tensor, torch.Tensor] | None = None

    def __init__(self, schedule: Schedule | str = "linear"):
        self.schedule = get_schedule(schedule)

    # -- exact quantities subclasses provide ---------------------------------------------------
    @abstractmethod
    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        """E[noise | x_t = x], exact."""

    @abstractmethod
    def log_prob(self, x: torch.Tensor, t) -> torch.Tensor:
        """log p_t(x), shape (B,)."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples of the data distribution p_0 (no noise)."""

    @property
    @abstractmethod
    def data_second_moment(self) -> float:
        """E|x_0|^2 under the data distribution."""

    # -- derived ---------------------------------------------------------------------------
    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """grad_x log p_t(x) = -eps / sigma."""
        t = as_time(t, like=x)
        return -self.eps(x, t) / per_sample(self.schedule.sigma(t), x)

    def x0_pred(self, x: torch.Tensor, t) -> torch.Tensor:
        """E[x_0 | x_t = x] = (x - sigma eps) / alpha (Tweedie)."""
        t = as_time(t, like=x)
        s = self.schedule
        return (x - per_sample(s.sigma(t), x) * self.eps(x, t)) / per_sample(s.alpha(t), x)

    def prediction(self, kind: str):
        """The exact model output of ``kind`` ("eps", "x0", "v", "velocity", "denoiser"), as
        fn(x, t); see :mod:`odebench.schedules.prediction`."""
        return exact_prediction(self.eps, self.x0_pred, kind, self.schedule)

    def second_moment(self, t) -> torch.Tensor:
        """E|x_t|^2 = alpha^2 E|x_0|^2 + sigma^2 dim, exact (abar and 1 - abar for VP)."""
        t = as_time(t)
        _, abar, noise = self.schedule.signal_and_noise(t)
        return abar * self.data_second_moment + noise * self.dim

    def sample_marginal(self, n: int, t, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples of p_t: alpha x_0 + sigma n."""
        t = as_time(t)
        if t.ndim != 0:
            raise ValueError("sample_marginal takes one time t")
        x0 = self.sample(n, generator)
        noise = torch.randn(x0.shape, generator=generator, dtype=DTYPE)
        return self.schedule.alpha(t) * x0 + self.schedule.sigma(t) * noise

    def with_schedule(self, schedule: Schedule | str) -> Problem:
        """The same data distribution under another schedule."""
        other = copy.copy(self)
        other.schedule = get_schedule(schedule)
        return other

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"{self.name}: x must be a floating-point tensor")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"{self.name}: x must have shape (batch, {self.dim}), got {tuple(x.shape)}"
            )
        return x

    def __repr__(self) -> str:
        cls, sched = type(self).__name__, self.schedule.name
        return f"<{cls} {self.name!r} dim={self.dim} schedule={sched!r}>"


def real_tensor(value, name: str) -> torch.Tensor:
    """``value`` as a float64 tensor of finite numbers; ValueError naming ``name`` otherwise."""
    if isinstance(value, str | bytes):
        raise ValueError(f"{name} must be numbers, got the string {reprlib.repr(value)}")
    try:
        out = torch.as_tensor(value, dtype=DTYPE)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be numbers, got {reprlib.repr(value)}") from None
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        where = tuple(torch.nonzero(bad)[0].tolist())
        raise ValueError(f"{name} must be finite, got {float(out[where])} at index {where}")
    return out
