"""Exact reference quantities for the "manifold departure" study: norms, entropy, distances.

The PNDM paper (Liu et al., ICLR 2022, Sec. 3) argues that classical solvers push samples off
the region where the data concentrate ("off the manifold"), visible in their norms and in the
density they land on. This module gives the references such a claim is measured against, on
the analytic problems, exactly wherever a closed form exists:

- ``norm_band``: E|x_t|^2 and sd(|x_t|^2) under the exact marginal p_t of a Gaussian mixture;
- ``expected_nll``: the differential entropy E[-log p_t(x_t)] (closed form for one Gaussian,
  Monte Carlo with a standard error for a mixture);
- ``subspace_distance``: distance of states to the affine set that carries the data;
- ``norm_statistics`` and ``departure``: the same statistics of a batch of solver states,
  to compare like with like (an rms norm against sqrt(E|x_t|^2)).

Everything is torch float64, batch first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._tensor import DTYPE, as_time
from ..problems.mixture import GaussianMixture

__all__ = [
    "Departure",
    "NormBand",
    "departure",
    "expected_nll",
    "norm_band",
    "norm_statistics",
    "subspace_distance",
]

#: Quantile levels reported by ``norm_statistics``.
QUANTILES = (0.05, 0.5, 0.95)

_LOG_2PI_E = math.log(2.0 * math.pi) + 1.0


# -- exact norm statistics ---------------------------------------------------------------------
@dataclass(frozen=True)
class NormBand:
    """Exact statistics of |x_t|^2 under the marginal p_t, one entry per time in ``t``.

    ``center`` = sqrt(E|x_t|^2) is the reference "expected norm": the rms norm of exact
    samples converges to it. ``low``/``high`` bound the band sqrt(E|x|^2 -+ 2 sd(|x|^2)),
    the typical range of one sample's norm (a descriptive band, not a confidence interval:
    |x|^2 is not Gaussian).
    """

    t: torch.Tensor  # (T,)
    mean_sq: torch.Tensor  # (T,) E|x_t|^2
    std_sq: torch.Tensor  # (T,) sd(|x_t|^2)

    @property
    def center(self) -> torch.Tensor:
        """sqrt(E|x_t|^2), the expected (rms) norm."""
        return torch.sqrt(self.mean_sq)

    @property
    def low(self) -> torch.Tensor:
        """sqrt(max(E|x_t|^2 - 2 sd(|x_t|^2), 0))."""
        return torch.sqrt(torch.clamp(self.mean_sq - 2.0 * self.std_sq, min=0.0))

    @property
    def high(self) -> torch.Tensor:
        """sqrt(E|x_t|^2 + 2 sd(|x_t|^2))."""
        return torch.sqrt(self.mean_sq + 2.0 * self.std_sq)


def _require_mixture(problem: object, what: str) -> GaussianMixture:
    if not isinstance(problem, GaussianMixture):
        raise ValueError(
            f"{what} needs a GaussianMixture (Gaussian and Dirac included), "
            f"got {type(problem).__name__}"
        )
    return problem


def _times(problem: GaussianMixture, t, what: str) -> torch.Tensor:
    """t as a 1-D float64 tensor (a scalar becomes one entry), inside the schedule's domain."""
    t = as_time(t if isinstance(t, torch.Tensor | float | int) else torch.as_tensor(t)).to(DTYPE)
    if t.ndim > 1:
        raise ValueError(f"{what}: t must be a scalar or a 1-D tensor, got shape {tuple(t.shape)}")
    t = t.reshape(-1)
    if t.numel() == 0:
        raise ValueError(f"{what}: t is empty")
    problem.schedule.log_alpha_bar(t)  # validates finiteness and the domain (ValueError)
    return t


def _component_eigenvalues(problem: GaussianMixture, t: torch.Tensor):
    """abar (T,) and the eigenvalues c (T, K, d) of C_k(t) = abar Sigma_k + (1 - abar) I."""
    log_abar = problem.schedule.log_alpha_bar(t)
    abar, var_noise = torch.exp(log_abar), -torch.expm1(log_abar)  # expm1: exact near t = 0
    c = abar[:, None, None] * problem.evals[None] + var_noise[:, None, None]
    return abar, c


def norm_band(problem: GaussianMixture, t) -> NormBand:
    """Exact mean and standard deviation of |x_t|^2 under p_t, for a Gaussian mixture.

    Component k at time t is N(m_k, C_k) with m_k = alpha mu_k and C_k = abar Sigma_k +
    (1 - abar) I, whose eigenvalues are c_k = abar l_k + sigma^2 in the eigenbasis U_k of
    Sigma_k. For x ~ N(m, C) (Isserlis / the chi-square moments):

        E_k |x|^2   = |m|^2 + tr C
        Var_k |x|^2 = 2 tr(C^2) + 4 m^T C m,

    with tr C = sum c, tr C^2 = sum c^2 and m^T C m = abar sum_i c_i (U^T mu)_i^2. For the
    mixture E|x|^2 = sum_k w_k E_k and E|x|^4 = sum_k w_k (Var_k + E_k^2), so

        Var |x|^2 = E|x|^4 - (E|x|^2)^2 = sum_k w_k Var_k + sum_k w_k (E_k - E|x|^2)^2,

    evaluated in the second (law of total variance) form, which has no cancellation.
    ``Gaussian`` and ``Dirac`` are one-component mixtures and take the same path. ``t`` is a
    scalar or a 1-D tensor of times; anything that is not a GaussianMixture raises ValueError.
    """
    problem = _require_mixture(problem, "norm_band")
    t = _times(problem, t, "norm_band")
    abar, c = _component_eigenvalues(problem, t)  # (T,), (T, K, d)
    mu = problem.means  # (K, d)
    z = mu if problem.evecs is None else torch.einsum("kd,kde->ke", mu, problem.evecs)
    a = abar[:, None]
    mean_k = a * (mu * mu).sum(-1) + c.sum(-1)  # (T, K)
    var_k = 2.0 * (c * c).sum(-1) + 4.0 * a * (c * (z * z)[None]).sum(-1)
    w = problem.weights
    mean = (w * mean_k).sum(-1)
    var = (w * var_k).sum(-1) + (w * (mean_k - mean[:, None]) ** 2).sum(-1)
    return NormBand(t=t, mean_sq=mean, std_sq=torch.sqrt(var.clamp_min(0.0)))


# -- entropy -----------------------------------------------------------------------------------
def expected_nll(
    problem: GaussianMixture,
    t,
    *,
    n_mc: int = 20000,
    generator: torch.Generator | None = None,
    chunk: int = 8192,
) -> tuple[torch.Tensor, torch.Tensor]:
    """E[-log p_t(x_t)] for x_t ~ p_t (the differential entropy of p_t) and its standard error.

    Why: the density a sampler's output lands on is judged against what exact samples of p_t
    score on average, E[-log p_t] = H(p_t).

    - One Gaussian (``problem.K == 1``, Dirac included): exact,
      H = 0.5 sum_i log(2 pi e c_i) with c_i = abar l_i + sigma^2 the eigenvalues of
      C(t) = abar Sigma + sigma^2 I; standard error 0. A singular C (a low-rank Gaussian or a
      Dirac at abar = 1, i.e. t = 0) gives -inf, the entropy of a degenerate law.
    - A mixture: Monte Carlo with ``n_mc`` exact samples (``problem.sample_marginal``) scored
      by the exact ``problem.log_prob`` (in chunks of ``chunk`` rows, to bound memory);
      standard error = sd(-log p) / sqrt(n_mc).

    Returns two tensors of shape (T,) for a 1-D ``t`` (a scalar t counts as one time).
    """
    problem = _require_mixture(problem, "expected_nll")
    t = _times(problem, t, "expected_nll")
    if isinstance(n_mc, bool) or not isinstance(n_mc, int) or n_mc < 2:
        raise ValueError(f"expected_nll: n_mc must be an integer >= 2, got {n_mc!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"expected_nll: chunk must be a positive integer, got {chunk!r}")
    if problem.K == 1:
        _, c = _component_eigenvalues(problem, t)
        h = 0.5 * (torch.log(c[:, 0]) + _LOG_2PI_E).sum(-1)
        return h, torch.zeros_like(h)
    means, errs = [], []
    for ti in t:
        x = problem.sample_marginal(n_mc, ti, generator)
        nll = -torch.cat([problem.log_prob(xc, ti) for xc in torch.split(x, chunk)])
        means.append(nll.mean())
        errs.append(nll.std() / math.sqrt(n_mc))
    return torch.stack(means), torch.stack(errs)


# -- distances ---------------------------------------------------------------------------------
def subspace_distance(
    x: torch.Tensor, subspace: tuple[torch.Tensor, torch.Tensor], *, orth_tol: float = 1e-8
) -> torch.Tensor:
    """Euclidean distance of each row of x (B, d) to the affine set offset + span(basis).

    ``subspace`` = (offset (d,), basis (d, r)) with orthonormal columns (as the problems'
    ``subspace`` attribute stores it); r = 0 gives the distance to the point ``offset``.
    With y = x - offset the distance is |y - B B^T y|: the residual is formed explicitly
    (not as sqrt(|y|^2 - |B^T y|^2)), so a point on the set measures ~1e-16 |y|, not
    ~1e-8 |y|. Columns that are not orthonormal to ``orth_tol`` raise ValueError (the
    projection would be wrong); so do mismatched shapes. Returns shape (B,), float64.
    """
    if not isinstance(subspace, tuple | list) or len(subspace) != 2:
        raise ValueError("subspace must be a pair (offset (d,), basis (d, r))")
    offset, basis = (torch.as_tensor(v) for v in subspace)
    x = torch.as_tensor(x)
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor of shape (B, d), got {tuple(x.shape)}")
    d = x.shape[1]
    if offset.shape != (d,):
        raise ValueError(f"offset must have shape ({d},) to match x, got {tuple(offset.shape)}")
    if basis.ndim != 2 or basis.shape[0] != d or basis.shape[1] > d:
        raise ValueError(f"basis must have shape ({d}, r) with r <= {d}, got {tuple(basis.shape)}")
    x = x.detach().to(DTYPE)
    offset = offset.to(dtype=DTYPE, device=x.device)
    basis = basis.to(dtype=DTYPE, device=x.device)
    gram = basis.T @ basis
    eye = torch.eye(basis.shape[1], dtype=DTYPE, device=x.device)
    if basis.shape[1] and float((gram - eye).abs().max()) > orth_tol:
        raise ValueError("basis columns must be orthonormal (basis^T basis = I)")
    y = x - offset
    resid = y - (y @ basis) @ basis.T
    return torch.linalg.vector_norm(resid, dim=1)


# -- statistics of a batch of states -------------------------------------------------------------
def _sample_norms(x: torch.Tensor, what: str) -> torch.Tensor:
    """Per-sample Euclidean norms over all non-batch dims; a non-finite sample gives inf."""
    x = torch.as_tensor(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{what}: x must have a non-empty batch dimension, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{what}: x must be a floating-point tensor")
    flat = x.detach().to(DTYPE).reshape(x.shape[0], -1)
    norms = torch.linalg.vector_norm(flat, dim=1)
    return torch.where(torch.isfinite(flat).all(1), norms, torch.full_like(norms, math.inf))


def _quantiles(v: torch.Tensor, qs: tuple[float, ...]) -> list[float]:
    """torch.quantile's "linear" rule, except that interpolation towards +inf gives inf
    (torch.quantile gives nan), so a diverged sample in the batch stays measurable."""
    s = torch.sort(v).values
    out = []
    for q in qs:
        pos = q * (s.numel() - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        frac = pos - lo
        a, b = float(s[lo]), float(s[hi])
        out.append(a if frac == 0 or a == b else (b if math.isinf(b) else a + frac * (b - a)))
    return out


def norm_statistics(x: torch.Tensor) -> dict[str, float]:
    """Norm statistics of a batch of states x (B, ...), norms over all non-batch dims.

    Returns ``rms_norm`` = sqrt(mean_i |x_i|^2) (compare with ``NormBand.center`` =
    sqrt(E|x_t|^2): like with like), ``mean_norm`` = mean_i |x_i| (smaller than rms_norm by
    Jensen) and the quantiles ``q05``, ``q50``, ``q95`` of |x_i| (linear interpolation, as
    torch.quantile). A non-finite sample counts as norm inf, so a diverged run reports inf,
    never nan.
    """
    norms = _sample_norms(x, "norm_statistics")
    q05, q50, q95 = _quantiles(norms, QUANTILES)
    return {
        "rms_norm": float(torch.sqrt(torch.mean(norms**2))),
        "mean_norm": float(norms.mean()),
        "q05": q05,
        "q50": q50,
        "q95": q95,
    }


@dataclass(frozen=True)
class Departure:
    """How a batch of sample norms sits against the exact band, one entry per band time.

    rel_rms = rms_norm / center - 1 (0 for exact samples as B grows; > 0: pushed outward);
    frac_below / frac_above: fractions of samples with |x| < low or |x| > high.
    """

    t: torch.Tensor
    rel_rms: torch.Tensor
    frac_below: torch.Tensor
    frac_above: torch.Tensor


def departure(norms: torch.Tensor, band: NormBand) -> Departure:
    """Compare sample norms with the exact ``band``.

    ``norms`` has shape (T, B) (B sample norms at each of the band's T times) or (B,) when the
    band has a single time; non-finite norms count as +inf (above the band). Why: the departure
    claim is about where the samples' norms sit relative to those of exact samples of p_t.
    """
    norms = torch.as_tensor(norms).detach().to(DTYPE)
    T = band.t.numel()
    if norms.ndim == 1 and T == 1:
        norms = norms[None]
    if norms.ndim != 2 or norms.shape[0] != T or norms.shape[1] == 0:
        raise ValueError(
            f"norms must have shape ({T}, B) for a band with {T} time(s), got {tuple(norms.shape)}"
        )
    if bool((norms < 0).any()):
        raise ValueError("norms must be non-negative")
    norms = torch.where(torch.isnan(norms), torch.full_like(norms, math.inf), norms)
    rms = torch.sqrt(torch.mean(norms**2, dim=1))
    return Departure(
        t=band.t,
        rel_rms=rms / band.center - 1.0,
        frac_below=(norms < band.low[:, None]).to(DTYPE).mean(1),
        frac_above=(norms > band.high[:, None]).to(DTYPE).mean(1),
    )
