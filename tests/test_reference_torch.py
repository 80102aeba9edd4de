"""The torch DOP853 (odebench.integrate) and the reference's torch backend.

The tableau is checked by its order conditions (every rooted tree up to order 8 for the
weights, 5 and 3 for the embedded error estimators, 7 for the dense output) and against
scipy's table; the integrator and the references against scipy's DOP853 on every analytic
problem under a VP, the flow and the VE schedule. A wrong weight fails the order conditions
and the agreement with scipy.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import torch
from scipy.integrate._ivp import dop853_coefficients as scipy_tab

from odebench import grids, problems, schedules
from odebench.integrate import dop853
from odebench.integrate import dop853_tableau as tab
from odebench.metrics import rms_error
from odebench.reference import _backend_device, _scipy_dop853, reference

# ---------------------------------------------------------------- order conditions (B-series)


@cache
def rooted_trees(n: int) -> tuple:
    """Every rooted tree with n vertices, as the sorted tuple of its root's subtrees."""
    if n == 1:
        return ((),)
    found: set = set()

    def forests(left: int, chosen: tuple) -> None:
        if left == 0:
            found.add(tuple(sorted(chosen)))
            return
        for k in range(1, left + 1):
            for sub in rooted_trees(k):
                forests(left - k, (*chosen, sub))

    forests(n - 1, ())
    return tuple(sorted(found))


def density(tree: tuple) -> int:
    """gamma(t) = |t| prod gamma(children) (Butcher)."""
    size = _size(tree)
    return size * math.prod(density(c) for c in tree)


def _size(tree: tuple) -> int:
    return 1 + sum(_size(c) for c in tree)


def elementary(a: np.ndarray, tree: tuple) -> np.ndarray:
    """Per stage, the elementary weight prod over children of (A Phi(child))."""
    g = np.ones(a.shape[0])
    for child in tree:
        g = g * (a @ elementary(a, child))
    return g


def matrix(stages: int) -> np.ndarray:
    a = np.zeros((stages, stages))
    for i, row in enumerate(tab.A[:stages]):
        a[i, : len(row)] = row
    return a


def order_of(weights, stages: int, theta: float = 1.0, up_to: int = 9) -> int:
    """The highest p such that weights . Phi(t) = theta^|t| / gamma(t) for every |t| <= p."""
    a, w = matrix(stages), np.asarray(weights, dtype=np.float64)
    for n in range(1, up_to + 1):
        for tree in rooted_trees(n):
            if abs(w @ elementary(a, tree) - theta**n / density(tree)) > 1e-12:
                return n - 1
    return up_to


def test_tree_counts() -> None:
    assert [len(rooted_trees(n)) for n in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]


def test_row_sums_are_the_nodes() -> None:
    a = matrix(len(tab.C))
    np.testing.assert_allclose(a.sum(axis=1), tab.C, rtol=0, atol=1e-14)


def test_weights_have_order_8_and_the_estimators_5_and_3() -> None:
    b13 = np.r_[tab.B, 0.0]
    assert order_of(tab.B, 12) == 8
    assert order_of(b13 - np.asarray(tab.E5), 13) == 5
    assert order_of(b13 - np.asarray(tab.E3), 13) == 3


def dense_weights(theta: float) -> np.ndarray:
    """The stage weights of the dense output at theta (HNW II.6): the same nesting as
    integrate.dopri8._dense, on unit vectors."""
    n = len(tab.C)
    unit = np.eye(n)
    b = np.zeros(n)
    b[:12] = tab.B
    terms = [b, unit[0] - b, 2 * b - unit[0] - unit[12], *np.asarray(tab.D)]
    acc = np.zeros(n)
    for i, term in enumerate(reversed(terms)):
        acc = (acc + term) * (theta if i % 2 == 0 else 1 - theta)
    return acc


@pytest.mark.parametrize("theta", [0.2, 0.5, 0.9])
def test_dense_output_has_order_7(theta: float) -> None:
    assert order_of(dense_weights(theta), len(tab.C), theta=theta, up_to=8) == 7


@pytest.mark.parametrize("index", [0, 5, 6, 7, 8, 9, 10, 11])
def test_a_perturbed_weight_breaks_the_order(index: int) -> None:
    b = np.array(tab.B)
    b[index] += 1e-6
    b[0] -= 1e-6 if index else 0.0  # keep consistency (sum b = 1) where possible
    assert order_of(b, 12) < 8


def test_tableau_is_scipys() -> None:
    n = scipy_tab.N_STAGES_EXTENDED
    np.testing.assert_array_equal(matrix(n), scipy_tab.A[:n, :n])
    np.testing.assert_array_equal(tab.B, scipy_tab.B)
    np.testing.assert_array_equal(tab.C, scipy_tab.C[:n])
    np.testing.assert_array_equal(tab.E5, scipy_tab.E5)
    np.testing.assert_array_equal(tab.E3, scipy_tab.E3)
    np.testing.assert_array_equal(tab.D, scipy_tab.D)


# ---------------------------------------------------------------- the integrator against scipy


def _duffing(v: float, y: torch.Tensor) -> torch.Tensor:
    return math.cos(v) * y - 0.3 * y**3 + math.sin(2 * v)


def _scipy(fun, y0: torch.Tensor, grid, tol: float):
    states, nfev = _scipy_dop853(fun, y0, grid, tol, "a test")
    return torch.stack(states), nfev


@pytest.mark.parametrize("tol", [1e-6, 1e-10, 1e-12])
def test_same_steps_and_states_as_scipy(tol: float) -> None:
    y0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grid = np.linspace(0.0, 3.0, 7).tolist()
    res = dop853(_duffing, y0, grid, rtol=tol, atol=tol)
    ys, nfev = _scipy(_duffing, y0, grid, tol)
    assert res.success
    assert res.nfev == nfev
    torch.testing.assert_close(res.states, ys, rtol=0, atol=1e-13)


def test_backwards_and_order() -> None:
    """Backwards in v, and the error falls like tol (an order-8 method at tight tolerances)."""

    def decay(v: float, y: torch.Tensor) -> torch.Tensor:
        return -v * y  # y = y0 exp(-(v^2 - v0^2) / 2)

    y0 = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    grid = [2.0, 1.2, 0.5, -0.3]
    exact = torch.stack([y0 * math.exp(-(v * v - 4.0) / 2) for v in grid[1:]])
    errs = [
        float((dop853(decay, y0, grid, rtol=t, atol=t).states - exact).abs().max())
        for t in (1e-6, 1e-10)
    ]
    assert errs[1] < 1e-9 and errs[1] < errs[0] / 100


def test_a_wrong_weight_disagrees_with_scipy(monkeypatch) -> None:
    y0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grid = np.linspace(0.0, 3.0, 7).tolist()
    ys, _ = _scipy(_duffing, y0, grid, 1e-10)
    b = list(tab.B)
    b[8], b[0] = b[8] + 1e-4, b[0] - 1e-4
    monkeypatch.setattr(tab, "B", tuple(b))
    res = dop853(_duffing, y0, grid, rtol=1e-10, atol=1e-10)
    assert float((res.states - ys).abs().max()) > 1e-6


def test_bad_input() -> None:
    y0 = torch.zeros(2, dtype=torch.float64)
    for grid, tol in (([0.0], 1e-8), ([0.0, 1.0, 0.5], 1e-8), ([0.0, math.inf], 1e-8), ([0, 1], 0)):
        with pytest.raises(ValueError):
            dop853(_duffing, y0, grid, rtol=tol, atol=1e-8)


def test_a_blow_up_fails_cleanly() -> None:
    res = dop853(
        lambda v, y: y * y, torch.ones(3, dtype=torch.float64), [0.0, 2.0], rtol=1e-8, atol=1e-8
    )
    assert not res.success and torch.isnan(res.states).all()


# ---------------------------------------------------------------- references: torch vs scipy

SCHEDULES = ("linear", "flow", "ve")
TOL = 1e-9


def _case(problem: str, schedule: str, n: int = 4):
    sched = schedules.get(schedule)
    prob = problems.get(problem, sched)
    t_max = grids.start_time(sched, math.inf)
    x = prob.sample_marginal(n, t_max, torch.Generator().manual_seed(1))
    return prob, sched, x, t_max


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    dims = tuple(range(2, a.ndim))
    return float(((a - b).norm(dim=dims) / b.norm(dim=dims)).max())


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("problem", problems.names())
def test_torch_reference_agrees_with_scipy(problem: str, schedule: str) -> None:
    """The model overrides the exact flow: both backends run their adaptive DOP853 solves."""
    prob, sched, x, t_max = _case(problem, schedule, n=2 if problem == "digits-data" else 4)
    t_end = 0.5 if problem == "digits-data" else 0.05
    times = torch.linspace(t_max, t_end, 5, dtype=torch.float64)
    tol = 1e-7 if problem == "digits-data" else TOL
    refs = {
        b: reference(prob, sched, x, times, tol=tol, model=prob.eps, backend=b)
        for b in ("scipy", "torch")
    }
    assert _relative(refs["torch"].states[1:], refs["scipy"].states[1:]) < 10 * tol
    assert "torch" in refs["torch"].method and "torch" not in refs["scipy"].method
    # the same contract: the second solve's distance, of the size scipy reports
    ratio = (refs["torch"].accuracy[1:] + tol) / (refs["scipy"].accuracy[1:] + tol)
    assert bool(((ratio > 0.1) & (ratio < 10)).all())


@pytest.mark.parametrize("problem", ["gaussian-lowrank", "dirac"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_torch_reference_is_within_its_accuracy_of_the_exact_flow(problem, schedule) -> None:
    prob, sched, x, t_max = _case(problem, schedule)
    times = torch.linspace(t_max, 0.05, 5, dtype=torch.float64)
    ref = reference(prob, sched, x, times, tol=TOL, model=prob.eps, backend="torch")
    for k, t in enumerate(times):
        err = rms_error(ref.states[k], prob.flow(x, times[0], t))
        assert err <= 2 * float(ref.accuracy[k]) + 10 * TOL * float(ref.states[k].abs().max())


def test_from_pure_noise_and_to_t_zero() -> None:
    """The alpha = 0 start (flow, t = 1) and a grid ending at t = 0 (sigma = 0)."""
    sched = schedules.get("flow")
    prob = problems.get("gmm-2d", sched)
    x = prob.sample_marginal(4, 1.0, torch.Generator().manual_seed(2))
    for times in ([1.0, 0.9, 0.3, 0.05], [1.0, 0.5, 0.0]):
        ts = torch.tensor(times, dtype=torch.float64)
        refs = {b: reference(prob, sched, x, ts, tol=TOL, backend=b) for b in ("scipy", "torch")}
        assert _relative(refs["torch"].states[1:], refs["scipy"].states[1:]) < 10 * TOL
        assert float(refs["torch"].accuracy.max()) < 1e3 * TOL


def test_auto_picks_torch_only_off_the_cpu() -> None:
    class OnDevice:
        device = "cuda:0"

    x = torch.zeros(2, 2, dtype=torch.float64)
    assert _backend_device("auto", None, x) is None
    assert _backend_device("auto", OnDevice(), x) == torch.device("cuda:0")
    assert _backend_device("scipy", OnDevice(), x) is None
    assert _backend_device("torch", None, x) == torch.device("cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        _backend_device("gpu", None, x)


def test_float32_state_in_float32() -> None:
    prob, sched, x, t_max = _case("gmm-2d", "linear")
    times = torch.tensor([t_max, 0.5, 0.1], dtype=torch.float64)
    ref = reference(prob, sched, x.float(), times, tol=1e-6, model=prob.eps, backend="torch")
    assert ref.states.dtype == torch.float32 and bool(torch.isfinite(ref.states).all())
