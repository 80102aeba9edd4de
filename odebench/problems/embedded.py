"""The embedded problems that need no arguments: ``odebench.problems.get("gmm-2d")``.

Their parameters are fixed here (drawn once from numpy's PCG64 with a fixed seed), so every
run of every machine sees the same problem.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .._digits import digits_arrays
from .._tensor import DTYPE
from ..schedules import Schedule
from .base import Problem
from .gaussian import Dirac, Gaussian
from .mixture import GaussianMixture


def _orthonormal(rng: np.random.Generator, d: int, r: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, r)))
    return q


def gmm_2d(schedule: Schedule | str = "linear") -> GaussianMixture:
    """Five narrow, well separated modes in the plane (diagonal covariances, std 0.08..0.14)."""
    means = [[1.5, 1.5], [-1.5, 1.5], [-1.5, -1.5], [1.5, -1.5], [0.0, 0.0]]
    variances = [[0.01, 0.02], [0.02, 0.01], [0.01, 0.01], [0.015, 0.0064], [0.0064, 0.0064]]
    weights = [0.25, 0.2, 0.2, 0.15, 0.2]
    return GaussianMixture(means, variances, weights, schedule, name="gmm-2d")


def gmm_64d(schedule: Schedule | str = "linear") -> GaussianMixture:
    """Eight modes in R^64 concentrated near a 4-dimensional subspace.

    Means lie in the subspace span(B); each full covariance is B S_k B^T + 1e-4 I with a random
    rotation S_k of eigenvalues in [0.02, 0.1]: the data sit within ~0.01 of span(B).
    """
    rng = np.random.default_rng(20220209)
    d, r, K = 64, 4, 8
    basis = _orthonormal(rng, d, r)
    means = (basis @ (1.5 * rng.standard_normal((r, K)))).T
    covs = []
    for _ in range(K):
        rot = _orthonormal(rng, r, r)
        inner = rot @ np.diag(rng.uniform(0.02, 0.1, r)) @ rot.T
        covs.append(basis @ inner @ basis.T + 1e-4 * np.eye(d))
    covs = np.array(covs)
    covs = 0.5 * (covs + covs.transpose(0, 2, 1))
    weights = rng.dirichlet(5.0 * np.ones(K))
    gmm = GaussianMixture(means, covs, weights, schedule, name="gmm-64d")
    gmm.subspace = (torch.zeros(d, dtype=DTYPE), torch.as_tensor(basis, dtype=DTYPE))
    return gmm


def gaussian_lowrank(schedule: Schedule | str = "linear") -> Gaussian:
    """N(mu, B diag(1, 0.5, 0.25) B^T) in R^16: rank 3, the data on a 3-dim affine subspace."""
    rng = np.random.default_rng(1729)
    d = 16
    basis = _orthonormal(rng, d, 3)
    cov = basis @ np.diag([1.0, 0.5, 0.25]) @ basis.T
    mean = 0.5 * rng.standard_normal(d)
    g = Gaussian(mean, 0.5 * (cov + cov.T), schedule, name="gaussian-lowrank")
    g.subspace = (torch.as_tensor(mean, dtype=DTYPE), torch.as_tensor(basis, dtype=DTYPE))
    return g


def dirac_2d(schedule: Schedule | str = "linear") -> Dirac:
    """A point mass at (0.5, -1.0): every pseudo method is exact on it (Property 3.1)."""
    dirac = Dirac([0.5, -1.0], schedule, name="dirac")
    dirac.subspace = (dirac.mean, torch.zeros(2, 0, dtype=DTYPE))
    return dirac


def digits_data(schedule: Schedule | str = "ddpm-linear-1000") -> GaussianMixture:
    """The empirical distribution of scikit-learn's 1797 handwritten 8x8 digits, pixel / 8 - 1.

    A mixture of 1797 point masses in R^64, so its eps is exact too: the posterior-weighted
    noise of the "memorising" denoiser. The shipped digits UNet was trained on exactly these
    images (with the "ddpm-linear-1000" table), so studies can run it against known marginals.
    Needs scikit-learn (the data ship with it; nothing is downloaded).
    """
    pixels, labels = digits_arrays()
    images = torch.tensor(pixels, dtype=DTYPE) / 8.0 - 1.0
    k = images.shape[0]
    mix = GaussianMixture(images, torch.zeros(k, dtype=DTYPE), None, schedule, name="digits-data")
    mix.classes = torch.tensor(labels, dtype=torch.int64)  # the digit 0..9 of each
    return mix


EMBEDDED: dict[str, tuple[Callable[..., Problem], str]] = {
    "gmm-2d": (gmm_2d, "5 narrow, well separated modes in 2-d (diagonal covariances)"),
    "gmm-64d": (gmm_64d, "8 modes in 64-d near a 4-d subspace (full covariances)"),
    "gaussian-lowrank": (gaussian_lowrank, "rank-3 Gaussian in 16-d, exact flow"),
    "dirac": (dirac_2d, "point mass in 2-d; pseudo methods are exact on it"),
    "digits-data": (digits_data, "sklearn's 1797 8x8 digits as point masses in 64-d"),
}
