"""Analytic problems: eps against autograd of the density, moments, flows, and refusals."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import odebench as ob
from odebench.problems import Dirac, Gaussian, GaussianMixture, QuadratureField

D = torch.float64


def random_gmm(seed: int, d: int, K: int, kind: str, schedule: str) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(K, d, generator=g, dtype=D)
    if kind == "isotropic":
        var = 10 ** (-3 + 3 * torch.rand(K, generator=g, dtype=D))
    elif kind == "diagonal":
        var = 10 ** (-3 + 3 * torch.rand(K, d, generator=g, dtype=D))
    else:  # full, some of them singular (rank < d)
        rank = int(torch.randint(1, d + 1, (1,), generator=g))
        A = torch.randn(K, d, rank, generator=g, dtype=D)
        var = A @ A.transpose(-1, -2) * 0.3
    w = torch.rand(K, generator=g, dtype=D) + 0.1
    return GaussianMixture(means, var, w / w.sum(), schedule)


def autograd_eps(prob, x, t):
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(prob.log_prob(xr, t).sum(), xr)
    return -prob.schedule.sigma(t) * grad


@given(
    seed=st.integers(0, 2**20),
    d=st.integers(1, 5),
    K=st.integers(1, 4),
    kind=st.sampled_from(["isotropic", "diagonal", "full"]),
    schedule=st.sampled_from(["linear", "cosine", "scaled-linear", "ddpm-linear-1000"]),
    t=st.floats(0.01, 0.98),
)
def test_eps_is_minus_sigma_grad_log_density(seed, d, K, kind, schedule, t):
    prob = random_gmm(seed, d, K, kind, schedule)
    assert prob.kind == kind
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.cat([prob.sample_marginal(64, t, g), 3.0 * torch.randn(8, d, generator=g, dtype=D)])
    eps, ref = prob.eps(x, t), autograd_eps(prob, x, t)
    err = (eps - ref).norm(dim=1) / ref.norm(dim=1).clamp_min(1e-8)
    assert float(err.max()) < 1e-10


def test_score_and_x0_prediction_follow_from_eps():
    prob = ob.problems.get("gmm-64d")
    t = torch.tensor(0.3, dtype=D)
    x = prob.sample_marginal(16, t, torch.Generator().manual_seed(0))
    s = prob.schedule
    torch.testing.assert_close(prob.score(x, t), -prob.eps(x, t) / s.sigma(t))
    torch.testing.assert_close(s.alpha(t) * prob.x0_pred(x, t) + s.sigma(t) * prob.eps(x, t), x)


@pytest.mark.parametrize("name", ob.problems.names())
@pytest.mark.parametrize("t", [0.05, 0.5, 0.95])
def test_second_moment_matches_monte_carlo(name, t):
    prob = ob.problems.get(name)
    x = prob.sample_marginal(40000, t, torch.Generator().manual_seed(3))
    sq = (x**2).sum(1)
    stderr = float(sq.std() / len(sq) ** 0.5)
    assert abs(float(sq.mean() - prob.second_moment(t))) < 4 * stderr + 1e-12


def test_gmm_samples_have_the_mixture_moments():
    means = torch.tensor([[0.0, 0.0], [4.0, 1.0]], dtype=D)
    covs = torch.tensor([[[1.0, 0.5], [0.5, 1.0]], [[0.2, 0.0], [0.0, 0.1]]], dtype=D)
    w = torch.tensor([0.3, 0.7], dtype=D)
    prob = GaussianMixture(means, covs, w)
    x = prob.sample(200000, torch.Generator().manual_seed(0))
    mean = (w[:, None] * means).sum(0)
    cov = sum(w[k] * (covs[k] + torch.outer(means[k] - mean, means[k] - mean)) for k in range(2))
    torch.testing.assert_close(x.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.03, rtol=0)


def test_log_prob_integrates_to_one_in_1d():
    prob = GaussianMixture(
        torch.tensor([[-1.0], [2.0]]), torch.tensor([0.05, 0.3]), torch.tensor([0.4, 0.6])
    )
    grid = torch.linspace(-12, 12, 200001, dtype=D)[:, None]
    for t in (0.01, 0.5):
        dens = prob.log_prob(grid, t).exp()
        assert float(torch.trapezoid(dens, grid[:, 0])) == pytest.approx(1.0, abs=1e-9)


def test_per_sample_times_match_scalar_times():
    prob = ob.problems.get("gmm-2d")
    x = prob.sample_marginal(6, 0.5, torch.Generator().manual_seed(0))
    t = torch.tensor([0.2, 0.5, 0.2, 0.9, 0.5, 0.2], dtype=D)
    batched = prob.eps(x, t)
    for i in range(6):
        torch.testing.assert_close(batched[i], prob.eps(x[i : i + 1], t[i])[0])


@pytest.mark.parametrize("schedule", ["linear", "cosine", "edm", "ddpm-linear-1000"])
def test_gaussian_flow_is_a_flow(schedule):
    """flow(s -> u -> t) = flow(s -> t), flow(s -> s) = id, and it maps p_s onto p_t."""
    prob = ob.problems.get("gaussian-lowrank", schedule)
    x = prob.sample_marginal(20000, 0.9, torch.Generator().manual_seed(4))
    via = prob.flow(prob.flow(x, 0.9, 0.4), 0.4, 0.05)
    torch.testing.assert_close(via, prob.flow(x, 0.9, 0.05), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(prob.flow(x, 0.9, 0.9), x, rtol=1e-14, atol=1e-14)
    moved = prob.flow(x, 0.9, 0.05)
    s = prob.schedule
    expected_cov = s.alpha_bar(0.05) * prob.cov + s.sigma(0.05) ** 2 * torch.eye(prob.dim, dtype=D)
    assert float((torch.cov(moved.T) - expected_cov).abs().max()) < 0.05


@pytest.mark.parametrize("schedule", ["linear", "cosine", "scaled-linear"])
def test_gaussian_flow_agrees_with_adaptive_solve(schedule):
    prob = ob.problems.get("gaussian-lowrank", schedule)
    sched = prob.schedule
    x = prob.sample_marginal(8, sched.t_hi, torch.Generator().manual_seed(5))
    ts = ob.timesteps(4, "lambda", t_min=1e-3, schedule=sched)
    sol = ob.solve("pf", prob.eps, sched, x, ts, trajectory=True, rtol=1e-12, atol=1e-12)
    for k in range(1, len(ts)):
        exact = prob.flow(x, ts[0], ts[k])
        rel = float((sol.trajectory[k] - exact).norm() / exact.norm())
        assert rel < 1e-9


def test_lowrank_flow_collapses_onto_the_data_subspace():
    prob = ob.problems.get("gaussian-lowrank")
    offset, basis = prob.subspace
    x = prob.sample_marginal(100, 1.0, torch.Generator().manual_seed(6))
    end = prob.flow(x, 1.0, 1e-8)
    off = end - offset
    residual = off - off @ basis @ basis.T
    assert float(residual.norm(dim=1).max()) < 1e-3


def test_dirac_eps_is_the_constant_noise_along_its_trajectory():
    prob = Dirac([0.5, -1.0], "cosine")
    noise = torch.randn(7, 2, dtype=D)
    for t in (0.9, 0.5, 0.01):
        s = prob.schedule
        x = s.alpha(t) * prob.mean + s.sigma(t) * noise
        torch.testing.assert_close(prob.eps(x, t), noise, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(
            prob.flow(x, t, 0.3),
            s.alpha(0.3) * prob.mean + s.sigma(0.3) * noise,
            rtol=1e-12,
            atol=1e-12,
        )


def test_quadrature_field_flow_solves_its_ode():
    q = QuadratureField(torch.tensor([1.0, -2.0], dtype=D), "cosine")
    x = torch.tensor([[0.2, 0.1]], dtype=D)
    h = 1e-6
    for t in (0.8, 0.3):
        fd = (q.flow(x, 0.9, t + h) - q.flow(x, 0.9, t - h)) / (2 * h)
        here = q.flow(x, 0.9, t)
        torch.testing.assert_close(fd, ob.ode.rhs(q.eps, q.schedule, here, t), rtol=1e-6, atol=1e-8)
    assert torch.equal(q.eps(x, 0.5), q.eps(x + 10.0, 0.5))


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: GaussianMixture(torch.zeros(2), torch.ones(2)), r"means must have shape"),
        (lambda: GaussianMixture(torch.zeros(2, 3), torch.ones(3)), r"variances must have"),
        (
            lambda: GaussianMixture(torch.zeros(2, 2), torch.ones(2), torch.tensor([0.5, 0.6])),
            "sum to 1",
        ),
        (
            lambda: GaussianMixture(torch.zeros(1, 2), torch.tensor([[[1.0, 2.0], [2.0, 1.0]]])),
            "positive semi-definite",
        ),
        (
            lambda: GaussianMixture(torch.zeros(1, 2), torch.tensor([[[1.0, 0.3], [0.0, 1.0]]])),
            "symmetric",
        ),
        (lambda: Gaussian(torch.zeros(3), torch.eye(2)), "cov must be"),
        (lambda: ob.problems.get("gmm-3d"), "unknown problem 'gmm-3d'"),
    ],
)
def test_bad_problems_are_refused(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_inputs_to_eps_are_refused():
    prob = ob.problems.get("gmm-2d")
    with pytest.raises(ValueError, match=r"shape \(batch, 2\), got \(4, 3\)"):
        prob.eps(torch.zeros(4, 3, dtype=D), 0.5)
    with pytest.raises(ValueError, match="floating-point"):
        prob.eps(torch.zeros(4, 2, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="lie in"):
        prob.eps(torch.zeros(4, 2, dtype=D), 1.5)
    with pytest.raises(ValueError, match=r"scalar or have shape \(4,\)"):
        prob.eps(torch.zeros(4, 2, dtype=D), torch.full((3,), 0.5, dtype=D))


def test_digits_data_is_the_empirical_distribution():
    pytest.importorskip("sklearn")
    prob = ob.problems.get("digits-data", "ddpm-linear-1000")
    assert (prob.K, prob.dim, prob.kind) == (1797, 64, "isotropic")
    assert float(prob.means.min()) == -1.0 and float(prob.means.max()) == 1.0
    x = prob.sample_marginal(8, 0.3, torch.Generator().manual_seed(0))
    err = (prob.eps(x, 0.3) - autograd_eps(prob, x, 0.3)).norm() / prob.eps(x, 0.3).norm()
    assert float(err) < 1e-10
    # far from t = 0 the posterior is spread; near it, it picks the nearest training digit
    data = prob.sample(4, torch.Generator().manual_seed(1))
    near = prob.schedule.alpha(1e-4) * data
    assert float(prob.posterior(near, 1e-4).max(dim=1).values.min()) > 0.99
