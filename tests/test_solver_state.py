"""Solvers as explicit state machines (odebench/solvers/base.py): init / step / exact_state.

- init then step, by hand, is ``ob.solve`` bit for bit, and the history a running state holds
  is exactly ``history_nodes(n)``: the contract ``exact_state`` relies on;
- ``exact_state`` built from a solver's own trajectory reproduces its next state bit for bit
  for every method whose kept evaluations are made at the node states, and not for UniPC,
  whose kept evaluation at node n was made at the predicted state (a test says so);
- one step from an exact state has slope ``local_order`` (interior order + 1) in the smooth
  region, for every fixed-step solver: a wrong stage time, weight or history node shows;
- the one OrderRule reproduces the ramp / lower_order_final rules of the implementations;
- Adams-Bashforth weights generated from their integrals are the textbook ones.
"""

from fractions import Fraction

import numpy as np
import pytest
import torch

import odebench as ob
from odebench import convergence, solvers
from odebench.solvers.ramp import OrderRule
from odebench.solvers.tableau import AB_FIXED, ab_variable_weights, ab_weights_exact

D = torch.float64
VARIANTS = ("pndm-authors", "pndm-diffusers", "plms-diffusers")
FIXED_STEP = [n for n in solvers.names() if n != "pf"]
CONTINUOUS = [n for n in FIXED_STEP if n not in VARIANTS]
#: options that change which history or rule a step uses
OPTIONS = [
    ("dpm-solver++-3m", {"start": "dpm-solver-2", "taylor_d2": True}),
    ("dpm-solver++-2m", {"lower_order_final": False}),
    ("unipc-3", {"lower_order_final": True, "prediction": "noise"}),
    ("deis-tab-3", {"basis": "log_rho", "lower_order_final": True}),
    ("f-pndm", {"weights": "variable"}),
    ("ipndm-v", {"coefficients": "zhou2024"}),
]
CASES = [(n, {}) for n in FIXED_STEP] + OPTIONS


def _case_id(case):
    name, options = case
    return name + "".join(f"-{k}={v}" for k, v in options.items())


def _same(a, b):
    """Bit for bit, NaN equal to NaN (classical methods step into c_eps = inf at t = 0)."""
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def _setup(name):
    """A problem, a grid (the integer table grid for the variants) and a start state."""
    sched = ob.schedules.get("ddpm-linear-1000" if name in VARIANTS else "linear")
    prob = ob.problems.get("gmm-2d", sched)
    if name in VARIANTS:
        ts = ob.timesteps(10, "pndm", schedule=sched)
    else:  # a grid that ends at t = 0: the final-step rules run too
        ts = torch.cat([ob.timesteps(9, "uniform", t_max=1.0, t_min=0.02), torch.zeros(1, dtype=D)])
    x = prob.sample_marginal(6, ts[0], torch.Generator().manual_seed(3))
    return sched, prob, ts, x


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_init_then_step_is_solve_and_holds_the_declared_history(case):
    name, options = case
    solver = solvers.get(name, **options)
    sched, prob, ts, x = _setup(name)
    state = solver.init(prob.eps, sched, x, ts)
    assert state.n == 0 and state.x is x
    for n in range(len(ts) - 1):
        assert [node.node for node in state.history] == list(solver.history_nodes(n)), n
        assert state.t == ts[n]
        state = solver.step(state)
        assert state.n == n + 1
    want = ob.solve(solver, prob.eps, sched, x, ts).x
    assert _same(state.x, want)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_exact_state_from_the_own_trajectory_reproduces_the_next_state(case):
    """Feed exact_state the solver's own states: every kept evaluation is then the one the run
    made, so the step is the run's step, bit for bit -- except for UniPC, whose evaluation at
    node n >= 1 was made at the predicted state, not at the corrected x_n it returned."""
    name, options = case
    solver = solvers.get(name, **options)
    sched, prob, ts, x = _setup(name)
    traj = ob.solve(solver, prob.eps, sched, x, ts, trajectory=True).trajectory
    differs = []
    for n in range(len(ts) - 1):
        state = solver.exact_state(prob.eps, sched, ts, n, traj)
        assert _same(state.x, traj[n])
        x_next = solver.step(state).x
        differs.append(not _same(x_next, traj[n + 1]))
    if solver.keeps_current:  # UniPC: predictor evaluations; the start is exact
        assert not differs[0] and all(differs[1:]), differs
    else:
        assert not any(differs), differs


def test_exact_state_needs_a_step_after_the_node():
    solver = solvers.get("f-pndm")
    sched, prob, ts, x = _setup("f-pndm")
    with pytest.raises(ValueError, match="no step after it"):
        solver.exact_state(prob.eps, sched, ts, len(ts) - 1, [x] * len(ts))
    with pytest.raises(ValueError, match="adaptive"):
        solvers.get("pf").exact_state(prob.eps, sched, ts, 0, [x] * len(ts))


@pytest.fixture(scope="module")
def local_reference():
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    x = prob.sample_marginal(32, 1.0, torch.Generator().manual_seed(0))
    plan = {0.4: [0.16 / 2**j for j in range(7)]}
    ref = convergence.local_reference(prob, sched, x, plan, 1.0, 1e-13)
    return sched, prob, plan, ref


@pytest.mark.parametrize("case", [c for c in CASES if c[0] not in VARIANTS], ids=_case_id)
def test_one_step_from_an_exact_state_has_the_declared_local_order(case, local_reference):
    """gmm-2d under "linear", t0 = 0.4 (smooth), h = 0.16 .. 0.0025: the least-squares slope
    of the three finest errors well above the reference's accuracy is interior order + 1
    (e.g. 5 for unipc-3, 4 for deis-tab-3, 3 for f-pndm, whose equal-step weights are not
    those of the grid in sigma_tilde)."""
    name, options = case
    solver = solvers.get(name, **options)
    sched, prob, plan, ref = local_reference
    rows = convergence.local_errors(solver, prob.eps, sched, ref, plan)
    usable = [r for r in rows if r["error_rms"] > 100 * r["ref_accuracy"]]
    assert len(usable) >= 4, rows
    h = np.array([r["h"] for r in usable[-3:]])
    err = np.array([r["error_rms"] for r in usable[-3:]])
    slope = np.polyfit(np.log(h), np.log(err), 1)[0]
    assert abs(slope - solver.local_order) < 0.25, (slope, solver.local_order)


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_take_exact_states_on_their_integer_grid(name):
    """The faithful variants run only on a table's integer grid; exact_state works there and
    a step from the exact flow lands closer than the distance the flow moved."""
    solver = solvers.get(name)
    sched, prob, ts, x = _setup(name)
    ref = ob.solve("pf", prob.eps, sched, x, ts[:-1], rtol=1e-11, atol=1e-11, trajectory=True)
    states = ref.trajectory
    n = 4
    x_next = solver.step(solver.exact_state(prob.eps, sched, ts[:-1], n, states)).x
    moved = float((states[n + 1] - states[n]).norm())
    assert float((x_next - states[n + 1]).norm()) < 0.05 * moved


def test_order_rule_is_the_implementations_rules():
    # the ramp alone (odebench's AB engine, UniPC/DEIS without lower_order_final)
    assert [OrderRule(3).order_at(n, 6) for n in range(6)] == [1, 2, 3, 3, 3, 3]
    # UniPC / DEIS lower_order_final: at any N
    assert [OrderRule(3, True).order_at(n, 30) for n in (0, 1, 2, 27, 28, 29)] == [1, 2, 3, 3, 2, 1]
    # diffusers' DPM-Solver rule: below 15 steps only
    rule = OrderRule(3, True, 15)
    assert [rule.order_at(n, 14) for n in (11, 12, 13)] == [3, 2, 1]
    assert [rule.order_at(n, 15) for n in (12, 13, 14)] == [3, 3, 3]
    # a step into sigma = 0 is first order for exponential integrators, not for AB on slopes
    assert OrderRule(3).order_at(5, 6, into_clean=True) == 1
    assert OrderRule(3, clean_end_first_order=False).order_at(5, 6, into_clean=True) == 3
    with pytest.raises(ValueError, match="integer"):
        OrderRule(2, True, 2.5)


def test_adams_bashforth_weights_come_from_their_integrals():
    assert ab_weights_exact(2) == (Fraction(3, 2), Fraction(-1, 2))
    assert ab_weights_exact(4) == tuple(Fraction(w, 24) for w in (55, -59, 37, -9))
    assert ab_weights_exact(5) == tuple(Fraction(w, 720) for w in (1901, -2774, 2616, -1274, 251))
    for k in range(1, 7):
        w = ab_weights_exact(k)
        # exact for polynomials of degree < k: the mean of u^d over [0, 1] from nodes 0, -1, ..
        for d in range(k):
            assert sum(wj * Fraction(-j) ** d for j, wj in enumerate(w)) == Fraction(1, d + 1)
    for k, w in AB_FIXED.items():
        nodes = -np.arange(k, dtype=float)
        np.testing.assert_allclose(ab_variable_weights(nodes, 0.0, 1.0), w, rtol=1e-12)
    with pytest.raises(ValueError):
        ab_weights_exact(0)


def test_local_plan_on_a_table_takes_whole_table_steps():
    plan = convergence.local_plan(1.0, 0.001, T=1000)
    for t0, hs in plan.items():
        assert abs(t0 * 1000 - round(t0 * 1000)) < 1e-9
        assert all(abs(h * 1000 - round(h * 1000)) < 1e-9 and h >= 1e-3 for h in hs)
        assert hs == sorted(set(hs), reverse=True)
    solver = solvers.get("pndm-diffusers")
    ts, n = convergence.ladder(solver, 0.4, 0.008, T=1000)
    idx = ts * 1000
    assert float((idx - idx.round()).abs().max()) < 1e-9
    assert bool((ts[1:] < ts[:-1]).all()) and float(ts[-1]) > 0
    assert n == solver.history_depth == 3 and float(ts[n]) == 0.4
