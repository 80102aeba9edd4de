"""Gaussian mixtures under any schedule, with exact eps, x0, score and density.

Component k at time t is N(alpha mu_k, C_k(t)) with C_k(t) = alpha^2 Sigma_k + sigma^2 I
(alpha^2 = abar and sigma^2 = 1 - abar for VP).
C_k(t) shares the eigenvectors of Sigma_k = U_k diag(l_k) U_k^T for every t, with eigenvalues
c_k = alpha^2 l_k + sigma^2. So Sigma_k is diagonalised once at construction and each evaluation
costs one batched rotation: no per-t factorisation, and singular (low-rank) Sigma_k are exact,
since c_k >= sigma^2 > 0 for every t > 0. (This replaces a per-t Cholesky factorisation of
C_k(t): the same stability, at a fraction of the cost.) Posterior weights use log-sum-exp.

    score(x) = -sum_k w_k(x) C_k^{-1} (x - alpha mu_k),   eps = -sigma * score,
    E[x0 | x] = sum_k w_k(x) (mu_k + alpha Sigma_k C_k^{-1} (x - alpha mu_k)).

The x0 form is evaluated directly, not as (x - sigma eps) / alpha: it stays exact where alpha
vanishes (t = 1 under flow matching, where it is the data mean).
"""

from __future__ import annotations

import math

import torch

from .._tensor import DTYPE, as_time
from ..schedules import Schedule
from .base import Problem, real_tensor

KINDS = ("isotropic", "diagonal", "full")


class GaussianMixture(Problem):
    """sum_k w_k N(mu_k, Sigma_k) with isotropic (K,), diagonal (K, d) or full (K, d, d) Sigma_k.

    >>> import torch, odebench as ob
    >>> gmm = ob.problems.GaussianMixture(torch.tensor([[0.0], [2.0]]), torch.tensor([0.1, 0.2]))
    >>> gmm.kind, gmm.dim
    ('isotropic', 1)
    """

    #: The constructor argument errors about the covariances name.
    covariance_argument = "variances"

    def __init__(
        self, means, variances, weights=None, schedule: Schedule | str = "linear", name: str = "gmm"
    ):
        super().__init__(schedule)
        means = real_tensor(means, "means")
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}")
        K, d = means.shape
        if K < 1 or d < 1:
            raise ValueError(
                f"means must have shape (K, d) with K >= 1 components and d >= 1, "
                f"got {tuple(means.shape)}"
            )
        variances = real_tensor(variances, self.covariance_argument)
        weights = (
            torch.full((K,), 1.0 / K, dtype=DTYPE)
            if weights is None
            else real_tensor(weights, "weights")
        )
        if weights.shape != (K,):
            raise ValueError(f"weights must have shape ({K},), got {tuple(weights.shape)}")
        if not bool((weights > 0).all()) or abs(float(weights.sum()) - 1.0) > 1e-6:
            raise ValueError("weights must be positive and sum to 1")
        weights = weights / weights.sum()  # exact normalisation (float32 inputs sum to 1 +- 1e-7)
        self.name, self.dim, self.K = name, int(d), int(K)
        self.means, self.weights = means, weights
        self.log_weights = torch.log(weights)
        self.kind, self.evals, self.evecs = _decompose(variances, K, d, self.covariance_argument)
        self.variances = variances
        #: The class of each component (conditioning labels, see ``problems.guidance``): by
        #: default every component is its own class; digits-data groups images by digit.
        self.classes = torch.arange(K)

    # -- the per-time core ------------------------------------------------------------------
    def _offsets(self, x: torch.Tensor, t: torch.Tensor):
        """Rotated offsets z (B,K,d) and eigenvalues c (K,d) of C_k(t)."""
        alpha, abar, var_noise = self.schedule.signal_and_noise(t)
        c = abar * self.evals + var_noise
        diff = x[:, None, :] - alpha * self.means[None]
        z = diff if self.evecs is None else torch.einsum("bkd,kde->bke", diff, self.evecs)
        return z, c

    def _terms(self, x: torch.Tensor, t: torch.Tensor):
        """Rotated offsets z (B,K,d), eigenvalues c (K,d) of C_k(t), log N_k(x) (B,K)."""
        z, c = self._offsets(x, t)
        maha = (z * z / c).sum(-1)
        log_norm = -0.5 * (maha + torch.log(c).sum(-1) + self.dim * math.log(2.0 * math.pi))
        return z, c, log_norm

    def _log_prob_at(self, x, t):
        _, _, log_norm = self._terms(x, t)
        return torch.logsumexp(self.log_weights + log_norm, dim=-1)

    def _eps_at(self, x, t):
        if self.K == 1:  # one Gaussian: the posterior is 1 (softmax of one term, exactly)
            return self._eps_from(*self._offsets(x, t), None, t)
        z, c, log_norm = self._terms(x, t)
        post = torch.softmax(self.log_weights + log_norm, dim=-1)  # (B, K)
        return self._eps_from(z, c, post, t)

    def _eps_from(self, z, c, post, t):
        """eps = sigma sum_k post_k C_k^{-1} (x - alpha mu_k): linear in the weights ``post``
        (None: one component, weight 1; 1 * z is z, so the bits are the same)."""
        w = (z if post is None else post[..., None] * z) / c  # C_k^{-1} (x - alpha mu_k), rotated
        if self.evecs is not None:
            w = torch.einsum("bke,kde->bkd", w, self.evecs)
        return self.schedule.sigma(t) * w.sum(1)

    def _x0_at(self, x, t):
        z, c, log_norm = self._terms(x, t)
        post = torch.softmax(self.log_weights + log_norm, dim=-1)  # (B, K)
        return self._x0_from(z, c, post, t)

    def _x0_from(self, z, c, post, t):
        """E[x0 | x_t] = sum_k post_k (mu_k + alpha Sigma_k C_k^{-1} (x - alpha mu_k))."""
        w = post[..., None] * self.schedule.alpha(t) * self.evals * z / c
        if self.evecs is not None:
            w = torch.einsum("bke,kde->bkd", w, self.evecs)
        return w.sum(1) + post @ self.means

    # -- public --------------------------------------------------------------------------------
    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        return _per_time(self._eps_at, self._check_x(x), t)

    def x0_pred(self, x: torch.Tensor, t) -> torch.Tensor:
        """E[x_0 | x_t = x], evaluated directly (exact where alpha = 0)."""
        return _per_time(self._x0_at, self._check_x(x), t)

    def log_prob(self, x: torch.Tensor, t) -> torch.Tensor:
        return _per_time(self._log_prob_at, self._check_x(x), t)

    def posterior(self, x: torch.Tensor, t) -> torch.Tensor:
        """Responsibilities P(k | x_t = x), shape (B, K)."""

        def at(x, t):
            _, _, log_norm = self._terms(x, t)
            return torch.softmax(self.log_weights + log_norm, dim=-1)

        return _per_time(at, self._check_x(x), t)

    @property
    def data_second_moment(self) -> float:
        return float((self.weights * ((self.means**2).sum(-1) + self.evals.sum(-1))).sum())

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=DTYPE) * self.evals[k].sqrt()
        if self.evecs is not None:  # rotate per component: no (n, d, d) gather
            for j in range(self.K):
                pick = k == j
                z[pick] = z[pick] @ self.evecs[j].T
        return self.means[k] + z


def _decompose(variances: torch.Tensor, K: int, d: int, name: str):
    """Covariance kind, eigenvalues (K, d) and eigenvectors (K, d, d) or None."""
    if variances.shape == (K,):
        kind, evals, evecs = "isotropic", variances[:, None].expand(K, d).clone(), None
    elif variances.shape == (K, d):
        kind, evals, evecs = "diagonal", variances.clone(), None
    elif variances.shape == (K, d, d):
        if not torch.allclose(variances, variances.transpose(-1, -2), rtol=1e-10, atol=1e-12):
            raise ValueError(f"{name}: full covariances must be symmetric")
        kind = "full"
        evals, evecs = torch.linalg.eigh(variances)
    else:
        raise ValueError(
            f"{name} must have shape ({K},), ({K}, {d}) or ({K}, {d}, {d}), "
            f"got {tuple(variances.shape)}"
        )
    scale = float(evals.abs().max()) if evals.numel() else 0.0
    if float(evals.min()) < -1e-10 * max(scale, 1.0):
        raise ValueError(
            f"{name} must be >= 0 (covariances positive semi-definite; zero is a point mass)"
        )
    return kind, evals.clamp_min(0.0), evecs


def _per_time(fn, x: torch.Tensor, t):
    """Evaluate fn(x, t) for a scalar t, or group a per-sample t (B,) by its distinct values."""
    t = as_time(t)
    out_dtype = x.dtype
    x = x.to(DTYPE)
    if t.ndim == 0:
        return fn(x, t.to(DTYPE)).to(out_dtype)
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    values, inverse = torch.unique(t.to(DTYPE), return_inverse=True)
    outs = [fn(x[inverse == i], v) for i, v in enumerate(values)]
    result = torch.empty((x.shape[0], *outs[0].shape[1:]), dtype=DTYPE)
    for i, out in enumerate(outs):
        result[inverse == i] = out
    return result.to(out_dtype)
