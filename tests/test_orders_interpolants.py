"""The orders kind on other interpolants: flow matching and VE / EDM, any prediction kind.

A flow-matching user runs a velocity model from sigma/alpha = 80 (t = 80/81, where the
solvers can start); the orders measured there must be the declared ones, the velocity model
must give the eps model's errors (the conversion is exact), and a shifted grid must solve the
same problem with other nodes.
"""

import math

import pytest
import torch
from _helpers import cell_config, cell_table

import odebench as ob
from odebench import convergence
from odebench.kinds import orders
from odebench.study import StudyError, parse_study

STEPS = [50, 100, 200, 400]


def flow_cell(**kw):
    base = {
        "problem": "gmm-2d",
        "schedule": "flow",
        "prediction": ["velocity"],
        "solver": ["ddim", "heun"],
        "steps": STEPS,
        "t_min": 1e-3,
        "n_samples": 32,
    }
    return cell_config("orders", **{**base, **kw})


@pytest.fixture(scope="module")
def flow_table():
    """gmm-2d under flow, from sigma/alpha = 80 to t = 1e-3: eps and velocity models."""
    config = flow_cell(prediction=["eps", "velocity"])
    return cell_table(orders.run_cell(config), config)


def test_flow_cell_with_a_velocity_model_has_the_declared_orders_of_ddim_and_heun(flow_table):
    velocity = flow_table[flow_table["prediction"] == "velocity"]
    assert velocity["reliable"].all()  # the reference is 100 times more accurate than each
    summary = orders.summarize(velocity).set_index("solver")
    for name, declared in (("ddim", 1), ("heun", 2)):
        fit = summary.loc[name]
        assert fit["declared"] == declared and fit["verdict"] == "as declared"
        assert abs(fit["measured"] - declared) < 0.1, fit


def test_a_velocity_model_gives_the_errors_of_the_eps_model_to_round_off(flow_table):
    """The solver sees the eps converted from the velocity: a wrong coefficient in the
    conversion would move every error by far more than round-off."""
    eps, vel = (
        flow_table[flow_table["prediction"] == k]["error_rms"].to_numpy()
        for k in ("eps", "velocity")
    )
    assert len(eps) == 2 * len(STEPS) and eps.min() > 1e-6
    assert abs(vel - eps).max() < 1e-9 * eps.max()


def test_flow_starts_where_sigma_over_alpha_is_80_and_other_schedules_are_unchanged():
    flow = ob.schedules.get("flow")
    start = ob.grids.start_time(flow, 1.0)
    assert math.isclose(float(flow.sigma_tilde(start)), 80.0, rel_tol=1e-12)
    assert math.isclose(start, 80 / 81, rel_tol=1e-14)
    assert ob.grids.start_time(flow, 0.5) == 0.5
    for name in ("linear", "cosine", "ve"):
        sched = ob.schedules.get(name)
        assert ob.grids.start_time(sched, 1.0) == min(1.0, sched.t_hi)


def test_a_shifted_ladder_keeps_its_ends_and_moves_its_nodes_to_high_noise():
    sched = ob.schedules.get("flow")
    t_max = ob.grids.start_time(sched, 1.0)
    plain = convergence.ladder_grids([8], "uniform", t_max, 1e-3, sched)[8]
    moved = convergence.ladder_grids([8], "uniform", t_max, 1e-3, sched, shift=3.0)[8]
    assert moved[0] == plain[0] == t_max and moved[-1] == plain[-1] == 1e-3
    assert (moved[1:-1] > plain[1:-1]).all()  # shift 3 spends the steps at high noise
    back = torch.tensor(
        [convergence.unshifted(float(t), 3.0) for t in moved[1:-1]], dtype=torch.float64
    )
    gaps = back[:-1] - back[1:]
    assert torch.allclose(gaps, gaps[0].expand_as(gaps), rtol=1e-10)  # uniform before the shift


def test_shifted_rows_share_the_reference_and_carry_their_shift():
    config = flow_cell(
        problem="gaussian-lowrank", shift=[1.0, 3.0], solver=["heun"], steps=[50, 100]
    )
    table = cell_table(orders.run_cell(config), config)
    assert sorted(set(table["shift"])) == [1.0, 3.0] and table["reliable"].all()
    a, b = (table[table["shift"] == s]["error_rms"].to_numpy() for s in (1.0, 3.0))
    assert (a != b).all()


def test_default_cells_have_no_prediction_or_shift_column():
    config = cell_config(
        "orders", problem="gaussian-lowrank", schedule="linear", solver=["ddim"], steps=[10, 20]
    )
    rows = orders.run_cell(config)
    assert all("prediction" not in r and "shift" not in r for r in rows)


@pytest.mark.parametrize("schedule", ["flow", "ve"])
def test_local_orders_under_flow_and_ve(schedule):
    config = flow_cell(
        schedule=schedule, mode="local", solver=["ddim", "heun"], n_samples=16, ref_tol=1e-13
    )
    summary = orders.summarize(cell_table(orders.run_cell(config), config))
    mid = summary[summary["t0"] == 0.1].set_index("solver")
    assert abs(mid.loc["ddim", "measured"] - 1) < 0.2 and abs(mid.loc["heun", "measured"] - 2) < 0.2


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("grid", {"prediction": ["score"]}, "grid.prediction"),
        ("grid", {"shift": [0.0]}, "grid.shift"),
        ("options", {"t_max": 0.0}, "options.t_max"),
        ("options", {"t_max": 1.5}, "options.t_max"),
    ],
)
def test_bad_prediction_shift_or_t_max_is_a_one_line_error(key, value, needle):
    data = {
        "study": {"name": "x", "kind": "orders"},
        "grid": {"problem": ["gmm-2d"], "schedule": ["flow"], "solver": ["ddim"]},
        "options": {},
    }
    data[key].update(value)
    with pytest.raises(StudyError) as err:
        parse_study(data)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_t_min_above_the_flow_start_fails_in_one_line(run_cli):
    run = run_cli("orders", "--schedule", "flow", "--t-min", "0.99", "--steps", "10,20")
    run.failed_in_one_line("t_max 0.987654")


def test_shift_in_local_mode_fails_in_one_line(run_cli):
    run = run_cli("orders", "--schedule", "flow", "--local", "--shift", "3")
    run.failed_in_one_line("shift")


def test_the_velocity_model_is_called_natively_and_converted_to_eps():
    """Under flow the velocity is eps - x0: the model's own output is not eps, its eps is."""
    sched = ob.schedules.get("flow")
    prob = ob.problems.get("gmm-2d", schedule=sched)
    model = convergence.exact_model(prob, "velocity")
    x, t = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), 0.6
    assert torch.allclose(model.native(x, t), prob.eps(x, t) - prob.x0_pred(x, t), atol=1e-12)
    assert not torch.allclose(model.native(x, t), prob.eps(x, t), atol=1e-3)
    assert torch.allclose(model(x, t), prob.eps(x, t), rtol=1e-12, atol=1e-12)
    assert convergence.exact_model(prob, "eps") == prob.eps
