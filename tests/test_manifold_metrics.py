"""Manifold-departure references: exact norm bands, entropy, subspace distances, norm statistics.

The exact formulas are checked three independent ways: against Monte Carlo (within 3 standard
errors), against numerical integration of the exact density on a grid (to ~1e-8), and against
the same moments assembled from full covariance matrices instead of eigenvalues. Cases have
non-zero means, so a wrong factor in 4 m^T C m fails.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import odebench as ob
from odebench.metrics import (
    NormBand,
    departure,
    expected_nll,
    norm_band,
    norm_statistics,
    subspace_distance,
)
from odebench.problems import Dirac, Gaussian, GaussianMixture, QuadratureField

D = torch.float64
LOG_2PI_E = math.log(2 * math.pi * math.e)


def random_gmm(seed: int, d: int, K: int, kind: str) -> GaussianMixture:
    """Means well away from 0 (so m^T C m matters), variances of order 0.01..1."""
    g = torch.Generator().manual_seed(seed)
    means = 1.0 + 1.5 * torch.randn(K, d, generator=g, dtype=D)
    if kind == "isotropic":
        var = 10 ** (-2 + 2 * torch.rand(K, generator=g, dtype=D))
    elif kind == "diagonal":
        var = 10 ** (-2 + 2 * torch.rand(K, d, generator=g, dtype=D))
    else:  # full and anisotropic, rank d - 1 for the first component (singular allowed)
        A = torch.randn(K, d, d, generator=g, dtype=D)
        A[0, :, -1] = 0.0
        var = 0.4 * A @ A.transpose(-1, -2)
    w = torch.rand(K, generator=g, dtype=D) + 0.2
    return GaussianMixture(means, var, w / w.sum(), name=f"gmm-{kind}")


def full_covariances(p: GaussianMixture) -> torch.Tensor:
    """Sigma_k as (K, d, d) matrices, rebuilt from the constructor's ``variances``."""
    v, d = p.variances, p.dim
    if p.kind == "isotropic":
        return v[:, None, None] * torch.eye(d, dtype=D)
    if p.kind == "diagonal":
        return torch.diag_embed(v)
    return v


# -- norm_band ---------------------------------------------------------------------------------
MC_PROBLEMS = {
    "gaussian-lowrank": lambda: ob.problems.get("gaussian-lowrank"),
    "gmm-2d": lambda: ob.problems.get("gmm-2d"),
    "isotropic": lambda: random_gmm(1, 3, 3, "isotropic"),
    "diagonal": lambda: random_gmm(2, 3, 3, "diagonal"),
    "full": lambda: random_gmm(3, 3, 3, "full"),
}


@pytest.mark.parametrize("name", list(MC_PROBLEMS))
def test_norm_band_matches_monte_carlo(name):
    """E|x|^2 and sd(|x|^2) within 3 standard errors of 200k exact samples, at several t."""
    prob = MC_PROBLEMS[name]()
    ts = torch.tensor([0.02, 0.2, 0.45, 0.9], dtype=D)
    band = norm_band(prob, ts)
    g = torch.Generator().manual_seed(12345)
    n = 200_000
    for i, t in enumerate(ts):
        y = (prob.sample_marginal(n, t, g) ** 2).sum(1)  # |x|^2
        m, s = y.mean(), y.std()
        se_mean = s / math.sqrt(n)
        # delta method: Var(s^2) ~ (mu_4 - s^4) / n, se(s) = sd(s^2) / (2 s)
        mu4 = ((y - m) ** 4).mean()
        se_sd = torch.sqrt((mu4 - s**4) / n) / (2 * s)
        assert abs(float(band.mean_sq[i] - m)) < 3 * float(se_mean) + 1e-12, (name, float(t))
        assert abs(float(band.std_sq[i] - s)) < 3 * float(se_sd) + 1e-12, (name, float(t))


@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["isotropic", "diagonal", "full"]),
    d=st.integers(1, 4),
    K=st.integers(1, 4),
    t=st.floats(0.0, 1.0),
)
def test_norm_band_equals_matrix_formula(seed, kind, d, K, t):
    """The eigenvalue route equals the moments built from full matrices C_k = abar S + s^2 I."""
    p = random_gmm(seed, d, K, kind)
    band = norm_band(p, t)
    abar = p.schedule.alpha_bar(t)
    C = abar * full_covariances(p) + (1 - abar) * torch.eye(d, dtype=D)
    m = abar.sqrt() * p.means
    e_k = (m * m).sum(-1) + torch.diagonal(C, dim1=-2, dim2=-1).sum(-1)
    var_k = 2 * (C * C).sum((-1, -2)) + 4 * torch.einsum("ki,kij,kj->k", m, C, m)
    e2 = (p.weights * e_k).sum()
    e4 = (p.weights * (var_k + e_k**2)).sum()
    scale = float(e2) ** 2
    assert band.t.shape == (1,)
    assert float(band.mean_sq[0]) == pytest.approx(float(e2), rel=1e-12)
    assert float(band.std_sq[0] ** 2) == pytest.approx(
        float(e4 - e2**2), rel=1e-9, abs=1e-12 * scale
    )
    assert float(band.mean_sq[0]) == pytest.approx(float(p.second_moment(t)), rel=1e-12)


def _grid_moments(prob, t, axes):
    """E|x|^2 and E|x|^4 by the trapezoid rule on a tensor grid, with the exact log p_t."""
    mesh = torch.stack([a.flatten() for a in torch.meshgrid(*axes, indexing="ij")], dim=1)
    p = torch.exp(prob.log_prob(mesh, t)).reshape([a.numel() for a in axes])
    r2 = (mesh**2).sum(1).reshape(p.shape)

    def integrate(f):
        for a in axes:
            f = torch.trapezoid(f, a, dim=0)
        return f

    mass = integrate(p)
    return integrate(r2 * p) / mass, integrate(r2**2 * p) / mass, mass


@given(seed=st.integers(0, 10_000), K=st.integers(1, 3), t=st.floats(0.01, 1.0))
def test_norm_band_matches_quadrature_1d(seed, K, t):
    """1-d mixtures: exact moments equal numerical integration of x^2 p_t and x^4 p_t."""
    p = random_gmm(seed, 1, K, "isotropic")
    axis = torch.linspace(-15, 15, 30001, dtype=D)
    e2, e4, mass = _grid_moments(p, t, [axis])
    band = norm_band(p, t)
    assert float(mass) == pytest.approx(1.0, abs=1e-9)
    assert float(band.mean_sq[0]) == pytest.approx(float(e2), rel=1e-8)
    assert float(band.std_sq[0]) == pytest.approx(math.sqrt(float(e4 - e2**2)), rel=1e-7)


@pytest.mark.parametrize("t", [0.02, 0.3])
def test_norm_band_matches_quadrature_gmm_2d(t):
    p = ob.problems.get("gmm-2d")
    axis = torch.linspace(-8, 8, 1201, dtype=D)
    e2, e4, mass = _grid_moments(p, t, [axis, axis])
    band = norm_band(p, t)
    assert float(mass) == pytest.approx(1.0, abs=1e-8)
    assert float(band.mean_sq[0]) == pytest.approx(float(e2), rel=1e-8)
    assert float(band.std_sq[0]) == pytest.approx(math.sqrt(float(e4 - e2**2)), rel=1e-7)


def test_norm_band_closed_forms_and_properties():
    # Dirac at a: |x|^2 = |alpha a + sigma n|^2, noncentral chi-square:
    # mean |m|^2 + d s2, variance 2 d s2^2 + 4 s2 |m|^2.
    a = torch.tensor([0.5, -1.0], dtype=D)
    p = Dirac(a)
    ts = torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=D)
    band = norm_band(p, ts)
    abar = p.schedule.alpha_bar(ts)
    s2, m2 = 1 - abar, abar * (a @ a)
    torch.testing.assert_close(band.mean_sq, m2 + 2 * s2, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(band.std_sq, torch.sqrt(4 * s2**2 + 4 * s2 * m2))
    assert float(band.std_sq[0]) == 0.0  # all mass at one point at t = 0
    torch.testing.assert_close(band.center, torch.sqrt(band.mean_sq))
    assert bool((band.low <= band.center).all()) and bool((band.center <= band.high).all())
    assert bool((band.low >= 0).all())
    # scalar and list times are one-entry / 1-d bands
    assert norm_band(p, 0.5).t.shape == (1,)
    assert norm_band(p, [0.1, 0.5]).mean_sq.shape == (2,)


def test_norm_band_low_is_clamped_at_zero():
    band = NormBand(
        t=torch.tensor([0.5], dtype=D),
        mean_sq=torch.tensor([1.0], dtype=D),
        std_sq=torch.tensor([3.0], dtype=D),
    )
    assert float(band.low[0]) == 0.0
    assert float(band.high[0]) == pytest.approx(math.sqrt(7.0))


# -- expected_nll ------------------------------------------------------------------------------
def _mc_nll(prob, t, n, seed):
    x = prob.sample_marginal(n, t, torch.Generator().manual_seed(seed))
    nll = -prob.log_prob(x, t)
    return float(nll.mean()), float(nll.std()) / math.sqrt(n)


@pytest.mark.parametrize("t", [0.05, 0.3, 0.7])
def test_entropy_gaussian_closed_form(t):
    g = ob.problems.get("gaussian-lowrank")
    h, se = expected_nll(g, t)
    assert float(se[0]) == 0.0
    # against torch's Gaussian entropy of C(t) = abar Sigma + sigma^2 I
    abar = g.schedule.alpha_bar(t)
    C = abar * g.cov + (1 - abar) * torch.eye(g.dim, dtype=D)
    mvn = torch.distributions.MultivariateNormal(abar.sqrt() * g.mean, covariance_matrix=C)
    assert float(h[0]) == pytest.approx(float(mvn.entropy()), rel=1e-10)
    # against Monte Carlo with the exact log p_t
    mc, mc_se = _mc_nll(g, t, 20_000, seed=7)
    assert abs(float(h[0]) - mc) < 3 * mc_se


def test_entropy_dirac_is_isotropic_noise():
    p = Dirac([0.5, -1.0])
    ts = torch.tensor([0.01, 0.5, 1.0], dtype=D)
    h, se = expected_nll(p, ts)
    s2 = 1 - p.schedule.alpha_bar(ts)
    torch.testing.assert_close(h, 0.5 * p.dim * (torch.log(s2) + LOG_2PI_E))
    assert bool((se == 0).all())
    assert float(expected_nll(p, 0.0)[0][0]) == -math.inf  # degenerate at t = 0


@pytest.mark.parametrize("t", [0.05, 0.4])
def test_entropy_mixture_monte_carlo(t):
    """Two independent estimates agree; H(X|K) <= H(X) <= H(X|K) + H(K) (X = x_t, K = mode)."""
    p = ob.problems.get("gmm-2d")
    h1, se1 = expected_nll(p, t, generator=torch.Generator().manual_seed(1))
    h2, se2 = expected_nll(p, t, generator=torch.Generator().manual_seed(2))
    assert abs(float(h1 - h2)) < 3 * math.hypot(float(se1), float(se2))
    assert 0 < float(se1) < 0.05
    abar = p.schedule.alpha_bar(t)
    c = abar * p.evals + (1 - abar)
    h_cond = float((p.weights * 0.5 * (torch.log(c) + LOG_2PI_E).sum(-1)).sum())
    h_k = float(-(p.weights * torch.log(p.weights)).sum())
    assert h_cond - 3 * float(se1) < float(h1) < h_cond + h_k + 3 * float(se1)


def test_entropy_mixture_matches_quadrature_1d():
    p = random_gmm(5, 1, 3, "isotropic")
    axis = torch.linspace(-15, 15, 30001, dtype=D)
    for t in (0.05, 0.5):
        lp = p.log_prob(axis[:, None], t)
        exact = float(torch.trapezoid(-lp * torch.exp(lp), axis))
        h, se = expected_nll(p, t, n_mc=20_000, generator=torch.Generator().manual_seed(3))
        assert abs(float(h[0]) - exact) < 3 * float(se[0])


def test_entropy_near_gaussian_at_t1():
    """At t = 1 on "linear" (abar = 4e-5) every problem is ~N(0, I): H ~ d/2 log(2 pi e)."""
    for name in ("gmm-2d", "gmm-64d"):
        p = ob.problems.get(name, "linear")
        h, se = expected_nll(p, 1.0, n_mc=4000, generator=torch.Generator().manual_seed(0))
        assert abs(float(h[0]) - 0.5 * p.dim * LOG_2PI_E) < 3 * float(se[0]) + 1e-2


# -- subspace_distance -------------------------------------------------------------------------
def test_subspace_distance_hand_cases():
    offset = torch.tensor([1.0, 2.0, 3.0], dtype=D)
    basis = torch.tensor([[1.0], [0.0], [0.0]], dtype=D)  # the line offset + s e_1
    x = torch.tensor([[1.0, 2.0, 3.0], [-4.0, 2.0, 3.0], [7.0, 5.0, 7.0], [1.0, 2.0, 1.0]], dtype=D)
    torch.testing.assert_close(
        subspace_distance(x, (offset, basis)), torch.tensor([0.0, 0.0, 5.0, 2.0], dtype=D)
    )
    # r = 0: the distance to the point
    point = subspace_distance(x, (offset, torch.zeros(3, 0, dtype=D)))
    torch.testing.assert_close(point, torch.linalg.vector_norm(x - offset, dim=1))
    # the whole space: every point is on it
    full = subspace_distance(x, (offset, torch.eye(3, dtype=D)))
    assert float(full.abs().max()) < 1e-15


@given(seed=st.integers(0, 10_000), d=st.integers(1, 6), data=st.data())
def test_subspace_distance_is_the_normal_component(seed, d, data):
    r = data.draw(st.integers(0, d))
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=D))[0]
    inside, normal = basis[:, :r], basis[:, r:]
    offset = torch.randn(d, generator=g, dtype=D)
    a, b = torch.randn(5, r, generator=g, dtype=D), torch.randn(5, d - r, generator=g, dtype=D)
    x = offset + a @ inside.T + b @ normal.T
    dist = subspace_distance(x, (offset, inside))
    torch.testing.assert_close(dist, torch.linalg.vector_norm(b, dim=1), rtol=1e-12, atol=1e-13)


@given(
    seed=st.integers(0, 10_000),
    t=st.floats(0.01, 0.95),
    scale=st.floats(0.1, 10.0),
)
def test_x0_prediction_lies_on_the_data_subspace(seed, t, scale):
    """E[x_0 | x_t = x] of the exact eps is in the data's affine hull for ANY x."""
    g = ob.problems.get("gaussian-lowrank")
    x = scale * torch.randn(16, g.dim, generator=torch.Generator().manual_seed(seed), dtype=D)
    dist = subspace_distance(g.x0_pred(x, t), g.subspace)
    assert float(dist.max()) < 1e-10
    # ... while x itself is generically far from it
    assert float(subspace_distance(x, g.subspace).min()) > 1e-3


# -- norm_statistics and departure ---------------------------------------------------------------
def test_norm_statistics_hand_example():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=D)  # norms 5 0 1 2
    s = norm_statistics(x)
    assert s["rms_norm"] == pytest.approx(math.sqrt(30 / 4))
    assert s["mean_norm"] == pytest.approx(2.0)
    # linear interpolation on the sorted norms 0 1 2 5 at positions q (n - 1)
    assert s["q05"] == pytest.approx(0.15)
    assert s["q50"] == pytest.approx(1.5)
    assert s["q95"] == pytest.approx(4.55)
    # trailing dims are flattened; float32 input is fine
    s3 = norm_statistics(x.reshape(4, 1, 2).float())
    assert s3["rms_norm"] == pytest.approx(s["rms_norm"])


@given(seed=st.integers(0, 10_000), n=st.integers(1, 50))
def test_norm_statistics_quantiles_are_torch_quantile(seed, n):
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=D)
    s = norm_statistics(x)
    norms = torch.linalg.vector_norm(x, dim=1)
    q = torch.quantile(norms, torch.tensor([0.05, 0.5, 0.95], dtype=D))
    assert [s["q05"], s["q50"], s["q95"]] == pytest.approx(q.tolist(), rel=1e-14)
    assert s["mean_norm"] <= s["rms_norm"] * (1 + 1e-14)


def test_norm_statistics_diverged_sample_is_inf_not_nan():
    x = torch.tensor([[1.0, 0.0], [float("nan"), 0.0], [0.0, 2.0]], dtype=D)
    s = norm_statistics(x)
    assert s["rms_norm"] == math.inf and s["mean_norm"] == math.inf and s["q95"] == math.inf
    assert s["q05"] == pytest.approx(1.1)
    assert not any(math.isnan(v) for v in s.values())


def test_departure_of_exact_and_inflated_samples():
    p = ob.problems.get("gmm-2d")
    ts = torch.tensor([0.1, 0.5], dtype=D)
    band = norm_band(p, ts)
    g = torch.Generator().manual_seed(0)
    norms = torch.stack(
        [torch.linalg.vector_norm(p.sample_marginal(50_000, t, g), dim=1) for t in ts]
    )
    exact = departure(norms, band)
    assert float(exact.rel_rms.abs().max()) < 0.01
    assert bool((exact.frac_below + exact.frac_above < 0.1).all())
    inflated = departure(1.5 * norms, band)
    torch.testing.assert_close(inflated.rel_rms, 1.5 * (exact.rel_rms + 1) - 1)
    assert bool((inflated.frac_above > 0.2).all())
    single = departure(norms[0], norm_band(p, 0.1))
    torch.testing.assert_close(single.rel_rms, exact.rel_rms[:1])


# -- refusals ----------------------------------------------------------------------------------
def test_refuses_non_mixtures_naming_the_type():
    field = QuadratureField(torch.ones(2, dtype=D))
    with pytest.raises(ValueError, match="QuadratureField"):
        norm_band(field, 0.5)
    with pytest.raises(ValueError, match="QuadratureField"):
        expected_nll(field, 0.5)
    with pytest.raises(ValueError, match="str"):
        norm_band("gmm-2d", 0.5)


def test_refuses_bad_times_and_sample_counts():
    p = ob.problems.get("gmm-2d")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        norm_band(p, 1.5)
    with pytest.raises(ValueError, match="finite"):
        norm_band(p, float("nan"))
    with pytest.raises(ValueError, match="1-D"):
        norm_band(p, torch.zeros(2, 2, dtype=D))
    with pytest.raises(ValueError, match="empty"):
        norm_band(p, torch.zeros(0, dtype=D))
    for bad in (0, 1, 2.5, True):
        with pytest.raises(ValueError, match="n_mc"):
            expected_nll(p, 0.5, n_mc=bad)
    with pytest.raises(ValueError, match="n_mc"):
        expected_nll(Gaussian(torch.zeros(2), 1.0), 0.5, n_mc=0)


def test_refuses_bad_subspaces_and_batches():
    x = torch.zeros(4, 3, dtype=D)
    offset, basis = torch.zeros(3, dtype=D), torch.eye(3, dtype=D)[:, :2]
    with pytest.raises(ValueError, match="offset"):
        subspace_distance(x, (torch.zeros(2, dtype=D), basis))
    with pytest.raises(ValueError, match="basis"):
        subspace_distance(x, (offset, torch.zeros(2, 1, dtype=D)))
    with pytest.raises(ValueError, match="basis"):
        subspace_distance(x, (offset, torch.ones(3, 4, dtype=D)))
    with pytest.raises(ValueError, match="orthonormal"):
        subspace_distance(x, (offset, 2 * basis))
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        subspace_distance(torch.zeros(3, dtype=D), (offset, basis))
    with pytest.raises(ValueError, match="pair"):
        subspace_distance(x, offset)
    with pytest.raises(ValueError, match="batch"):
        norm_statistics(torch.zeros(0, 3, dtype=D))
    with pytest.raises(ValueError, match="floating"):
        norm_statistics(torch.zeros(2, 3, dtype=torch.int64))
    band = norm_band(ob.problems.get("gmm-2d"), [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\(2, B\)"):
        departure(torch.ones(5, dtype=D), band)
    with pytest.raises(ValueError, match="non-negative"):
        departure(-torch.ones(2, 5, dtype=D), band)
