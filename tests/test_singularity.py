"""Schedule singularities: coefficient exponents, stiffness, and which steps cost the accuracy.

Numbers asserted here were measured (see each test); the margins are stated next to them.
"""

import math
import warnings

import numpy as np
import pytest
import torch

import odebench as ob
from odebench.metrics import rms_error
from odebench.ode import drift_coefficients, rhs
from odebench.reference import reference
from odebench.singularity import (
    coefficient_curves,
    exponent_table,
    lipschitz,
    lipschitz_along_path,
    per_step_errors,
    singular_exponent,
)

F64 = torch.float64
BETA0_POSITIVE = [
    "linear",
    "scaled-linear",
    "cosine",
    "ddpm-linear-1000",
    "scaled-linear-1000",
    "cosine-1000",
]
BOUNDED = ["cosine-s0", "edm"]


# -- 1. coefficients and exponents --------------------------------------------------------------
@pytest.mark.parametrize("name", ob.schedules.names("vp"))
def test_coefficient_curves_agree_with_the_ode(name):
    sched = ob.schedules.get(name)
    t = torch.logspace(-6, math.log10(sched.t_hi), 50, dtype=F64)
    c_x, c_eps = drift_coefficients(sched, t)
    in_t = coefficient_curves(sched, t, "t")
    assert torch.equal(in_t["t"], t)
    assert torch.equal(in_t["x"], c_x.abs()) and torch.equal(in_t["eps"], c_eps.abs())
    # lambda: the t coefficients times |dt/dlambda| = 2 sigma^2 / beta (an independent route)
    in_lam = coefficient_curves(sched, t, "lambda")
    jac = 2.0 * sched.sigma(t) ** 2 / sched.beta(t)
    torch.testing.assert_close(in_lam["x"], c_x.abs() * jac, rtol=1e-12, atol=0)
    torch.testing.assert_close(in_lam["eps"], c_eps.abs() * jac, rtol=1e-12, atol=0)
    in_st = coefficient_curves(sched, t, "sigma_tilde")
    assert bool((in_st["x"] == 0).all()) and bool((in_st["eps"] == 1).all())


def test_coefficient_curves_refuse_bad_input():
    with pytest.raises(ValueError, match="time variable"):
        coefficient_curves("linear", torch.tensor([0.5]), "sigma")
    with pytest.raises(ValueError, match="times must lie"):
        coefficient_curves("cosine", torch.tensor([0.999]), "sigma_tilde")


@pytest.mark.parametrize("name", BETA0_POSITIVE)
def test_beta0_positive_schedules_are_singular_like_t_to_minus_half(name):
    # measured: -0.4990 (ddpm-linear-1000) .. -0.49997 (scaled-linear) over (1e-8, 1e-4)
    eps_t = singular_exponent(name, "t", "eps")
    assert eps_t["exponent"] == pytest.approx(-0.5, abs=0.02)
    assert eps_t["singular"] and eps_t["r2"] > 0.999
    assert singular_exponent(name, "t", "x")["exponent"] == pytest.approx(0.0, abs=0.02)
    # in lambda both coefficients vanish at t = 0: sigma ~ t^1/2, sigma^2 ~ t
    assert singular_exponent(name, "lambda", "eps")["exponent"] == pytest.approx(0.5, abs=0.02)
    assert singular_exponent(name, "lambda", "x")["exponent"] == pytest.approx(1.0, abs=0.02)
    assert not singular_exponent(name, "lambda", "eps")["singular"]


@pytest.mark.parametrize("name", ["linear", "ddpm-linear-1000"])
def test_close_to_zero_the_prefactor_is_sqrt_beta0_over_2(name):
    # c_eps = beta / (2 sigma) -> sqrt(beta(0)) / 2 * t^-1/2; for the table beta(0) is the
    # slope of the first spline piece (0.0900, not 1e-4 * T = 0.1)
    sched = ob.schedules.get(name)
    row = singular_exponent(sched, "t", "eps", t_range=(1e-10, 1e-7))
    beta0 = float(sched.beta(0.0))
    assert row["exponent"] == pytest.approx(-0.5, abs=1e-4)
    assert row["prefactor"] == pytest.approx(math.sqrt(beta0) / 2.0, rel=1e-3)
    assert row["residual"] < 1e-5


@pytest.mark.parametrize("name", BOUNDED)
def test_bounded_schedules_have_exponent_zero(name):
    row = singular_exponent(name, "t", "eps")
    assert row["exponent"] == pytest.approx(0.0, abs=0.02) and not row["singular"]
    assert singular_exponent(name, "t", "x")["exponent"] == pytest.approx(1.0, abs=0.02)
    assert singular_exponent(name, "lambda", "eps")["exponent"] == pytest.approx(1.0, abs=0.02)


def test_sigma_tilde_coefficients_and_the_zero_coefficient():
    zero = singular_exponent("linear", "sigma_tilde", "x")
    assert math.isnan(zero["exponent"]) and "identically 0" in zero["note"]
    one = singular_exponent("linear", "sigma_tilde", "eps")
    assert one["exponent"] == 0.0 and one["residual"] == 0.0 and math.isnan(one["r2"])


def test_discrete_fit_range_is_reported():
    inside = singular_exponent("ddpm-linear-1000")
    assert "first interpolation piece" in inside["note"]
    across = singular_exponent("ddpm-linear-1000", t_range=(1e-6, 1e-2))
    assert "knots" in across["note"]


def test_exponent_table_covers_every_schedule_variable_and_coefficient():
    rows = exponent_table()
    assert len(rows) == len(ob.schedules.names("vp")) * 3 * 2
    keys = {"schedule", "variable", "which", "exponent", "r2", "t_lo", "t_hi", "note"}
    assert all(keys <= set(r) for r in rows)
    singular = {r["schedule"] for r in rows if r["singular"]}
    assert singular == set(BETA0_POSITIVE)
    assert all(r["variable"] == "t" and r["which"] == "eps" for r in rows if r["singular"])


@pytest.mark.parametrize(
    "kwargs",
    [{"t_range": (0.0, 1e-4)}, {"t_range": (1e-3, 1e-4)}, {"n": 2}, {"which": "score"}],
)
def test_singular_exponent_refuses_bad_input(kwargs):
    with pytest.raises(ValueError):
        singular_exponent("linear", **kwargs)


# -- 2. Lipschitz constants ------------------------------------------------------------------
def exact_gaussian_lipschitz(gauss, t: float) -> float:
    """max_i |beta/2 (1/c_i - 1)|, c_i = abar l_i + 1 - abar: J = beta/2 (C^{-1} - I)."""
    sched, t = gauss.schedule, torch.tensor(t, dtype=F64)
    c = sched.alpha_bar(t) * gauss.evals[0] - torch.expm1(sched.log_alpha_bar(t))
    return float((0.5 * sched.beta(t) * (1.0 / c - 1.0)).abs().max())


def random_gaussian(d: int, schedule: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=F64)
    return ob.problems.Gaussian(torch.randn(d, generator=g, dtype=F64), a @ a.T / d, schedule)


@pytest.mark.parametrize(
    "problem",
    [
        ob.problems.get("gaussian-lowrank"),
        random_gaussian(8, "cosine", 1),
        random_gaussian(40, "linear", 2),
    ],
    ids=["gaussian-lowrank", "full-8d-cosine", "full-40d-linear"],
)
def test_lipschitz_matches_the_gaussian_closed_form(problem):
    g = torch.Generator().manual_seed(0)
    for t in (0.9, 0.5, 0.1, 1e-2, 1e-3, 1e-4):
        x = problem.sample_marginal(6, t, g)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # must converge within the default 50 iterations
            lip = lipschitz(problem.eps, problem.schedule, x, t, generator=g)
        assert lip.shape == (6,)
        # measured: <= 6e-12 (lowrank at 1e-4, where the 13 null directions' eigenvalues
        # of Sigma are ~1e-16 and not exactly equal)
        torch.testing.assert_close(
            lip, torch.full_like(lip, exact_gaussian_lipschitz(problem, t)), rtol=1e-8, atol=0
        )


def test_lipschitz_of_a_mixture_matches_its_jacobian_matrix():
    gmm = ob.problems.get("gmm-64d")
    sched = gmm.schedule
    x = gmm.sample_marginal(3, 0.05, torch.Generator().manual_seed(3))
    t = torch.tensor(0.05, dtype=F64)

    def f(z):
        return rhs(gmm.eps, sched, z, t)

    jac = torch.autograd.functional.jacobian(f, x)  # (B, D, B, D)
    blocks = torch.stack([jac[i, :, i, :] for i in range(x.shape[0])])
    expected = torch.linalg.matrix_norm(blocks, ord=2)
    lip = lipschitz(gmm.eps, sched, x, t, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(lip, expected, rtol=1e-8, atol=0)


def test_lipschitz_warns_and_underestimates_when_not_converged():
    gauss = random_gaussian(40, "linear", 2)
    x = gauss.sample_marginal(4, 0.5, torch.Generator().manual_seed(0))
    with pytest.warns(RuntimeWarning, match="did not converge"):
        lip = lipschitz(gauss.eps, gauss.schedule, x, 0.5, iters=2)
    assert bool((lip <= exact_gaussian_lipschitz(gauss, 0.5) * (1 + 1e-12)).all())


def test_lipschitz_is_infinite_where_the_coefficient_is():
    gauss = ob.problems.get("gaussian-lowrank")
    x = gauss.sample_marginal(3, 0.1)
    assert bool(torch.isinf(lipschitz(gauss.eps, "linear", x, 0.0)).all())
    with pytest.raises(ValueError, match="one time"):
        lipschitz(gauss.eps, "linear", x, torch.full((3,), 0.1, dtype=F64))


def test_lipschitz_along_path_is_exact_in_t_and_bounded_in_lambda():
    gauss = ob.problems.get("gaussian-lowrank")
    ts = ob.timesteps(29, "uniform", t_max=1.0, t_min=1e-4)
    x_T = gauss.sample_marginal(16, 1.0, torch.Generator().manual_seed(0))
    rows = lipschitz_along_path(gauss, None, x_T, ts, generator=torch.Generator().manual_seed(0))
    assert len(rows) == 30
    assert [r["t"] for r in rows] == ts.tolist()
    for r in rows:
        assert r["lip_max"] == pytest.approx(exact_gaussian_lipschitz(gauss, r["t"]), rel=1e-8)
        # J_lambda = -(2 sigma^2 / beta) J_t has eigenvalues sigma^2 (1 - 1/c_i), |.| <= 1
        assert r["lip_lambda_max"] <= 1.0 + 1e-9
    last = rows[-1]
    # measured: 5049 = beta/2 (1/sigma^2 - 1) at t = 1e-4, h L = 174 on the uniform grid
    assert last["lip_max"] > 5000 and last["h_lip_uniform"] > 100
    assert math.isnan(last["h"]) and rows[0]["h"] == pytest.approx(float(ts[0] - ts[1]))


# -- 3. per-step errors -------------------------------------------------------------------------
def lowrank_steps(solver: str, schedule: str, steps: int = 50):
    gauss = ob.problems.get("gaussian-lowrank", schedule)
    ts = ob.timesteps(steps, "uniform", t_max=gauss.schedule.t_hi, t_min=1e-4)
    x_T = gauss.sample_marginal(16, ts[0], torch.Generator().manual_seed(0))
    return per_step_errors(solver, gauss, None, x_T, ts)


def test_the_singular_end_carries_the_error_of_euler_on_linear_not_on_cosine_s0():
    # gaussian-lowrank, 50 uniform steps from t_hi to 1e-4, 16 samples, seed 0. Measured:
    # linear:    last step 3.8e-2 after 4.9e-3 (x7.8), share 0.213 (uniform would be 0.02)
    # cosine-s0: last step 1.12e-3 after 1.11e-3 (x1.01), share 0.016, largest step is the first
    lin = lowrank_steps("euler", "linear")
    cos0 = lowrank_steps("euler", "cosine-s0")
    assert all(r["reliable"] for r in lin + cos0)
    assert sum(r["share"] for r in lin) == pytest.approx(1.0)
    err_lin, err_cos = [r["error"] for r in lin], [r["error"] for r in cos0]
    assert int(np.argmax(err_lin)) == 49 and lin[-1]["share"] > 0.15
    assert err_lin[-1] > 5 * err_lin[-2]
    assert cos0[-1]["share"] < 1 / 50 and err_cos[-1] < 1.2 * err_cos[-2]
    assert int(np.argmax(err_cos)) != 49


def test_rk4_loses_its_last_step_on_subspace_data_worst_under_linear():
    # The last RK4 stage is evaluated at t_min = 1e-4 where the data's null directions make
    # L ~ 1/(2t) (linear) or 1/t (cosine-s0): h L ~ 200 whatever the schedule, so the last
    # step carries >= 99% of the summed error on both (measured 1.000 and 0.999). The
    # schedule shows in its size: 0.709 under linear (sqrt(t) solution) vs 0.020 under
    # cosine-s0 (solution ~ sin(pi t / 2), smooth), a factor 35.
    lin = lowrank_steps("rk4", "linear")
    cos0 = lowrank_steps("rk4", "cosine-s0")
    assert lin[-1]["share"] > 0.99 and cos0[-1]["share"] > 0.99
    assert lin[-1]["error"] > 10 * cos0[-1]["error"]


@pytest.mark.parametrize("solver", ["ddim", "prk", "s-pndm", "f-pndm", "pndm-ramp"])
def test_pseudo_methods_make_no_local_error_on_dirac_data(solver):
    # Property 3.1: along an exact Dirac trajectory eps is constant and the DDIM map is exact
    dirac = ob.problems.get("dirac")
    ts = ob.timesteps(25, "quadratic", t_max=1.0, t_min=1e-4)
    x_T = dirac.sample_marginal(8, 1.0, torch.Generator().manual_seed(0))
    rows = per_step_errors(solver, dirac, None, x_T, ts)
    assert len(rows) == 25
    assert max(r["error"] for r in rows) < 1e-12  # measured <= 1.6e-15


def test_ddim_reaches_t_zero_and_rk4_there_is_an_inf_row():
    gauss = ob.problems.get("gaussian-lowrank")
    ts = torch.linspace(1.0, 0.0, 11, dtype=F64)
    x_T = gauss.sample_marginal(8, 1.0, torch.Generator().manual_seed(0))
    ddim = per_step_errors("ddim", gauss, None, x_T, ts)
    assert all(math.isfinite(r["error"]) for r in ddim)
    rk4 = per_step_errors("rk4", gauss, None, x_T, ts)  # last stage: c_eps(0) = inf
    assert rk4[-1]["error"] == math.inf and math.isnan(rk4[-1]["share"])
    assert all(math.isfinite(r["error"]) and r["share"] == 0.0 for r in rk4[:-1])


def test_rk4_step_is_the_hand_computed_one():
    gauss = ob.problems.get("gaussian-lowrank")
    ts = ob.timesteps(12, "quadratic", t_max=1.0, t_min=1e-3)
    x_T = gauss.sample_marginal(8, 1.0, torch.Generator().manual_seed(0))
    rows = per_step_errors("rk4", gauss, None, x_T, ts)

    def by_hand(n: int, mid: float) -> float:
        t, s = ts[n], ts[n + 1]
        h = s - t
        x = gauss.flow(x_T, ts[0], t)
        k1 = rhs(gauss.eps, gauss.schedule, x, t)
        k2 = rhs(gauss.eps, gauss.schedule, x + mid * h * k1, t + mid * h)
        k3 = rhs(gauss.eps, gauss.schedule, x + mid * h * k2, t + mid * h)
        k4 = rhs(gauss.eps, gauss.schedule, x + h * k3, s)
        x_new = x + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
        return rms_error(x_new, gauss.flow(x_T, ts[0], s))

    for n in (0, 5, 11):
        assert rows[n]["error"] == pytest.approx(by_hand(n, 0.5), rel=1e-9)
        assert rows[n]["kind"] == "rk4" and rows[n]["h"] == pytest.approx(float(ts[n] - ts[n + 1]))
    # a stage time of t + h/3 instead of t + h/2 would show (measured: 330 times the error)
    assert by_hand(5, 1 / 3) > 10 * rows[5]["error"]


def test_f_pndm_steps_use_the_exact_history_at_the_grid_nodes():
    gauss = ob.problems.get("gaussian-lowrank")
    sched = gauss.schedule
    ts = ob.timesteps(10, "quadratic", t_max=1.0, t_min=1e-2)  # non-uniform nodes
    x_T = gauss.sample_marginal(8, 1.0, torch.Generator().manual_seed(0))
    rows = per_step_errors("f-pndm", gauss, None, x_T, ts)
    assert [r["kind"] for r in rows[:4]] == ["warm-up (3 PRK steps)"] * 3 + ["AB4"]

    def exact(j):
        return gauss.flow(x_T, ts[0], ts[j])

    n = 6
    e = [gauss.eps(exact(j), ts[j]) for j in range(n - 3, n + 1)]  # oldest first
    e_p = (55 * e[3] - 59 * e[2] + 37 * e[1] - 9 * e[0]) / 24
    a, a_next = sched.alpha_bar(ts[n]), sched.alpha_bar(ts[n + 1])  # Eq. 9 of the paper
    den = a.sqrt() * ((1 - a_next) * a).sqrt() + a.sqrt() * ((1 - a) * a_next).sqrt()
    x_new = (a_next / a).sqrt() * exact(n) - (a_next - a) / den * e_p
    assert rows[n]["error"] == pytest.approx(rms_error(x_new, exact(n + 1)), rel=1e-8)
    # the warm-up step is the PRK step from the exact state
    prk = ob.solve("prk", gauss.eps, sched, exact(1), ts[1:3]).x
    assert rows[1]["error"] == pytest.approx(rms_error(prk, exact(2)), rel=1e-12)


def test_a_ramp_uses_the_history_it_has():
    gauss = ob.problems.get("gaussian-lowrank")
    ts = ob.timesteps(8, "uniform", t_max=1.0, t_min=0.1)
    x_T = gauss.sample_marginal(4, 1.0, torch.Generator().manual_seed(0))
    rows = per_step_errors("pndm-ramp", gauss, None, x_T, ts)
    assert [r["kind"] for r in rows] == ["AB1", "AB2", "AB3"] + ["AB4"] * 5
    ddim = per_step_errors("ddim", gauss, None, x_T, ts)
    assert rows[0]["error"] == ddim[0]["error"]  # AB1 on the DDIM transfer is DDIM


def test_adaptive_reference_accuracy_is_reported_for_mixtures():
    gmm = ob.problems.get("gmm-2d")
    ts = ob.timesteps(6, "uniform", t_max=1.0, t_min=0.1)
    x_T = gmm.sample_marginal(8, 1.0, torch.Generator().manual_seed(0))
    rows = per_step_errors("heun", gmm, None, x_T, ts)
    keys = ["step", "t_from", "t_to", "h", "error", "share", "ref_accuracy", "reliable"]
    assert all(set(keys) <= set(r) for r in rows)
    ref = reference(gmm, gmm.schedule, x_T, ts)  # the accuracy of both ends of each step
    for n, r in enumerate(rows):
        assert r["ref_accuracy"] == float(ref.accuracy[n : n + 2].max())
    assert all(0 < r["ref_accuracy"] < 1e-8 for r in rows)
    assert all(r["reliable"] == (r["error"] >= 100 * r["ref_accuracy"]) for r in rows)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)


def test_the_schedule_argument_rebinds_the_problem():
    ts = ob.timesteps(5, "uniform", t_max=0.9, t_min=0.1)
    lin = ob.problems.get("gaussian-lowrank", "linear")
    x_T = lin.sample_marginal(4, 0.9, torch.Generator().manual_seed(0))
    moved = per_step_errors("euler", lin, "cosine-s0", x_T, ts)
    native = per_step_errors("euler", lin.with_schedule("cosine-s0"), None, x_T, ts)
    assert [r["error"] for r in moved] == [r["error"] for r in native]
    assert moved != per_step_errors("euler", lin, None, x_T, ts)
