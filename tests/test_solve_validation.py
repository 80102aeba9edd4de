"""ob.solve refuses bad input with a ValueError that says what is wrong."""

import pytest
import torch

import odebench as ob

D = torch.float64


@pytest.fixture
def setup():
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    return sched, prob, prob.sample_marginal(4, 1.0, torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "ts,match",
    [
        ([1.0, 0.5, 0.5, 0.1], "strictly decreasing"),
        ([0.1, 0.5, 0.9], "strictly decreasing"),
        ([1.2, 0.5, 0.1], "leaves the domain"),
        ([1.0, 0.5, -0.1], "leaves the domain"),
        ([1.0], "at least 2 points"),
    ],
)
def test_bad_grids(setup, ts, match):
    sched, prob, x = setup
    with pytest.raises(ValueError, match=match):
        ob.solve("ddim", prob.eps, sched, x, torch.tensor(ts, dtype=D))


def test_grid_outside_a_clipped_schedule():
    sched = ob.schedules.get("cosine")
    prob = ob.problems.get("gmm-2d", sched)
    x = prob.sample_marginal(2, 0.9)
    with pytest.raises(ValueError, match=r"domain of schedule 'cosine': \[0, 0.9946\]"):
        ob.solve("ddim", prob.eps, sched, x, ob.timesteps(10, t_max=1.0, t_min=0.1))


@pytest.mark.parametrize(
    "name,steps,need",
    [("f-pndm", 3, 4), ("fon", 2, 4), ("s-pndm", 1, 2), ("ab3", 2, 3), ("ipndm", 3, 4)],
)
def test_too_few_steps_for_the_warm_up(setup, name, steps, need):
    sched, prob, x = setup
    ts = ob.timesteps(steps, t_min=0.1)
    with pytest.raises(ValueError, match=f"{name} needs at least {need} steps .*warm-up"):
        ob.solve(name, prob.eps, sched, x, ts)
    assert ob.solvers.get(name).min_steps == need
    ob.solve(name, prob.eps, sched, x, ob.timesteps(need, t_min=0.1))  # enough: runs


def test_unknown_names(setup):
    sched, prob, x = setup
    ts = ob.timesteps(5, t_min=0.1)
    with pytest.raises(ValueError, match=r"unknown solver 'f-pndn'.*f-pndm"):
        ob.solve("f-pndn", prob.eps, sched, x, ts)
    with pytest.raises(ValueError, match="unknown schedule 'linera'"):
        ob.solve("ddim", prob.eps, "linera", x, ts)
    with pytest.raises(ValueError, match="bad options"):
        ob.solve("ddim", prob.eps, sched, x, ts, weights="variable")
    with pytest.raises(ValueError, match="weights must be one of"):
        ob.solve("f-pndm", prob.eps, sched, x, ts, weights="adaptive")


def test_mismatched_shapes(setup):
    sched, prob, x = setup
    ts = ob.timesteps(5, t_min=0.1)
    with pytest.raises(ValueError, match=r"shape \(batch, 2\), got \(4, 3\)"):
        ob.solve("ddim", prob.eps, sched, torch.zeros(4, 3, dtype=D), ts)
    with pytest.raises(ValueError, match=r"model returned eps of shape \(4,\) for x of shape"):
        ob.solve("ddim", lambda x, t: x.sum(1), sched, x, ts)
    with pytest.raises(ValueError, match="floating-point tensor"):
        ob.solve("ddim", prob.eps, sched, torch.zeros(4, 2, dtype=torch.long), ts)
    with pytest.raises(ValueError, match="callable"):
        ob.solve("ddim", "not a model", sched, x, ts)


def test_alias_resolves_to_the_same_method(setup):
    sched, prob, x = setup
    ts = ob.timesteps(8, t_min=0.1)
    a = ob.solve("plms", prob.eps, sched, x, ts)
    b = ob.solve("f-pndm", prob.eps, sched, x, ts)
    assert torch.equal(a.x, b.x) and a.nfe == b.nfe == 17
