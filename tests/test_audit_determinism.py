"""An audit repeats to the bit: the Dirac probe's fit, and the family errors its reruns reuse.

``torch.linalg.lstsq`` (MKL) gave results 1e-14 apart for the same input from one call to the
next, so the state times and errors of an audit cell moved in their last digits from run to
run. The probe's two-column fit is now done with exactly rounded sums; a rerun that leaves
the start, end time, NFE and target alone reuses the family error instead of solving again.
"""

import importlib
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from odebench.audit.probes import _two_column_fit, sigma_tilde_of_state

D = torch.float64
#: the module (``odebench.audit.measure`` the attribute is the function of that name)
measure = importlib.import_module("odebench.audit.measure")


@settings(max_examples=60, deadline=None)
@given(
    c1=st.floats(1e-3, 10.0),
    c2=st.floats(-200.0, 200.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_fit_recovers_the_coefficients_and_repeats_to_the_bit(c1, c2, seed):
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(4, 2, generator=gen, dtype=D)
    x0 = torch.randn(2, generator=gen, dtype=D)
    x = c1 * x0 + c2 * noise
    got = _two_column_fit(x0.expand_as(noise).reshape(-1), noise.reshape(-1), x.reshape(-1))
    scale = abs(c1) + abs(c2)
    assert got[0] == pytest.approx(c1, abs=1e-11 * scale)
    assert got[1] == pytest.approx(c2, abs=1e-11 * scale)
    first = sigma_tilde_of_state(x, x0, noise)
    assert all(sigma_tilde_of_state(x.clone(), x0, noise) == first for _ in range(20))
    ratio = abs(c2) / c1
    # the ratio is as ill-conditioned as c1 is small next to c2: round-off times that factor
    assert first == pytest.approx(ratio, rel=1e-14 * (10.0 + ratio))


def test_fit_refuses_parallel_columns():
    u = torch.tensor([1.0, 2.0, 3.0], dtype=D)
    with pytest.raises(ValueError, match="parallel"):
        _two_column_fit(u, 2.0 * u, u)


def test_pure_noise_reads_as_infinite_sigma_tilde():
    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=D)
    x0 = torch.tensor([1.0, -0.5], dtype=D)
    assert sigma_tilde_of_state(3.0 * noise, x0, noise) == math.inf
    assert math.isnan(sigma_tilde_of_state(-x0 + noise, x0, noise))


def _prepared():
    return measure.prepare("DDIMScheduler", None, "gaussian-lowrank", "ddpm-linear-1000", 8, 0)


def test_family_error_is_solved_once_per_distinct_input(monkeypatch):
    prep = _prepared()
    setup, claim = prep.setup, prep.claim
    x_T = setup.start(0.999)
    target = setup.flow(x_T, 0.999, 0.01)
    calls = []
    solve = measure._solve_family

    def counting(*args):
        calls.append(args[3:6])
        return solve(*args)

    monkeypatch.setattr(measure, "_solve_family", counting)
    first = measure._family_error(claim, setup, x_T, 0.999, 0.01, 20, target)
    again = measure._family_error(claim, setup, x_T.clone(), 0.999, 0.01, 20, target.clone())
    assert again == first and len(calls) == 1
    # a copy of the setup (what the reruns make) shares the measured errors
    import copy

    assert measure._family_error(claim, copy.copy(setup), x_T, 0.999, 0.01, 20, target) == first
    assert len(calls) == 1
    # any change of an input is solved again, and gives the plain solve's number
    moved = x_T.clone()
    moved[0, 0] += 1e-12
    other = [
        (x_T, 0.999, 0.01, 21, target),
        (x_T, 0.999, 0.02, 20, setup.flow(x_T, 0.999, 0.02)),
        (moved, 0.999, 0.01, 20, target),
        (x_T.float(), 0.999, 0.01, 20, target),
    ]
    for x, t0, t1, nfe, tgt in other:
        got = measure._family_error(claim, setup, x, t0, t1, nfe, tgt)
        assert got == solve(claim, setup, x, t0, t1, nfe, tgt)
    assert len(calls) == 1 + len(other)
    assert first[1] > 0 and math.isfinite(first[0])


@settings(max_examples=80, deadline=None)
@given(
    steps=st.integers(5, 700),
    wobble=st.lists(st.floats(-1e-12, 1e-12), min_size=2, max_size=2),
    target=st.floats(0.02, 0.9),
)
def test_the_mid_state_is_the_last_input_at_the_nearest_time(steps, wobble, target):
    """Heun feeds the model a predictor and then the corrected state at the same time; the
    state is the later input, whatever the round-off in the two estimated times."""
    grid = [1.0 - k / steps for k in range(steps + 1)]
    times, owner = [], []
    for k, t in enumerate(grid[:-1]):
        if k > 0:  # the corrector's input (a stage) at t, then the step's state at t
            times.append(t + wobble[0])
            owner.append(("stage", k))
        times.append(t + wobble[1])
        owner.append(("state", k))
    near = min(range(len(grid) - 1), key=lambda k: abs(grid[k] - target))
    got = measure.nearest_state(times, target, 1000)
    assert owner[got] == ("state", near)
    # non-finite times (inputs the probe could not place) are never chosen
    assert measure.nearest_state([math.nan, *times, math.nan], target, 1000) == got + 1
    assert measure.nearest_state([math.nan, math.inf], target, 1000) is None
