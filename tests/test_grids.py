"""Time grids: each spacing's defining property, the PNDM integer grid, and refusals."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import odebench as ob

D = torch.float64


@pytest.mark.parametrize("spacing", ["uniform", "quadratic", "lambda", "karras"])
@given(n=st.integers(1, 60), t_min=st.floats(1e-5, 0.5))
def test_grids_are_decreasing_with_exact_ends(spacing, n, t_min):
    sched = ob.schedules.get("linear")
    ts = ob.timesteps(n, spacing, t_max=0.9, t_min=t_min, schedule=sched)
    assert ts.dtype == D and len(ts) == n + 1
    assert float(ts[0]) == 0.9 and float(ts[-1]) == t_min
    assert bool((ts[1:] < ts[:-1]).all())


def test_each_spacing_is_uniform_in_its_variable():
    sched = ob.schedules.get("cosine")
    n, lo, hi = 16, 1e-3, 0.9
    u = ob.timesteps(n, "uniform", hi, lo)
    torch.testing.assert_close(u[:-1] - u[1:], torch.full((n,), (hi - lo) / n, dtype=D))
    q = ob.timesteps(n, "quadratic", hi, lo)
    torch.testing.assert_close(((q - lo) / (hi - lo)).sqrt(), torch.linspace(1, 0, n + 1, dtype=D))
    lam = sched.lambda_(ob.timesteps(n, "lambda", hi, lo, schedule=sched))
    torch.testing.assert_close(lam[1:] - lam[:-1], (lam[-1] - lam[0]).expand(n) / n)
    rho = 7.0
    k = sched.sigma_tilde(ob.timesteps(n, "karras", hi, lo, schedule=sched, rho=rho)) ** (1 / rho)
    torch.testing.assert_close(k[:-1] - k[1:], (k[0] - k[-1]).expand(n) / n)


def test_quadratic_is_dense_near_the_data():
    ts = ob.timesteps(10, "quadratic", 1.0, 0.0)
    steps = ts[:-1] - ts[1:]
    assert float(steps[-1]) < float(steps[0]) / 10


@pytest.mark.parametrize("S", [10, 20, 50, 100, 300, 1000])
def test_pndm_grid_reproduces_the_authors_rule(S):
    """seq = range(0, T, T // S), visited from the top, index i at t = (i + 1) / T, then t = 0."""
    ts = ob.timesteps(S, "pndm")
    seq = list(range(0, 1000, 1000 // S))
    expected = [(i + 1) / 1000 for i in reversed(seq)] + [0.0]
    assert ts.tolist() == pytest.approx(expected, abs=1e-15)
    assert len(ts) - 1 == len(seq)  # S = 300 gives 334 steps, as in the authors' code


def test_pndm_grid_indices_land_on_discrete_knots():
    sched = ob.schedules.get("ddpm-linear-1000")
    ts = ob.timesteps(50, "pndm", schedule=sched)
    abar = sched.alpha_bar(ts[:-1])
    table = sched.alphas_cumprod[torch.arange(980, -1, -20)]
    torch.testing.assert_close(abar, table, rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n=0), "positive integer"),
        (dict(n=2.5), "positive integer"),
        (dict(n=10, spacing="log"), "unknown spacing 'log'"),
        (dict(n=10, t_min=0.5, t_max=0.2), "t_min < t_max"),
        (dict(n=10, t_max=1.2), "t_max <= 1"),
        (dict(n=10, spacing="lambda"), "needs a schedule"),
        (dict(n=10, spacing="pndm", t_min=0.1), "fixes its own end points"),
        (dict(n=2000, spacing="pndm"), "at most T = 1000"),
    ],
)
def test_bad_grids_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ob.timesteps(**kwargs)


def test_cosine_grid_stops_at_the_clip():
    ts = ob.timesteps(10, schedule="cosine")
    assert float(ts[0]) == pytest.approx(0.9946)
    with pytest.raises(ValueError, match=r"t_max <= 0\.9946"):
        ob.timesteps(10, t_max=1.0, schedule="cosine")


@pytest.mark.parametrize(
    "ts,match",
    [
        ([1.0, 0.5, 0.5, 0.1], "strictly decreasing"),
        ([0.1, 0.5], "strictly decreasing"),
        ([1.0], "at least 2 points"),
        ([1.0, float("nan")], "finite"),
        ([1.5, 0.1], r"leaves the domain"),
        ([1.0, -0.1], r"leaves the domain"),
    ],
)
def test_check_grid_refuses(ts, match):
    with pytest.raises(ValueError, match=match):
        ob.grids.check_grid(torch.tensor(ts, dtype=D))
