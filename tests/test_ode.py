"""The probability-flow ODE: its sign, pinned three independent ways, and its time variables."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import odebench as ob
from odebench.ode import TIME_VARIABLES, drift_coefficients, rhs, rhs_from_eps
from odebench.solvers.transfer import DDIMTransfer

D = torch.float64
SCHEDULES = ["linear", "cosine", "scaled-linear", "cosine-s0", "edm", "ddpm-linear-1000"]


@pytest.mark.parametrize("name", SCHEDULES)
@given(t=st.floats(0.05, 0.95), seed=st.integers(0, 2**16))
def test_ddim_transfer_small_step_limit_is_the_ode(name, t, seed):
    """(phi(x, e, t, t - delta) - x) / (-delta) -> f(x, t) as delta -> 0, with error O(delta).

    This pins the sign of the ODE in forward time: a flipped sign gives -f, a factor error
    gives a constant offset that does not shrink with delta."""
    sched = ob.schedules.get(name)
    t = min(t, sched.t_hi - 1e-3)
    g = torch.Generator().manual_seed(seed)
    x, e = torch.randn(4, 3, generator=g, dtype=D), torch.randn(4, 3, generator=g, dtype=D)
    tt = torch.tensor(t, dtype=D)
    f = rhs_from_eps(sched, x, tt, e)
    errs = []
    for delta in (1e-4, 1e-5):
        moved = DDIMTransfer().step(sched, x, e, tt, tt - delta)
        errs.append(float(((moved - x) / -delta - f).norm() / f.norm()))
    assert errs[1] < 2e-4
    assert errs[1] < errs[0] / 5 or errs[1] < 1e-9  # shrinks like delta


def test_rhs_matches_the_papers_formula():
    """dx/dt = abar' (x / (2 abar) - eps / (2 abar sqrt(1 - abar))), written out."""
    sched = ob.schedules.get("linear")
    t = torch.tensor(0.37, dtype=D)
    x, e = torch.randn(5, 2, dtype=D), torch.randn(5, 2, dtype=D)
    a, da = sched.alpha_bar(t), sched.alpha_bar_deriv(t)
    paper = da * (x / (2 * a) - e / (2 * a * torch.sqrt(1 - a)))
    torch.testing.assert_close(rhs_from_eps(sched, x, t, e), paper, rtol=1e-13, atol=0)
    assert float(da) < 0  # abar decreases in forward time


@pytest.mark.parametrize("name", ["linear", "cosine", "edm"])
def test_exact_gaussian_flow_moves_along_the_rhs(name):
    """d/dt flow(x, s, t) equals f(flow, t): the ODE and the closed-form flow agree in sign."""
    prob = ob.problems.get("gaussian-lowrank", name)
    x = prob.sample_marginal(6, 0.8, torch.Generator().manual_seed(1))
    for t in (0.7, 0.3, 0.05):
        h = 1e-5
        fd = (prob.flow(x, 0.8, t + h) - prob.flow(x, 0.8, t - h)) / (2 * h)
        here = prob.flow(x, 0.8, t)
        torch.testing.assert_close(fd, rhs(prob.eps, prob.schedule, here, t), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("var", ["lambda", "sigma_tilde"])
def test_time_variables_describe_the_same_flow(var):
    """dy/dv * dv/dt mapped back to x equals dx/dt."""
    sched = ob.schedules.get("cosine")
    prob = ob.problems.get("gmm-2d", sched)
    tv = TIME_VARIABLES[var]
    x = prob.sample_marginal(5, 0.4, torch.Generator().manual_seed(2))
    t, h = torch.tensor(0.4, dtype=D), 1e-6
    v = tv.of_t(sched, t)
    dv_dt = (tv.of_t(sched, t + h) - tv.of_t(sched, t - h)) / (2 * h)
    dy_dt = tv.rhs(prob.eps, sched, tv.state(sched, x, t), v) * dv_dt
    # y = x / alpha(t) for sigma_tilde: dx/dt = alpha dy/dt + alpha' y
    alpha = sched.alpha(t)
    dalpha = (sched.alpha(t + h) - sched.alpha(t - h)) / (2 * h)
    dx_dt = alpha * dy_dt + dalpha * tv.state(sched, x, t) if var == "sigma_tilde" else dy_dt
    torch.testing.assert_close(dx_dt, rhs(prob.eps, sched, x, t), rtol=1e-6, atol=1e-8)


def test_eps_coefficient_is_singular_only_where_beta0_is_positive():
    """beta / (2 sigma) grows like t^-1/2 for "linear", stays bounded for "cosine-s0"."""
    t = torch.tensor([1e-6, 1e-8], dtype=D)
    _, lin = drift_coefficients(ob.schedules.get("linear"), t)
    assert float(lin[1] / lin[0]) == pytest.approx(10.0, rel=1e-3)
    _, cos0 = drift_coefficients(ob.schedules.get("cosine-s0"), t)
    assert float(cos0[1] / cos0[0]) == pytest.approx(1.0, rel=1e-6)


def test_unknown_time_variable():
    with pytest.raises(ValueError, match="unknown time variable 'tau'"):
        ob.ode.time_variable("tau")


def test_eps_coefficient_at_t0_is_its_limit():
    """inf where beta(0) > 0; the finite limit (pi/2, sigma_max) where the schedule is regular,
    so a classical stage at t = 0 is only fatal on singular schedules."""
    zero = torch.tensor(0.0, dtype=D)
    assert math.isinf(float(drift_coefficients(ob.schedules.get("linear"), zero)[1]))
    cos0 = float(drift_coefficients(ob.schedules.get("cosine-s0"), zero)[1])
    assert cos0 == pytest.approx(math.pi / 2, rel=1e-8)
    assert float(drift_coefficients(ob.schedules.get("edm"), zero)[1]) == pytest.approx(80.0)
    prob = ob.problems.get("gmm-2d", "cosine-s0")
    x = prob.sample_marginal(4, 0.9, torch.Generator().manual_seed(0))
    ts = ob.timesteps(20, "uniform", 0.9, 0.0)
    sol = ob.solve("rk4", prob.eps, prob.schedule, x, ts)
    assert sol.diverged is None and torch.isfinite(sol.x).all()
    lin = prob.with_schedule("linear")
    assert ob.solve("rk4", lin.eps, lin.schedule, x, ts).diverged is not None
