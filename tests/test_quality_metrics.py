"""Distribution metrics: the exact Gaussian W2 and push-forward, and the Monte Carlo metrics
with their error bars and floors (zero excess for exact samples, growth under perturbation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import odebench as ob
from odebench.kinds.quality import gaussian_pushforward, start_law
from odebench.metrics.distribution import (
    FrechetTo,
    floor_of,
    frechet,
    gaussian_w2,
    mc_estimate,
    median_bandwidth,
    mixture_moments,
    mmd2,
    mmd2_estimate,
    narrow_factor,
    nll_estimate,
    psd_factor,
    random_directions,
    sliced_w2,
    sliced_w2_to,
)
from odebench.metrics.manifold import expected_nll

D = torch.float64


def _w2_sqrtm(m1, s1, m2, s2) -> float:
    """The textbook formula with scipy's sqrtm, for comparison."""
    r2 = scipy.linalg.sqrtm(s2)
    cross = scipy.linalg.sqrtm(r2 @ s1 @ r2)
    val = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * np.real(cross))
    return math.sqrt(max(val, 0.0))


def _random_cov(rng, d, rank):
    a = rng.standard_normal((d, rank))
    return a @ a.T


def test_w2_one_dimension_and_commuting():
    # 1-d: W2^2 = (m1 - m2)^2 + (s1 - s2)^2
    w = gaussian_w2(
        torch.tensor([1.0]), torch.tensor([[2.0]]), torch.tensor([-0.5]), torch.tensor([[0.5]])
    )
    assert w == pytest.approx(math.sqrt(1.5**2 + 1.5**2), rel=1e-14)
    # commuting covariances: sum of squared differences of the square roots of eigenvalues
    l1, l2 = torch.tensor([4.0, 1.0, 0.0]), torch.tensor([1.0, 9.0, 0.25])
    w = gaussian_w2(torch.zeros(3), torch.diag(l1.sqrt()), torch.zeros(3), torch.diag(l2.sqrt()))
    assert w**2 == pytest.approx(float(((l1.sqrt() - l2.sqrt()) ** 2).sum()), rel=1e-13)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 10**6), st.booleans())
def test_w2_agrees_with_sqrtm_formula_and_ignores_the_factor(d, seed, singular):
    rng = np.random.default_rng(seed)
    s1 = _random_cov(rng, d, max(1, d - 1) if singular else d) + 0.1 * np.eye(d) * (not singular)
    s2 = _random_cov(rng, d, d) + 0.05 * np.eye(d)
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    want = _w2_sqrtm(m1, s1, m2, s2)
    f1, f2 = psd_factor(torch.tensor(s1)), torch.linalg.cholesky(torch.tensor(s2))
    got = gaussian_w2(torch.tensor(m1), f1, torch.tensor(m2), f2)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-7)
    # any factor of the same covariance (a rotated or wider one) gives the same distance
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    wide = torch.cat([f1 @ torch.tensor(q), torch.zeros(d, 2, dtype=D)], dim=1)
    assert gaussian_w2(torch.tensor(m1), wide, torch.tensor(m2), f2) == pytest.approx(
        got, rel=1e-10, abs=1e-12
    )


def test_w2_keeps_digits_when_the_laws_are_close():
    """The Procrustes form resolves W2 = 1e-9 where the trace formula returns round-off."""
    rng = np.random.default_rng(0)
    f = torch.tensor(np.linalg.cholesky(_random_cov(rng, 8, 8) + np.eye(8)))
    pert = 1e-9 * torch.tensor(rng.standard_normal((8, 8)))
    got = gaussian_w2(torch.zeros(8), f + pert, torch.zeros(8), f)
    # W2 <= |pert|_F (the identity coupling), and it is the same order of magnitude
    assert 1e-11 < got <= float(pert.norm()) * (1 + 1e-6)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 6), extra=st.integers(-3, 12), seed=st.integers(0, 2**16))
def test_narrow_factor_keeps_the_covariance(d, extra, seed):
    g = torch.Generator().manual_seed(seed)
    wide = torch.randn(d, max(1, d + extra), generator=g, dtype=D)
    narrow = narrow_factor(wide)
    assert narrow.shape == (d, min(d, wide.shape[1]))
    scale = float((wide @ wide.T).abs().max())
    assert torch.allclose(narrow @ narrow.T, wide @ wide.T, rtol=0, atol=1e-13 * scale)
    if wide.shape[1] <= d:  # already narrow: the same tensor's values
        assert torch.equal(narrow, wide)


@pytest.mark.parametrize("width", [3, 5, 40])
def test_frechet_to_equals_frechet(width):
    """Narrowed or not, the target scores every sample as frechet does (to round-off); a
    factor as wide as d is used as it is, bit for bit."""
    g = torch.Generator().manual_seed(width)
    d = 5
    factor = torch.randn(d, width, generator=g, dtype=D) / math.sqrt(width)
    mean = torch.randn(d, generator=g, dtype=D)
    target = FrechetTo(mean, factor)
    for n in (8, 50):
        x = torch.randn(n, d, generator=g, dtype=D) * 0.7 + 0.2
        want = frechet(x, mean, factor)
        if width <= d:
            assert target(x) == want
        else:
            assert target(x) == pytest.approx(want, rel=1e-12)


def test_frechet_to_refuses_a_bad_target():
    with pytest.raises(ValueError, match="d rows"):
        FrechetTo(torch.zeros(3, dtype=D), torch.eye(4, dtype=D))
    with pytest.raises(ValueError, match="finite"):
        FrechetTo(torch.tensor([0.0, math.nan], dtype=D), torch.eye(2, dtype=D))


def test_mixture_moments_match_monte_carlo():
    for name in ("gmm-2d", "gmm-64d"):
        prob = ob.problems.get(name, "linear")
        for t in (0.0, 0.3):
            mean, cov = mixture_moments(prob, t)
            x = prob.sample_marginal(200_000, t, torch.Generator().manual_seed(1))
            se = x.std(0) / math.sqrt(x.shape[0])
            assert bool(((x.mean(0) - mean).abs() < 5 * se + 1e-12).all())
            emp = torch.cov(x.T)
            assert float((emp - cov).abs().max()) < 0.02 * float(cov.diagonal().max())


def test_pushforward_matches_the_solver_on_samples():
    """The exact push-forward law equals the moments of 200k solver outputs, and its W2 to
    the target agrees with a large Monte Carlo Frechet estimate (floor subtracted)."""
    sched = ob.schedules.get("ddpm-linear-1000")
    prob = ob.problems.get("gaussian-lowrank", sched)
    ts = ob.timesteps(10, "uniform", 1.0, 0.0, schedule=sched)
    mean, factor, nfe = gaussian_pushforward("ddim", prob, ts)
    assert nfe == 10
    n = 200_000
    x_T = prob.sample_marginal(n, 1.0, torch.Generator().manual_seed(2))
    out = ob.solve("ddim", prob.eps, sched, x_T, ts).x
    cov = factor @ factor.T
    se = out.std(0) / math.sqrt(n)
    assert bool(((out.mean(0) - mean).abs() < 5 * se + 1e-12).all())
    assert float((torch.cov(out.T) - cov).abs().max()) < 0.01 * float(cov.diagonal().max())
    t_mean, t_cov = mixture_moments(prob, 0.0)
    t_factor = psd_factor(t_cov)
    w2 = gaussian_w2(mean, factor, t_mean, t_factor)
    assert w2 > 0.1  # 10 DDIM steps are far from the data

    gen = torch.Generator().manual_seed(3)

    def draw(k):
        return prob.sample_marginal(k, 0.0, gen)

    est = mc_estimate(lambda s: frechet(s, t_mean, t_factor), out, draw, n_boot=8, n_floor=4)
    assert abs(est.excess - w2**2) < 4 * est.excess_se + 0.01 * w2**2


def test_pushforward_of_the_exact_flow_is_the_target():
    """DDIM with 1000 steps is close to, and the W2 falls with steps toward, the target; and
    the pushforward refuses a model that is not affine."""
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gaussian-lowrank", sched)
    t_mean, t_cov = mixture_moments(prob, 0.01)
    tf = psd_factor(t_cov)
    w = []
    for n in (20, 40, 80):
        ts = ob.timesteps(n, "lambda", 1.0, 0.01, schedule=sched)
        mean, factor, _ = gaussian_pushforward("ddim", prob, ts)
        w.append(gaussian_w2(mean, factor, t_mean, tf))
    ratios = [w[i] / w[i + 1] for i in range(2)]
    assert all(1.8 < r < 2.2 for r in ratios), ratios  # DDIM: first order in the W2 too
    gmm = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(10, "uniform", 1.0, 0.01, schedule=sched)
    with pytest.raises(ValueError, match="not affine"):
        gaussian_pushforward("ddim", prob, ts, model=lambda x, t: gmm.eps(x[:, :2], t).repeat(1, 8))


def test_start_law_standard_and_marginal():
    prob = ob.problems.get("gaussian-lowrank", "linear")
    m, f = start_law(prob, 1.0, "standard")
    assert torch.equal(m, torch.zeros(16, dtype=D)) and torch.equal(f, torch.eye(16, dtype=D))
    m, f = start_law(prob, 0.5, "marginal")
    a = prob.schedule.alpha(torch.tensor(0.5, dtype=D))
    assert torch.allclose(m, a * prob.mean, atol=1e-14)
    with pytest.raises(ValueError, match="prior"):
        gaussian_pushforward("ddim", prob, torch.tensor([1.0, 0.5], dtype=D), prior="bad")


# -- Monte Carlo metrics -------------------------------------------------------------------------
PROB = ob.problems.get("gmm-2d", "linear")
N = 1500


def _draw(seed):
    gen = torch.Generator().manual_seed(seed)
    return lambda k: PROB.sample(k, gen)


def _metrics():
    mean, cov = mixture_moments(PROB, 0.0)
    factor = psd_factor(cov)
    y = PROB.sample(N, torch.Generator().manual_seed(99))
    dirs = random_directions(2, 64, torch.Generator().manual_seed(4))
    return {
        "frechet": lambda s: frechet(s, mean, factor),
        "sliced_w2": sliced_w2_to(y, dirs),
        "mmd": lambda s: mmd2(s, y, median_bandwidth(y)),
    }


def _perturbations(x):
    gen = torch.Generator().manual_seed(8)
    return {
        "noise": x + 0.8 * torch.randn(x.shape, generator=gen, dtype=D),
        "shrink": 0.8 * x,
        "shift": x + torch.tensor([0.5, 0.0], dtype=D),
    }


@pytest.mark.parametrize("metric", ["frechet", "sliced_w2", "mmd"])
def test_mc_metric_is_zero_for_exact_samples_and_grows_when_perturbed(metric):
    fn = _metrics()[metric]
    floor = floor_of(fn, _draw(5), N, 16)
    exact = PROB.sample(N, torch.Generator().manual_seed(6))
    est = mc_estimate(fn, exact, _draw(7), n_boot=24, floor=floor)
    assert abs(est.excess) < 3 * est.excess_se, est
    assert est.se > 0 and est.floor_se > 0
    for what, x in _perturbations(exact).items():
        bad = mc_estimate(fn, x, _draw(7), n_boot=24, floor=floor)
        assert bad.excess > 3 * bad.excess_se, (what, bad)
        # the paired excess over the unperturbed points is far sharper, and positive
        paired = mc_estimate(fn, x, _draw(7), n_boot=24, floor=floor, x_exact_ode=exact)
        assert paired.paired > 3 * paired.paired_se, (what, paired)


def test_mmd_estimate_equals_the_plain_bootstrap():
    """Indexing precomputed kernels is the same computation as recomputing them."""
    y = PROB.sample(400, torch.Generator().manual_seed(1))
    x = 0.95 * PROB.sample(400, torch.Generator().manual_seed(2))
    x_ode = PROB.sample(400, torch.Generator().manual_seed(2))
    bw = median_bandwidth(y)
    kw = {"n_boot": 6, "floor": (0.0, 0.0, 0.0), "x_exact_ode": x_ode}
    fast = mmd2_estimate(x, y, bw, _draw(3), generator=torch.Generator().manual_seed(5), **kw)
    plain = mc_estimate(
        lambda s: mmd2(s, y, bw), x, _draw(3), generator=torch.Generator().manual_seed(5), **kw
    )
    assert fast.value == pytest.approx(plain.value, rel=1e-12)
    assert fast.paired == pytest.approx(plain.paired, rel=1e-10)
    assert fast.paired_se == pytest.approx(plain.paired_se, rel=1e-8)


def test_sliced_w2_to_equals_sliced_w2():
    x, y = PROB.sample(300), PROB.sample(300)
    dirs = random_directions(2, 16, torch.Generator().manual_seed(1))
    assert sliced_w2_to(y, dirs)(x) == pytest.approx(sliced_w2(x, y, dirs), rel=1e-13)
    # one direction along an axis: the 1-d W2^2 between the sorted coordinates
    e = torch.tensor([[1.0], [0.0]], dtype=D)
    want = float(((x[:, 0].sort().values - y[:, 0].sort().values) ** 2).mean())
    assert sliced_w2(x, y, e) == pytest.approx(want, rel=1e-13)


def test_mmd_is_unbiased_for_the_same_law():
    """Over both samples (for a fixed y it has a floor, which is why the floor is measured)."""
    bw = median_bandwidth(PROB.sample(300, torch.Generator().manual_seed(1)))
    vals = torch.tensor(
        [
            mmd2(
                PROB.sample(300, torch.Generator().manual_seed(s)),
                PROB.sample(300, torch.Generator().manual_seed(1000 + s)),
                bw,
            )
            for s in range(2, 62)
        ]
    )
    assert abs(float(vals.mean())) < 3 * float(vals.std()) / math.sqrt(len(vals))
    assert float(vals.min()) < 0  # unbiased: it can come out negative


def test_nll_is_zero_for_exact_samples_and_grows_when_perturbed():
    h, h_se = expected_nll(PROB, 0.0, n_mc=20000, generator=torch.Generator().manual_seed(5))
    ent = (float(h[0]), float(h_se[0]))
    exact = PROB.sample(N, torch.Generator().manual_seed(6))
    est = nll_estimate(exact, lambda s: PROB.log_prob(s, 0.0), ent)
    assert abs(est.excess) < 3 * est.excess_se
    for what, x in _perturbations(exact).items():
        bad = nll_estimate(x, lambda s: PROB.log_prob(s, 0.0), ent, x_exact_ode=exact)
        assert abs(bad.excess) > 3 * bad.excess_se, what
        assert abs(bad.paired) > 3 * bad.paired_se, what


def test_bad_samples_are_refused():
    mean, cov = mixture_moments(PROB, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        frechet(torch.full((5, 2), math.nan, dtype=D), mean, psd_factor(cov))
    with pytest.raises(ValueError, match="at least 2"):
        frechet(torch.zeros(1, 2, dtype=D), mean, psd_factor(cov))
    with pytest.raises(ValueError, match="equal shape"):
        sliced_w2(torch.zeros(4, 2, dtype=D), torch.zeros(5, 2, dtype=D), torch.eye(2, dtype=D))
    with pytest.raises(ValueError, match="positive semi-definite"):
        psd_factor(-torch.eye(2, dtype=D))


def test_gaussian_marginal_factor_is_singular_at_t0():
    from odebench.kinds.quality import gaussian_marginal

    prob = ob.problems.get("gaussian-lowrank", "ddpm-linear-1000")
    mean, factor = gaussian_marginal(prob, 0.0)
    assert torch.allclose(mean, prob.mean, atol=1e-14)
    assert torch.allclose(factor @ factor.T, prob.cov, atol=1e-14)
    # rank 3 in 16 dimensions: the null columns are sqrt of the problem's own eigenvalue
    # round-off (<= 1e-16), the same numbers its exact flow uses, so the two agree to 1e-12
    assert int((factor.norm(dim=0) < 1e-7).sum()) == 13
    m2, cov2 = mixture_moments(prob, 0.3)
    mean3, f3 = gaussian_marginal(prob, 0.3)
    assert torch.allclose(mean3, m2, atol=1e-14) and torch.allclose(f3 @ f3.T, cov2, atol=1e-13)
    with pytest.raises(ValueError, match="not a single Gaussian"):
        gaussian_marginal(ob.problems.get("gmm-2d", "linear"), 0.0)


def test_feature_frechet_of_digits_is_zero_for_data_and_grows_when_blurred():
    """The classifier-feature Frechet distance (the FID analogue of the digits study)."""
    from odebench.models import digits_features, load_digits_classifier

    digits = ob.problems.get("digits-data")
    clf = load_digits_classifier()
    feats = digits_features(digits.means, clf)
    mean, factor = feats.mean(0), (feats - feats.mean(0)).T / math.sqrt(feats.shape[0])

    def metric(f):
        return frechet(f, mean, factor)

    gen = torch.Generator().manual_seed(1)

    def draw(k):
        return digits_features(digits.sample(k, gen), clf)

    floor = floor_of(metric, draw, 600, 8)
    exact = digits.sample(600, torch.Generator().manual_seed(2))
    est = mc_estimate(metric, digits_features(exact, clf), draw, floor=floor)
    assert abs(est.excess) < 3 * est.excess_se, est
    noisy = (exact + 0.3 * torch.randn(exact.shape, generator=gen, dtype=D)).clamp(-1, 1)
    img = exact.reshape(-1, 8, 8)
    blurred = (0.5 * img + 0.25 * img.roll(1, 2) + 0.25 * img.roll(-1, 2)).reshape(-1, 64)
    for what, x in (("noise", noisy), ("blur", blurred)):
        bad = mc_estimate(metric, digits_features(x, clf), draw, floor=floor)
        assert bad.excess > 3 * bad.excess_se, (what, bad)
