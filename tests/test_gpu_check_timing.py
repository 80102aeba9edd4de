"""odebench.models.timing: every NetworkModel evaluation inside the block is counted and timed,
attributed to the callers named, and the class is restored afterwards."""

import time

import pytest
import torch

from odebench.models import NetworkModel
from odebench.models.timing import NetworkTime, timed_networks


class Slow(torch.nn.Module):
    """eps = 0, after sleeping ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, t):
        time.sleep(self.seconds)
        return 0.0 * self.scale * x


def _model(seconds: float = 0.0) -> NetworkModel:
    return NetworkModel(Slow(seconds), dtype=torch.float64)


def test_counts_and_times_every_evaluation():
    model, x = _model(0.01), torch.ones(3, 2, dtype=torch.float64)
    t = torch.tensor(0.5, dtype=torch.float64)
    with timed_networks() as clock:
        start = time.perf_counter()
        for _ in range(4):
            model(x, t)
        model.native(x, t)
        time.sleep(0.05)  # outside the network
        wall = time.perf_counter() - start
    assert clock.calls == 5 and clock.rows == 15
    assert 0.05 <= clock.seconds < wall - 0.05
    assert 0.0 < clock.share(wall) < 1.0
    model(x, t)  # after the block: not counted
    assert clock.calls == 5


def test_attributes_evaluations_to_callers_on_the_stack():
    model, x = _model(), torch.ones(2, 2, dtype=torch.float64)
    t = torch.tensor(0.5, dtype=torch.float64)
    callers = {"here": __name__, "reference": "odebench.reference"}
    with timed_networks(callers) as clock:
        model(x, t)
        model(x, t)
    assert clock.calls_of("here") == 2 and clock.calls_of("reference") == 0
    assert 0.0 < clock.seconds_of("here") <= clock.seconds
    assert clock.calls_of("unknown") == 0 and clock.seconds_of("unknown") == 0.0


def test_restores_the_class_even_on_error():
    original = NetworkModel._evaluate
    with pytest.raises(RuntimeError), timed_networks():
        assert NetworkModel._evaluate is not original
        raise RuntimeError("boom")
    assert NetworkModel._evaluate is original


def test_share_of_no_wall_time_is_nan():
    assert NetworkTime().share(0.0) != NetworkTime().share(0.0)
