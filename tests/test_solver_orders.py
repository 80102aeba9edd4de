"""Measured orders against the orders each solver declares (read from the solver).

- gmm-2d, linear schedule, t_min = 0.1, steps 20..320: the issue's acceptance numbers.
- A pure-quadrature field on the "edm" schedule, where sigma_tilde is linear in t, so the
  DDIM transfer is an Euler step in t and a pseudo method shows the full order of its
  gradient part: a wrong stage time or weight anywhere in a tableau, a warm-up or the AB
  weights lowers it. On the linear schedule the same field shows the declared order.
"""

import numpy as np
import pytest
import torch

import odebench as ob
from odebench import convergence
from odebench.metrics import fit_order
from odebench.problems import QuadratureField
from odebench.solvers import pndm, registry, variants

D = torch.float64
# faithful variants run on integer grids of discrete tables only (tests/test_variants.py)
SAMPLERS = [n for n in ob.solvers.names() if n != "pf" and n not in variants.FACTORIES]


def measured_order(solver, eps, sched, x, steps, t_max, t_min, exact_end):
    errs, hs = [], []
    for n in steps:
        ts = ob.timesteps(n, "uniform", t_max, t_min)
        errs.append(float((ob.solve(solver, eps, sched, x, ts).x - exact_end).norm()))
        hs.append((t_max - t_min) / n)
    return fit_order(np.array(hs), np.array(errs)), errs


@pytest.fixture(scope="module")
def gmm2d_errors():
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    x_T = prob.sample_marginal(32, 1.0, torch.Generator().manual_seed(0))
    grids = convergence.ladder_grids([20, 40, 80, 160, 320], "uniform", 1.0, 0.1, sched)
    ref = convergence.global_reference(prob, sched, x_T, grids, 1e-12)
    out = {}
    for name in ("ddim", "rk4", "s-pndm", "f-pndm"):
        rows = convergence.global_errors(ob.solvers.get(name), prob.eps, sched, x_T, grids, ref)
        assert all(r["reliable"] for r in rows)
        out[name] = fit_order([r["h"] for r in rows], [r["error_rms"] for r in rows])
    return out


def test_ddim_is_first_order_on_gmm2d(gmm2d_errors):
    fit = gmm2d_errors["ddim"]
    assert abs(fit.slope - ob.solvers.get("ddim").order) < 0.1


def test_rk4_is_fourth_order_on_gmm2d(gmm2d_errors):
    fit = gmm2d_errors["rk4"]
    assert abs(fit.slope - ob.solvers.get("rk4").order) < 0.2


def test_s_pndm_is_second_order_on_gmm2d(gmm2d_errors):
    fit = gmm2d_errors["s-pndm"]
    assert abs(fit.slope - ob.solvers.get("s-pndm").order) < 0.2


# The PNDM paper's pseudo family (odebench.solvers.pndm). Exponential integrators also use
# the DDIM transfer but place their stages in lambda; their orders are in test_dpm_solver.py
# and test_modern_solvers.py.
PSEUDO = [n for n, f in registry._FACTORIES.items() if f.__module__ == pndm.__name__]
CLASSICAL = [n for n in SAMPLERS if ob.solvers.get(n).transfer.name == "linear"]


def quadrature_order(name, schedule, t_max, t_min, steps):
    """Fitted order of ``name`` on the quadrature field between t_max and t_min."""
    sched = ob.schedules.get(schedule)
    q = QuadratureField(torch.tensor([1.0, -0.5], dtype=D), sched)
    x = torch.tensor([[0.3, 0.2]], dtype=D)
    exact = q.flow(x, t_max, t_min)
    fit, errs = measured_order(name, q.eps, sched, x, steps, t_max, t_min, exact)
    assert fit.ok, errs
    return fit.slope, errs


@pytest.mark.parametrize("name", PSEUDO)
def test_pseudo_methods_reach_their_gradient_order_where_transfer_is_euler_in_t(name):
    slope, errs = quadrature_order(name, "edm", 0.1, 0.01, [16, 32, 64, 128, 256])
    assert abs(slope - ob.solvers.get(name).gradient_order) < 0.25, (slope, errs)


@pytest.mark.parametrize("name", PSEUDO)
def test_pseudo_methods_have_their_declared_order_on_the_linear_schedule(name):
    slope, errs = quadrature_order(name, "linear", 0.6, 0.2, [32, 64, 128, 256, 512])
    assert abs(slope - ob.solvers.get(name).order) < 0.25, (slope, errs)


@pytest.mark.parametrize("name", CLASSICAL)
def test_classical_methods_have_their_order_on_a_smooth_problem(name):
    slope, errs = quadrature_order(name, "edm", 0.1, 0.01, [32, 64, 128, 256, 512, 1024])
    assert abs(slope - ob.solvers.get(name).order) < 0.25, (slope, errs)


@pytest.mark.parametrize(
    "name,schedule,fixed,variable",
    [
        ("f-pndm", "edm", 2, 4),  # PRK stage times are sigma_tilde-midpoints on "edm"
        ("f-pndm", "linear", 2, 3),  # ... but not on "linear": the PRK warm-up caps it at 3
        ("fon", "linear", 2, 4),  # classical AB4 with equal-step weights on an unequal grid
    ],
)
def test_variable_weights_restore_multistep_order_on_uneven_grids(name, schedule, fixed, variable):
    """On a grid uniform in lambda, equal-step AB weights integrate the wrong polynomial;
    weights from the actual nodes (in the transfer's variable) restore the AB order."""
    sched = ob.schedules.get(schedule)
    q = QuadratureField(torch.tensor([1.0], dtype=D), sched)
    x = torch.tensor([[0.3]], dtype=D)
    t_max, t_min = (0.1, 0.01) if schedule == "edm" else (0.6, 0.2)
    exact = q.flow(x, t_max, t_min)
    for weights, expected in (("fixed", fixed), ("variable", variable)):
        errs, hs = [], []
        for n in (32, 64, 128, 256, 512):
            ts = ob.timesteps(n, "lambda", t_max, t_min, schedule=sched)
            errs.append(
                float((ob.solve(name, q.eps, sched, x, ts, weights=weights).x - exact).norm())
            )
            hs.append(1.0 / n)
        fit = fit_order(hs, errs)
        assert abs(fit.slope - expected) < 0.3, (weights, fit.slope, errs)
