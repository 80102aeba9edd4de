"""``reference(..., accuracy=False)``: the same states from the first adaptive solve alone; the
accuracy is NaN (never silently a number) and no measurement against it is called reliable."""

import math

import pytest
import torch

from odebench import problems, schedules
from odebench.reference import NOT_COMPUTED, reference

D = torch.float64


@pytest.mark.parametrize(
    ("schedule", "problem", "times"),
    [
        ("ddpm-linear-1000", "gmm-2d", [1.0, 0.3, 0.1]),  # lambda and sigma_tilde, DOP853 twice
        ("ddpm-linear-1000", "gmm-2d", [1.0, 0.5, 0.0]),  # to t = 0: DOP853 and RK45
        ("flow", "gmm-2d", [1.0, 0.5, 0.2]),  # from alpha = 0: the pure-noise path
    ],
)
def test_skipping_the_accuracy_solve_keeps_the_states_and_halves_the_work(schedule, problem, times):
    sched = schedules.get(schedule)
    prob = problems.get(problem, sched)
    x = prob.sample_marginal(16, times[0], torch.Generator().manual_seed(1))
    ts = torch.tensor(times, dtype=D)
    both = reference(prob, sched, x, ts, tol=1e-9)
    first = reference(prob, sched, x, ts, tol=1e-9, accuracy=False)
    assert torch.equal(first.states, both.states)
    assert first.method == both.method
    assert first.second == NOT_COMPUTED != both.second
    assert 0 < first.nfe < both.nfe
    assert all(math.isnan(a) for a in first.accuracy.tolist())
    assert not first.reliable(1.0, times[-1])  # NaN accuracy: nothing is called reliable
    assert both.reliable(1.0, times[-1])
