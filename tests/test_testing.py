"""odebench.testing: a sampler author's order check, on k-diffusion-style functions too."""

from __future__ import annotations

import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import odebench as ob
from odebench.testing import KDiffusionSampler, assert_order, measure_order
from odebench.testing import strategies as obst


def sample_euler(model, x, sigmas):
    """k-diffusion's sample_euler without churn: Euler in sigma on d = (x - D(x)) / sigma."""
    for i in range(len(sigmas) - 1):
        d = (x - model(x, sigmas[i])) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def sample_dpmpp_2m(model, x, sigmas, planted_bug=False):
    """k-diffusion's DPM-Solver++(2M) in the variable t = -log sigma."""
    old = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        if old is None or sigmas[i + 1] == 0:
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * denoised
        else:
            r = (t - (-sigmas[i - 1].log())) / h
            w = 1 / r if planted_bug else 1 / (2 * r)  # the bug: twice the correction
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * ((1 + w) * denoised - w * old)
        old = denoised
    return x


def buggy(model, x, sigmas):
    return sample_dpmpp_2m(model, x, sigmas, planted_bug=True)


@pytest.mark.parametrize(
    "sampler, order",
    [(sample_euler, 1), (sample_dpmpp_2m, 2), ("heun", 2), ("dpm-solver-3", 3)],
)
def test_correct_samplers_pass_in_seconds(sampler, order):
    start = time.perf_counter()
    fit = assert_order(sampler, order)
    assert fit.ci_low <= order + 0.25 and fit.ci_high >= order - 0.25
    assert time.perf_counter() - start < 10


def test_the_planted_bug_fails_with_the_errors_and_slopes():
    with pytest.raises(AssertionError) as info:
        assert_order(buggy, 2)
    message = str(info.value)
    assert "expected order 2" in message and "local slope" in message
    assert measure_order(buggy).slope < 1.3  # clearly less than 2: the bug costs an order


def test_options_and_bad_input():
    fit = measure_order(sample_euler, schedule="cosine", to_data=False, steps=(20, 40, 80))
    assert 0.8 < fit.slope < 1.2
    with pytest.raises(ValueError, match="at least 3 step counts"):
        measure_order(sample_euler, steps=(10, 20))
    with pytest.raises(ValueError, match="callable"):
        KDiffusionSampler(3)
    with pytest.raises(ValueError, match="returned"):
        measure_order(lambda model, x, sigmas: x[:1])


@given(prob=obst.mixtures(), data=st.data())
@settings(max_examples=30, deadline=None)
def test_the_strategies_give_valid_problems_and_grids(prob, data):
    ts = data.draw(obst.grids(prob.schedule))
    assert ts.ndim == 1 and len(ts) >= 2 and bool((ts[1:] < ts[:-1]).all())
    ob.grids.check_grid(ts, prob.schedule)
    x = prob.sample_marginal(4, float(ts[0]))
    assert bool(torch.isfinite(prob.eps(x, ts[0])).all())
    sol = ob.solve("ddim", prob.eps, prob.schedule, x, ts)
    assert sol.diverged is None


@given(sched=obst.schedules(), data=st.data())
@settings(max_examples=30, deadline=None)
def test_a_property_test_written_with_them(sched, data):
    """What a user writes with the strategies: DDIM is exact on Dirac data under any schedule
    and grid (Liu et al. 2022, Property 3.1), so its states are alpha x0 + sigma n."""
    ts = data.draw(obst.grids(sched, max_steps=20))
    point = torch.tensor([1.5, -0.5], dtype=torch.float64)
    prob = ob.problems.Dirac(point, sched)
    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = sched.alpha(ts[0]) * point + sched.sigma(ts[0]) * noise
    out = ob.solve("ddim", prob.eps, sched, x, ts).x
    exact = sched.alpha(ts[-1]) * point + sched.sigma(ts[-1]) * noise
    assert float((out - exact).abs().max()) < 1e-9 * (1.0 + float(exact.abs().max()))


def test_a_diffusers_scheduler_instance_is_measured_as_a_pipeline_drives_it():
    diffusers = pytest.importorskip("diffusers")
    start = time.perf_counter()
    fit = assert_order(diffusers.DDIMScheduler(clip_sample=False), 1, steps=(25, 50, 100, 200, 400))
    assert 0.8 < fit.slope < 1.3 and time.perf_counter() - start < 15


class _ExactAsNetwork(torch.nn.Module):
    """The exact eps of a problem behind a network's interface (fed t): a 'network' whose ODE
    odebench can also solve exactly, so model= can be checked against the analytic path."""

    def __init__(self, prob):
        super().__init__()
        self.prob = prob

    def forward(self, x, t):
        return self.prob.eps(x, t)


def test_measure_order_on_your_own_model_matches_the_analytic_measurement():
    import odebench as ob
    from odebench.testing import measure_order

    prob = ob.problems.get("gaussian-lowrank", "linear")
    x_T = prob.sample_marginal(8, 1.0, torch.Generator().manual_seed(0))
    net = ob.models.NetworkModel(_ExactAsNetwork(prob), dtype=torch.float64)
    steps = (20, 40, 80)
    for sampler in ("ddim", "dpm-solver++-2m"):
        on_model = measure_order(sampler, model=net, x_T=x_T, steps=steps)
        analytic = measure_order(sampler, steps=steps, n_samples=8)
        # same start states (seed 0, 8 samples) and field: the same errors, to the references'
        # accuracy; only the reference differs (adaptive solve vs the exact flow)
        for a, b in zip(on_model.err, analytic.err, strict=True):
            assert abs(a - b) <= 1e-10 + 1e-7 * b
    with pytest.raises(ValueError, match="needs x_T="):
        measure_order("ddim", model=net)
