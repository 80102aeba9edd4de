"""Every schedule is an interpolant x = alpha x0 + sigma z: VP, VE / EDM, flow matching, and
random (alpha, sigma) pairs. The ODE, its derivatives and the DDIM map must hold for all."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import odebench as ob
from odebench.schedules import Schedule
from odebench.solvers import variants
from odebench.solvers.transfer import DataTransfer, DDIMTransfer

D = torch.float64
ALL = ob.schedules.names()


class PowerInterpolant(Schedule):
    """alpha = exp(-a t - b t^2), sigma = c t^p: a test family with no closed-form inverse
    (t(lambda) by the base class's bisection) and no relation between alpha and sigma."""

    interpolant = "test"

    def __init__(self, a: float, b: float, c: float, p: float):
        self.a, self.b, self.c, self.p, self.name = a, b, c, p, "power"

    def _alpha(self, t):
        return torch.exp(-self.a * t - self.b * t * t)

    def _sigma(self, t):
        return self.c * t**self.p

    def _lambda(self, t):
        return -self.a * t - self.b * t * t - math.log(self.c) - self.p * torch.log(t)

    def _dlog_alpha(self, t):
        return -self.a - 2.0 * self.b * t

    def _c_eps(self, t):  # -sigma lambda' = sigma (a + 2 b t + p / t)
        return self.c * (
            self.a * t**self.p + 2.0 * self.b * t ** (self.p + 1) + self.p * t ** (self.p - 1)
        )


power_schedules = st.builds(
    PowerInterpolant,
    st.floats(0.0, 3.0),
    st.floats(0.0, 3.0),
    st.floats(0.2, 50.0),
    st.floats(0.5, 2.0),
)


def _fd(f, t, h=1e-6):
    return (f(t + h) - f(t - h)) / (2 * h)


@pytest.mark.parametrize("name", ALL)
def test_derivatives_and_ode_coefficients_are_exact(name):
    """alpha', sigma' against centred differences; c_eps = sigma' - sigma alpha'/alpha and
    d log alpha / d lambda = (alpha'/alpha) / lambda' from their definitions."""
    s = ob.schedules.get(name)
    t = torch.linspace(s.t_lo + 1e-3, s.t_hi - 1e-3, 97, dtype=D)
    a, sg = s.alpha(t), s.sigma(t)
    torch.testing.assert_close(s.alpha_deriv(t), _fd(s.alpha, t), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(s.sigma_deriv(t), _fd(s.sigma, t), rtol=1e-6, atol=1e-8)
    dlog_alpha = s.alpha_deriv(t) / a
    torch.testing.assert_close(s.beta(t), -2 * dlog_alpha, rtol=1e-12, atol=1e-12)
    c_eps = s.sigma_deriv(t) - sg * dlog_alpha
    torch.testing.assert_close(s.eps_coefficient(t), c_eps, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s.eps_coefficient(t), -sg * _fd(s.lambda_, t), rtol=1e-5, atol=1e-8)
    lam_rate = -s.eps_coefficient(t) / sg
    torch.testing.assert_close(
        s.dlog_alpha_dlambda(t), dlog_alpha / lam_rate, rtol=1e-10, atol=1e-14
    )
    torch.testing.assert_close(s.lambda_(t), torch.log(a / sg), rtol=1e-12, atol=1e-12)


@given(sched=power_schedules, u=st.floats(0.01, 0.99))
@settings(max_examples=40, deadline=None)
def test_a_user_interpolant_gets_every_derived_quantity(sched, u):
    t = torch.tensor([u], dtype=D)
    lam = sched.lambda_(t)
    assert float(sched.t_from_lambda(lam)) == pytest.approx(u, rel=1e-10)
    c = sched.scalars(u)
    assert c.alpha == pytest.approx(float(sched.alpha(t)))
    assert c.c_eps == pytest.approx(float(-sched.sigma(t) * _fd(sched.lambda_, t)), rel=1e-5)
    torch.testing.assert_close(sched.sigma_deriv(t), _fd(sched.sigma, t), rtol=1e-6, atol=1e-8)


def test_the_singular_ends_are_exact():
    flow, ve = ob.schedules.get("flow"), ob.schedules.get("ve")
    at_one = flow.scalars(1.0)
    assert (at_one.alpha, at_one.sigma, at_one.lam) == (0.0, 1.0, -math.inf)
    assert float(flow.t_from_lambda(-math.inf)) == 1.0
    assert float(flow.t_from_lambda(math.inf)) == 0.0
    assert float(flow.sigma_tilde(1.0)) == math.inf
    assert (float(flow.alpha_deriv(1.0)), float(flow.sigma_deriv(1.0))) == (-1.0, 1.0)
    assert ve.scalars(0.0).lam == math.inf and ve.eps_coefficient_at_zero() == 80.0
    assert float(ve.t_from_sigma_tilde(0.002)) == pytest.approx(0.002 / 80, rel=1e-14)
    assert ob.schedules.names("flow") == ["flow"] and ob.schedules.names("ve") == ["ve"]
    assert "linear" in ob.schedules.names("vp") and "flow" not in ob.schedules.names("vp")


def test_ode_rhs_is_the_interpolant_velocity_on_dirac_data():
    """For one data point the exact trajectory is x_t = alpha x0 + sigma n with n fixed, so
    dx/dt = alpha' x0 + sigma' n: the ODE's right-hand side from eps must equal it."""
    for name in ALL:
        s = ob.schedules.get(name)
        prob = ob.problems.Dirac(torch.tensor([0.7, -1.3], dtype=D), s)
        n = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=D)
        for t in (0.05, 0.4, 0.9):
            x = s.alpha(t) * prob.mean + s.sigma(t) * n
            velocity = s.alpha_deriv(t) * prob.mean + s.sigma_deriv(t) * n
            torch.testing.assert_close(
                ob.ode.rhs(prob.eps, s, x, t), velocity, rtol=1e-10, atol=1e-10
            )


@pytest.mark.parametrize("name", ALL)
def test_the_data_map_and_the_ddim_map_are_one_map(name):
    """DPM-Solver++ is the x0 form of the DDIM map: with the same eps they move x alike,
    under every interpolant (Lu et al. 2022b; Liu et al. 2022, Eq. 9)."""
    s = ob.schedules.get(name)
    g = torch.Generator().manual_seed(2)
    x, eps = torch.randn(4, 3, generator=g, dtype=D), torch.randn(4, 3, generator=g, dtype=D)
    for t, u in ((0.9, 0.5), (0.5, 0.49), (0.3, 0.0), (0.02, 0.001)):
        t, u = t * s.t_hi, u * s.t_hi
        ddim = DDIMTransfer().step(s, x, eps, t, u)
        data = DataTransfer().step(s, x, DataTransfer().slope(s, x, t, eps), t, u)
        torch.testing.assert_close(data, ddim, rtol=1e-10, atol=1e-10)


def test_flow_matching_euler_is_ddim():
    """Under flow matching the DDIM map is Euler's step in t on the velocity: the two solvers
    agree to round-off on any grid (here a shifted one, as SD3 samples)."""
    s = ob.schedules.get("flow")
    prob = ob.problems.get("gmm-2d", schedule=s)
    ts = ob.timesteps(12, t_max=0.98, t_min=1e-3, shift=3.0)
    x_T = prob.sample_marginal(32, ts[0], torch.Generator().manual_seed(3))
    ddim = ob.solve("ddim", prob.eps, s, x_T, ts, trajectory=True).trajectory
    euler = ob.solve("euler", prob.eps, s, x_T, ts, trajectory=True).trajectory
    assert float((ddim - euler).abs().max()) < 1e-12 * float(ddim.abs().max())
    vp = ob.schedules.get("linear")  # the control: on VP the two are different methods
    prob_vp = prob.with_schedule(vp)
    a = ob.solve("ddim", prob_vp.eps, vp, x_T, ts).x
    b = ob.solve("euler", prob_vp.eps, vp, x_T, ts).x
    assert float((a - b).abs().max()) > 1e-3


def test_edm_heun_is_heun_in_t_on_the_ve_schedule():
    """EDM's sampler is Heun in sigma for x / alpha (Karras et al. 2022, Algorithm 1); under
    VE x / alpha = x and sigma = 80 t, so away from sigma = 0 it is classical Heun in t."""
    s = ob.schedules.get("ve")
    prob = ob.problems.get("gmm-2d", schedule=s)
    ts = ob.timesteps(10, "karras", t_max=1.0, t_min=0.002 / 80, schedule=s)
    x_T = prob.sample_marginal(16, ts[0], torch.Generator().manual_seed(4))
    a = ob.solve("edm-heun", prob.eps, s, x_T, ts).x
    b = ob.solve("heun", prob.eps, s, x_T, ts).x
    assert float((a - b).abs().max()) < 1e-12 * float(a.abs().max())


NON_VARIANT = [n for n in ob.solvers.names() if n not in variants.FACTORIES]


@pytest.mark.parametrize("name", ["flow", "ve"])
def test_every_solver_runs_on_every_interpolant(name):
    s = ob.schedules.get(name)
    prob = ob.problems.get("gmm-2d", schedule=s)
    t_max = 80 / 81 if name == "flow" else 1.0  # flow: sigma / alpha = 80, as EDM's sigma_max
    ts = ob.timesteps(30, "karras", t_max=t_max, t_min=1e-3, schedule=s)
    x_T = prob.sample_marginal(4, ts[0], torch.Generator().manual_seed(5))
    truth = ob.solve("pf", prob.eps, s, x_T, ts).x
    for solver in NON_VARIANT:
        out = ob.solve(solver, prob.eps, s, x_T, ts).x
        assert bool(torch.isfinite(out).all()), solver
        # 30 steps: 3.5% for the first-order methods, < 1% for every other one
        assert float((out - truth).norm() / truth.norm()) < 0.05, solver


@pytest.mark.parametrize("name", ["flow", "ve", "edm", "cosine"])
def test_the_gaussian_flow_map_holds_under_every_interpolant(name):
    """x_t - alpha_t m = U sqrt(C(t) / C(s)) U^T (x_s - alpha_s m), C = alpha^2 L + sigma^2:
    checked against an adaptive solve of the ODE itself."""
    s = ob.schedules.get(name)
    cov = torch.tensor([[1.0, 0.3], [0.3, 0.2]], dtype=D)
    prob = ob.problems.Gaussian(torch.tensor([1.0, -0.5], dtype=D), cov, s)
    t_max = min(0.95, s.t_hi)
    x_T = prob.sample_marginal(8, t_max, torch.Generator().manual_seed(6))
    ts = torch.tensor([t_max, 0.3, 0.01], dtype=D)
    pf = ob.solve(ob.solvers.get("pf", rtol=1e-11, atol=1e-11), prob.eps, s, x_T, ts).x
    exact = prob.flow(x_T, ts[0], ts[-1])
    assert float((pf - exact).abs().max()) < 1e-8


def test_flow_grids_start_below_the_noise_end():
    s = ob.schedules.get("flow")
    prob = ob.problems.get("gmm-2d", schedule=s)
    x = torch.zeros(2, 2, dtype=D)
    with pytest.raises(ValueError, match="alpha = 0"):
        ob.solve("ddim", prob.eps, s, x, ob.timesteps(4))


def test_time_shift_grids():
    ts = ob.timesteps(10, t_max=1.0, t_min=0.0, shift=3.0)
    assert float(ts[0]) == 1.0 and float(ts[-1]) == 0.0
    u = torch.linspace(1.0, 0.0, 11, dtype=D)
    torch.testing.assert_close(ts, 3 * u / (1 + 2 * u), rtol=0, atol=1e-15)
    assert float(ts[5]) > 0.5  # shift > 1 spends more steps at high noise
    same = ob.timesteps(10, t_max=0.9, t_min=0.01, shift=1.0)
    torch.testing.assert_close(same, ob.timesteps(10, t_max=0.9, t_min=0.01), rtol=0, atol=0)
    assert ob.grids.flux_shift(256) == pytest.approx(math.exp(0.5))
    assert ob.grids.flux_shift(4096) == pytest.approx(math.exp(1.15))
    for bad in (0.0, -1.0, math.inf, "3"):
        with pytest.raises(ValueError, match="shift"):
            ob.timesteps(10, shift=bad)
    with pytest.raises(ValueError, match="image_seq_len"):
        ob.grids.flux_shift(0)


def test_unknown_names_say_what_exists():
    with pytest.raises(ValueError, match="flow"):
        ob.schedules.get("rectified")
    with pytest.raises(ValueError, match="choose from vp, ve, flow"):
        ob.schedules.names("edm")
    with pytest.raises(ValueError, match="sigma_max"):
        ob.schedules.get("ve", sigma_max=-1.0)


NOISE_END_SOLVERS = [n for n in NON_VARIANT if ob.solvers.get(n).starts_at_noise_end]


def test_which_solvers_start_at_the_flow_noise_end():
    assert {"euler", "heun", "rk4", "fon", "dpm-solver++-2m"} <= set(NOISE_END_SOLVERS)
    assert not {"ddim", "s-pndm", "f-pndm", "unipc-2", "edm-heun"} & set(NOISE_END_SOLVERS)


@pytest.mark.parametrize("name", NOISE_END_SOLVERS)
def test_solvers_start_exactly_at_the_flow_noise_end(name):
    """At t = 1 (alpha = 0) x = z, eps = x and x0 = E[x0 | x_1] is the data mean: a model
    that predicts x0 itself gives the exact slope there, the velocity -x0 + x for the
    classical methods and x0 for DPM-Solver++'s data map x_s = sigma_s x + alpha_s x0.
    Measured against the exact Gaussian flow from t = 1, each keeps its declared order."""
    s = ob.schedules.get("flow")
    cov = torch.tensor([0.3, 0.05], dtype=D)
    prob = ob.problems.Gaussian(torch.tensor([1.0, -0.5], dtype=D), cov, s)
    velocity = ob.models.from_prediction(prob.prediction("velocity"), "velocity", s)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(7), dtype=D)
    exact = prob.flow(x, 1.0, 1e-2)
    solver = ob.solvers.get(name)
    errs = []
    for n in (160, 320):
        sol = ob.solve(solver, velocity, s, x, ob.timesteps(n, t_max=1.0, t_min=1e-2))
        assert sol.nfe == solver.nfe(n)
        errs.append(float((sol.x - exact).norm() / exact.norm()))
    slope = math.log2(errs[0] / errs[1])
    assert solver.order - 0.3 < slope < solver.order + 0.5, errs


def test_eps_steps_and_eps_models_refuse_the_flow_noise_end():
    s = ob.schedules.get("flow")
    prob = ob.problems.get("gmm-2d", schedule=s)
    velocity = ob.models.from_prediction(prob.prediction("velocity"), "velocity", s)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(8), dtype=D)
    ts = ob.timesteps(10, t_max=1.0, t_min=1e-2)
    with pytest.raises(ValueError, match="alpha = 0"):
        ob.solve("dpm-solver++-2m", prob.eps, s, x, ts)  # eps alone: x0 is 0 / 0
    with pytest.raises(ValueError, match="alpha = 0"):
        ob.solve("ddim", velocity, s, x, ts)  # a step built on eps
