"""One Gaussian (any mean and covariance, singular allowed) and the Dirac point mass,
both with the exact probability-flow map between any two times."""

from __future__ import annotations

import torch

from .._tensor import DTYPE, as_time
from ..schedules import Schedule
from .base import real_tensor
from .mixture import GaussianMixture


class Gaussian(GaussianMixture):
    """N(mean, cov) under a VP schedule. ``cov``: (d, d) full, (d,) diagonal, or a scalar.

    The PF-ODE is linear here. With cov = U diag(l) U^T and y = U^T (x - alpha_t mean), each
    coordinate moves as y_i(t) = y_i(s) sqrt(c_i(t) / c_i(s)), c_i = abar l_i + 1 - abar
    (docs/design/paper.md, "Closed forms"); a zero eigenvalue (data on a subspace) collapses
    y_i to 0 as t -> 0.
    """

    covariance_argument = "cov"

    def __init__(self, mean, cov, schedule: Schedule | str = "linear", name: str = "gaussian"):
        mean = real_tensor(mean, "mean")
        if mean.ndim != 1 or mean.shape[0] < 1:
            raise ValueError(f"mean must have shape (d,) with d >= 1, got {tuple(mean.shape)}")
        cov = real_tensor(cov, "cov")
        d = mean.shape[0]
        if cov.ndim == 0:
            variances = cov.reshape(1)
        elif cov.shape in {(d,), (d, d)}:
            variances = cov[None]
        else:
            raise ValueError(f"cov must be a scalar, ({d},) or ({d}, {d}), got {tuple(cov.shape)}")
        super().__init__(mean[None], variances, torch.ones(1, dtype=DTYPE), schedule, name)
        self.mean = mean

    @property
    def cov(self) -> torch.Tensor:
        """The data covariance as a (d, d) matrix."""
        evecs = self.evecs[0] if self.evecs is not None else torch.eye(self.dim, dtype=DTYPE)
        return evecs @ torch.diag(self.evals[0]) @ evecs.T

    def flow(self, x_s: torch.Tensor, s, t) -> torch.Tensor:
        """The exact PF-ODE flow map: the state at time t of the trajectory through x_s at s."""
        x_s = self._check_x(x_s)
        s, t = as_time(s), as_time(t)
        if s.ndim or t.ndim:
            raise ValueError("flow takes scalar times s and t")
        sched = self.schedule
        c_s = sched.alpha_bar(s) * self.evals[0] + sched.sigma(s) ** 2
        c_t = sched.alpha_bar(t) * self.evals[0] + sched.sigma(t) ** 2
        y = x_s.to(DTYPE) - sched.alpha(s) * self.mean
        if self.evecs is not None:
            y = y @ self.evecs[0]
        y = y * torch.sqrt(c_t / c_s)
        if self.evecs is not None:
            y = y @ self.evecs[0].T
        return (sched.alpha(t) * self.mean + y).to(x_s.dtype)


class Dirac(Gaussian):
    """All data at one point x0: eps(x, t) = (x - alpha x0) / sigma.

    Along an exact trajectory x_t = alpha_t x0 + sigma_t n the noise n is constant, so the
    DDIM transfer with the true eps is exact (Property 3.1 of Liu et al. 2022).
    """

    def __init__(self, point, schedule: Schedule | str = "linear", name: str = "dirac"):
        super().__init__(real_tensor(point, "point"), 0.0, schedule, name)
