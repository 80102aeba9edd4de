"""Stochastic samplers: reproducible noise, the ODE at eta = 0, exact output laws on Gaussian
data, and their weak and strong orders."""

import math

import pytest
import torch

import odebench as ob
from odebench.laws import exact_law, marginal, weak_error
from odebench.solvers import BrownianNoise, BrownianPath
from odebench.solvers.runge_kutta import RungeKuttaSolver
from odebench.solvers.tableau import EULER
from odebench.solvers.transfer import EDMTransfer

D = torch.float64
SDE = ob.solvers.sde_names()
MEAN = torch.tensor([1.0, -0.5], dtype=D)
COV = torch.tensor([[0.3, 0.1], [0.1, 0.05]], dtype=D)


def gaussian(schedule="linear"):
    return ob.problems.Gaussian(MEAN, COV, schedule)


def t_max_of(sched):
    return 80 / 81 if sched.interpolant == "flow" else sched.t_hi


def test_the_samplers_are_stochastic_and_the_ode_solvers_are_not():
    assert {"ddpm", "ddim-eta", "euler-ancestral", "sde-dpm-solver++-2m", "edm-churn"} <= set(SDE)
    assert all(ob.solvers.get(n).stochastic for n in SDE)
    assert not any(ob.solvers.get(n).stochastic for n in ob.solvers.names())
    assert not set(SDE) & set(ob.solvers.names())


@pytest.mark.parametrize("name", SDE)
def test_the_same_seed_gives_the_same_samples(name):
    prob = ob.problems.get("gmm-2d")
    ts = ob.timesteps(20, t_min=1e-2)
    x = prob.sample_marginal(16, 1.0, torch.Generator().manual_seed(0))

    def run(seed):
        return ob.solve(
            name, prob.eps, prob.schedule, x, ts, generator=torch.Generator().manual_seed(seed)
        ).x

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_zero_noise_is_the_ode_sampler_bit_for_bit():
    prob = ob.problems.get("gmm-2d")
    sched, ts = prob.schedule, ob.timesteps(25, t_min=1e-3)
    x = prob.sample_marginal(32, 1.0, torch.Generator().manual_seed(0))
    g = torch.Generator()

    def same(sde, ode, **options):
        a = ob.solve(sde, prob.eps, sched, x, ts, generator=g, **options).x
        b = ob.solve(ode, prob.eps, sched, x, ts).x
        assert torch.equal(a, b), sde

    same("ddim-eta", "ddim", eta=0.0)
    same("euler-maruyama", "euler", eta=0.0)
    same("edm-churn", "edm-heun", S_churn=0.0)
    euler_in_sigma = RungeKuttaSolver("euler-sigma", EULER, EDMTransfer(), 1, "", "")
    same("euler-ancestral", euler_in_sigma, eta=0.0)


@pytest.mark.parametrize("schedule", ["linear", "flow", "ve"])
def test_ddpm_is_ancestral_euler_is_the_first_order_sde_dpm_solver_pp(schedule):
    """DDPM's posterior step, k-diffusion's ancestral Euler (eta = 1) and SDE-DPM-Solver++(1)
    are one map written three ways: with one noise source they agree to round-off."""
    prob = ob.problems.get("gmm-2d", schedule=schedule)
    sched = prob.schedule
    ts = ob.timesteps(15, t_max=t_max_of(sched), t_min=1e-2)
    x = prob.sample_marginal(8, ts[0], torch.Generator().manual_seed(0))
    outs = [
        ob.solve(n, prob.eps, sched, x, ts, generator=torch.Generator().manual_seed(5)).x
        for n in ("ddpm", "euler-ancestral", "sde-dpm-solver++-1", "ddim-eta")
    ]
    for other in outs[1:]:
        torch.testing.assert_close(other, outs[0], rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("name", [*SDE, "ddim", "heun"])
def test_the_exact_law_is_the_law_of_1e5_samples(name):
    """The propagated law (one probe run, no Monte Carlo) against 10^5 samples: the mean and
    every covariance entry within 4.5 standard errors."""
    prob = gaussian()
    ts = ob.timesteps(8, t_min=1e-2)
    law = exact_law(name, prob, ts)
    n = 100_000
    x = prob.sample_marginal(n, float(ts[0]), torch.Generator().manual_seed(11))
    kw = {"generator": torch.Generator().manual_seed(12)} if ob.solvers.get(name).stochastic else {}
    out = ob.solve(name, prob.eps, prob.schedule, x, ts, **kw).x
    S = law.cov
    se_mean = (S.diagonal() / n).sqrt()
    assert float(((out.mean(0) - law.mean) / se_mean).abs().max()) < 4.5
    se_cov = ((S.diagonal()[:, None] * S.diagonal()[None] + S**2) / n).sqrt()
    assert float(((torch.cov(out.T) - S) / se_cov).abs().max()) < 4.5


def test_the_exact_law_of_the_ode_is_its_push_forward():
    """For a deterministic solver the law's factor is the flow map's Jacobian times the start's
    factor: with the exact Gaussian flow (pf at tight tolerance) the law is the marginal."""
    prob = gaussian()
    ts = ob.timesteps(6, t_min=1e-2)
    law = exact_law(ob.solvers.get("pf", rtol=1e-11, atol=1e-11), prob, ts)
    assert weak_error(law, marginal(prob, float(ts[-1]))).w2 < 1e-8


def _slope(name, sched_name, steps=(160, 320), **options):
    prob = gaussian(sched_name)
    sched = prob.schedule
    errs = []
    for n in steps:
        ts = ob.timesteps(n, "lambda", t_max=t_max_of(sched), t_min=1e-2, schedule=sched)
        law = exact_law(name, prob, ts, **options)
        errs.append(weak_error(law, marginal(prob, float(ts[-1]))).w2)
    return math.log2(errs[0] / errs[1]), errs


@pytest.mark.parametrize("schedule", ["linear", "flow", "ve"])
@pytest.mark.parametrize("name", [n for n in SDE if ob.solvers.get(n).weak_order])
def test_weak_orders_are_as_declared(name, schedule):
    """Exact W2 to the target marginal, from 160 to 320 steps uniform in lambda. SDE-DPM-Solver-1
    under flow is still above its order 1 there (1.90: pre-asymptotic), hence the upper slack."""
    slope, errs = _slope(name, schedule)
    order = ob.solvers.get(name).weak_order
    assert order - 0.15 < slope < order + 1.0, errs


@pytest.mark.parametrize("name", ["sde-dpm-solver-2m", "sde-dpm-solver++-2m"])
def test_the_2m_sde_solvers_are_weak_order_2_on_gaussians(name):
    """No published weak order; measured 2.0 on Gaussian data (linear, flow, ve)."""
    for schedule in ("linear", "ve"):
        slope, errs = _slope(name, schedule)
        assert 1.85 < slope < 2.3, (schedule, errs)


def test_strong_order_one_against_a_fine_run_on_the_same_brownian_path():
    prob = gaussian()
    sched = prob.schedule
    x = prob.sample_marginal(128, 1.0, torch.Generator().manual_seed(0))
    fine = ob.timesteps(2048, t_max=1.0, t_min=1e-2)
    path = BrownianPath(fine, (128, 2), torch.Generator().manual_seed(3))
    for name in ("ddpm", "euler-maruyama", "sde-dpm-solver-1"):
        ref = ob.solve(name, prob.eps, sched, x, fine, noise=BrownianNoise(path)).x
        errs = []
        for n in (128, 256):
            out = ob.solve(
                name, prob.eps, sched, x, ob.timesteps(n, t_min=1e-2), noise=BrownianNoise(path)
            ).x
            errs.append(float((out - ref).norm(dim=1).pow(2).mean().sqrt()))
        slope = math.log2(errs[0] / errs[1])
        assert ob.solvers.get(name).strong_order - 0.15 < slope < 1.4, (name, errs)


def test_bad_input_is_refused():
    prob = ob.problems.get("gmm-2d")
    sched, ts = prob.schedule, ob.timesteps(5, t_min=1e-2)
    x = prob.sample_marginal(4, 1.0, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="eta must be >= 0"):
        ob.solvers.get("ddim-eta", eta=-0.5)
    with pytest.raises(ValueError, match="finite"):
        ob.solvers.get("euler-ancestral", eta=math.nan)
    with pytest.raises(ValueError, match="S_churn"):
        ob.solvers.get("edm-churn", S_churn=-1.0)
    with pytest.raises(ValueError, match="deterministic"):
        ob.solve("ddim", prob.eps, sched, x, ts, generator=torch.Generator())
    with pytest.raises(ValueError, match="not both"):
        ob.solve(
            "ddpm", prob.eps, sched, x, ts, generator=torch.Generator(), noise=lambda x, t, s: x
        )
    with pytest.raises(ValueError, match="torch.Generator"):
        ob.solve("ddpm", prob.eps, sched, x, ts, generator=3)
    with pytest.raises(ValueError, match="generator is on cpu"):
        ob.solvers.GaussianNoise(torch.Generator())(torch.empty(2, 2, device="meta"), 1.0, 0.5)
    path = BrownianPath(ob.timesteps(8, t_min=1e-2), (4, 2), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="nested grids"):
        ob.solve("ddpm", prob.eps, sched, x, ob.timesteps(3, t_min=1e-2), noise=BrownianNoise(path))


@pytest.mark.parametrize("schedule", ob.schedules.names())
def test_every_sampler_runs_under_every_schedule(schedule):
    """Finite samples whose mean and spread are those of the data (gmm-2d: the exact law is
    not Gaussian, so only loose moments), from a seeded generator, on every schedule (40
    steps uniform in lambda: uniform in t, VE's last step alone spans sigma 2.1 -> 0.08)."""
    prob = ob.problems.get("gmm-2d", schedule=schedule)
    sched = prob.schedule
    ts = ob.timesteps(40, "lambda", t_max=t_max_of(sched), t_min=1e-3, schedule=sched)
    x = prob.sample_marginal(512, ts[0], torch.Generator().manual_seed(0))
    data = prob.sample(4096, torch.Generator().manual_seed(1))
    for name in SDE:
        out = ob.solve(name, prob.eps, sched, x, ts, generator=torch.Generator().manual_seed(2)).x
        assert bool(torch.isfinite(out).all()), name
        assert float((out.mean(0) - data.mean(0)).norm()) < 0.25, name
        assert abs(float(out.std() / data.std()) - 1.0) < 0.15, name
