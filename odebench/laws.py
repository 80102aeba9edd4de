"""Exact output laws of samplers on Gaussian data, without Monte Carlo.

With Gaussian data the exact eps is affine in x (``odebench.problems.Gaussian``), so every
step of every sampler in odebench, stochastic or not, is an affine map of the state, the
kept history and the step's noise. Started from the exact marginal x_T ~ N(m_T, L_T L_T^T),
its output is therefore

    X = c + A x_T + sum_k B_k xi_k,     xi_k ~ N(0, I) independent,

a Gaussian N(c + A m_T, F F^T) with F = [A L_T, B_1, ..., B_K]. ``exact_law`` reads c, the
columns of A L_T and of every B_k off ONE batched run of the sampler itself: row 0 starts at
m_T with no noise, row j at m_T + L_T e_j, and each further row at m_T with noise e_j at one
draw k and zero at every other (``ProbeNoise``). The rows never interact (the models act row
by row), so the differences to row 0 are the columns of F, exact to round-off. Weak errors
are then exact distances between Gaussians (``weak_error``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._tensor import DTYPE
from .metrics import gaussian_kl, gaussian_w2, psd_factor
from .problems import Gaussian
from .solvers import Solver, solve
from .solvers import get as get_solver


@dataclass(frozen=True)
class GaussianLaw:
    """N(mean, factor factor^T): a law with its covariance given by a factor of any width."""

    mean: torch.Tensor
    factor: torch.Tensor

    @property
    def cov(self) -> torch.Tensor:
        return self.factor @ self.factor.T


class ProbeNoise:
    """A noise source for ``exact_law``: rows ``first`` onwards receive, at draw k, the unit
    vector e_j in the row (first + k d + j) and zero elsewhere; earlier rows get zero."""

    def __init__(self, first: int, draws: int, dim: int):
        self.first, self.draws, self.dim, self.calls = first, draws, dim, 0

    def __call__(self, x: torch.Tensor, t, s) -> torch.Tensor:
        k = self.calls
        if k >= self.draws:
            raise ValueError(f"the sampler drew noise more than {self.draws} times")
        self.calls += 1
        xi = torch.zeros_like(x)
        rows = self.first + k * self.dim + torch.arange(self.dim)
        xi[rows, torch.arange(self.dim)] = 1.0
        return xi


def marginal(problem: Gaussian, t: float) -> GaussianLaw:
    """The exact marginal p_t = N(alpha m, alpha^2 Sigma + sigma^2 I), factor [alpha L, sigma I]."""
    sched = problem.schedule
    alpha, sigma = float(sched.alpha(t)), float(sched.sigma(t))
    data = psd_factor(problem.cov)
    eye = torch.eye(problem.dim, dtype=DTYPE)
    return GaussianLaw(alpha * problem.mean, torch.cat([alpha * data, sigma * eye], dim=1))


def exact_law(
    solver: str | Solver,
    problem: Gaussian,
    ts: torch.Tensor,
    model=None,
    start: GaussianLaw | None = None,
    **options,
) -> GaussianLaw:
    """The exact law of ``solver``'s output on ``ts`` from x_T ~ ``start`` (default the exact
    marginal p_{ts[0]}) of a Gaussian problem (any schedule). ``model`` (default the exact
    eps) must be affine in x."""
    if not isinstance(problem, Gaussian):
        raise ValueError("exact laws need Gaussian data (odebench.problems.Gaussian or Dirac)")
    solver = get_solver(solver, **options) if isinstance(solver, str) else solver
    ts = torch.as_tensor(ts, dtype=DTYPE)
    start = start if start is not None else marginal(problem, float(ts[0]))
    d = problem.dim
    width = start.factor.shape[1]
    draws = len(ts) - 1 if solver.stochastic else 0
    rows = [start.mean] + [start.mean + start.factor[:, j] for j in range(width)]
    rows += [start.mean] * (draws * d)
    x_T = torch.stack(rows)
    extra = {"noise": ProbeNoise(1 + width, draws, d)} if solver.stochastic else {}
    out = solve(solver, model or problem.eps, problem.schedule, x_T, ts, **extra).x
    if not bool(torch.isfinite(out).all()):
        nan = torch.full((d,), math.nan, dtype=DTYPE)
        return GaussianLaw(nan, torch.full((d, 1), math.nan, dtype=DTYPE))
    return GaussianLaw(out[0], (out[1:] - out[0]).T)


@dataclass(frozen=True)
class WeakError:
    """Distances between a sampler's exact output law and the exact marginal it targets."""

    w2: float
    kl: float
    mean_error: float


def weak_error(law: GaussianLaw, target: GaussianLaw) -> WeakError:
    """Exact W2, KL(law || target) (inf where law's covariance is singular and the target's
    is not) and the distance between the means."""
    return WeakError(
        gaussian_w2(law.mean, law.factor, target.mean, target.factor),
        gaussian_kl(law.mean, law.cov, target.mean, target.cov),
        float((law.mean - target.mean).norm()),
    )
