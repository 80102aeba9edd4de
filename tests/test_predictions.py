"""eps, x0, v, velocity and the EDM denoiser: exact conversions under any interpolant."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_interpolants import power_schedules

import odebench as ob
from odebench.schedules.prediction import KINDS, from_pair, to_eps, to_x0

D = torch.float64
SCHEDULES = ["linear", "cosine", "edm", "ve", "flow", "ddpm-linear-1000"]


@st.composite
def mixtures(draw, sched):
    """A random Gaussian mixture in 1-3 dimensions with 1-3 diagonal components."""
    d, k = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(k, d, generator=g, dtype=D)
    variances = 0.05 + torch.rand(k, d, generator=g, dtype=D)
    weights = torch.softmax(torch.randn(k, generator=g, dtype=D), 0)
    return ob.problems.GaussianMixture(means, variances, weights, sched)


@given(data=st.data(), sched=st.one_of(power_schedules, st.sampled_from(SCHEDULES)))
@settings(max_examples=60, deadline=None)
def test_every_prediction_round_trips(data, sched):
    """kind -> (x0, eps) -> kind is the identity, and each kind's eps and x0 are the
    problem's, for random interpolants and random mixtures."""
    sched = ob.schedules.get(sched)
    prob = data.draw(mixtures(sched))
    t = data.draw(st.floats(0.02, 0.98)) * sched.t_hi
    x = prob.sample_marginal(5, t, torch.Generator().manual_seed(0))
    eps, x0 = prob.eps(x, t), prob.x0_pred(x, t)
    torch.testing.assert_close(
        x0, (x - sched.sigma(t) * eps) / sched.alpha(t), rtol=1e-9, atol=1e-9
    )
    for kind in KINDS:
        out = from_pair(kind, x0, eps, x, t, sched)
        torch.testing.assert_close(to_eps(kind, out, x, t, sched), eps, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(to_x0(kind, out, x, t, sched), x0, rtol=1e-9, atol=1e-9)
        model = ob.models.from_prediction(prob.prediction(kind), kind, sched)
        torch.testing.assert_close(model(x, t), eps, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(model.x0(x, t), x0, rtol=1e-9, atol=1e-9)


def test_the_kinds_are_what_the_papers_say():
    """v = alpha eps - sigma x0 (Salimans & Ho 2022); under flow matching the velocity is
    z - x0 and v is alpha z - sigma x0; the denoiser sees x / alpha at sigma / alpha."""
    s = ob.schedules.get("flow")
    g = torch.Generator().manual_seed(1)
    x0, z = torch.randn(3, 2, generator=g, dtype=D), torch.randn(3, 2, generator=g, dtype=D)
    t = 0.3
    x = 0.7 * x0 + 0.3 * z
    torch.testing.assert_close(from_pair("velocity", x0, z, x, t, s), z - x0)
    torch.testing.assert_close(from_pair("v", x0, z, x, t, s), 0.7 * z - 0.3 * x0)
    seen = {}

    def denoiser(y, sigma):
        seen["y"], seen["sigma"] = y, sigma
        return x0

    model = ob.models.from_prediction(denoiser, "denoiser", s)
    torch.testing.assert_close(model(x, t), z)
    torch.testing.assert_close(seen["y"], x / 0.7)
    assert float(seen["sigma"]) == pytest.approx(0.3 / 0.7)


@pytest.mark.parametrize("name", ["flow", "ve", "linear"])
def test_eps_is_minus_sigma_times_the_autograd_score(name):
    s = ob.schedules.get(name)
    prob = ob.problems.get("gmm-2d", schedule=s)
    for t in (0.05, 0.5, 0.9):
        x = prob.sample_marginal(6, t, torch.Generator().manual_seed(2)).requires_grad_(True)
        (grad,) = torch.autograd.grad(prob.log_prob(x, t).sum(), x)
        torch.testing.assert_close(prob.eps(x, t), -s.sigma(t) * grad, rtol=1e-9, atol=1e-10)


def test_flow_noise_end_is_exact_in_the_direct_forms():
    """At t = 1 under flow matching x = z: eps = x, E[x0 | x] = the data mean, and the
    velocity x - mean; only the eps -> x0 conversion is ill-posed there (0 / 0)."""
    s = ob.schedules.get("flow")
    prob = ob.problems.get("gmm-2d", schedule=s)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(3), dtype=D)
    mean = (prob.weights[:, None] * prob.means).sum(0)
    torch.testing.assert_close(prob.eps(x, 1.0), x, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(prob.x0_pred(x, 1.0), mean.expand(4, 2), rtol=1e-14, atol=1e-15)
    velocity = ob.models.from_prediction(prob.prediction("velocity"), "velocity", s)
    torch.testing.assert_close(velocity.native(x, 1.0), x - mean, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(velocity.x0(x, 1.0), mean.expand(4, 2), rtol=1e-14, atol=1e-14)
    eps_model = ob.models.from_prediction(prob.eps, "eps", s)
    with pytest.raises(ValueError, match="0 / 0 where alpha = 0"):
        eps_model.x0(x, 1.0)
    x0_model = ob.models.from_prediction(prob.x0_pred, "x0", s)
    with pytest.raises(ValueError, match="0 / 0 where sigma = 0"):
        x0_model(x, 0.0)


def test_unknown_kinds_and_bad_models_are_refused():
    s = ob.schedules.get("flow")
    with pytest.raises(ValueError, match=r"unknown prediction kind 'flow' \(choose from eps, x0"):
        ob.models.from_prediction(lambda x, t: x, "flow", s)
    with pytest.raises(ValueError, match="callable"):
        ob.models.from_prediction(3.0, "eps", s)
    with pytest.raises(ValueError, match="unknown schedule"):
        ob.models.from_prediction(lambda x, t: x, "eps", "rectified-flow")
    with pytest.raises(ValueError, match="unknown prediction kind"):
        ob.problems.get("gmm-2d").prediction("sample")
