"""odebench.models.timing: every NetworkModel evaluation inside the block is counted and timed,
attributed to the callers named, and the class is restored afterwards."""

import time

import pytest
import torch

from odebench.models import NetworkModel
from odebench.models.timing import NetworkTime, sampled_host_time, timed_networks


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


@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_tells_the_reference_and_its_integrator_apart(backend):
    """What gpu_check reports as the reference's evaluations and integrator: every evaluation
    of a reference passes through odebench.reference, and through odebench.integrate exactly
    when the torch backend (the one ``auto`` picks on a GPU) integrates."""
    import odebench as ob
    from odebench.reference import reference

    torch.set_num_threads(1)
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    net = ob.models.load("gmm-2d-mlp", dtype=torch.float64)
    x_T = prob.sample_marginal(4, 1.0, torch.Generator().manual_seed(0))
    times = torch.tensor([1.0, 0.5, 0.1], dtype=torch.float64)
    callers = {"reference": "odebench.reference", "torch integrator": "odebench.integrate"}
    with timed_networks(callers) as clock:
        ref = reference(prob, sched, x_T, times, tol=1e-6, model=net, backend=backend)
        ob.solve("ddim", net, sched, x_T, times)
    assert clock.calls_of("reference") == ref.nfe > 0
    assert clock.calls == ref.nfe + 2  # the DDIM solve's two evaluations are the solver's
    expected = ref.nfe if backend == "torch" else 0
    assert clock.calls_of("torch integrator") == expected


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_stack_samples_split_network_from_the_rest():
    """0.3 s inside a network evaluation, 0.3 s busy in this test module ("other"): the
    samples split about evenly (a wrong section for either would fail), and the helper
    thread stops with the block."""
    model, x = _model(0.3), torch.ones(2, 2, dtype=torch.float64)
    t = torch.tensor(0.5, dtype=torch.float64)
    with sampled_host_time(0.002) as samples:
        model(x, t)
        _busy(0.3)
    shares = samples.shares()
    assert set(shares) <= {"network", "other", "timing"}  # timing: the block's own exit
    assert shares.get("timing", 0.0) < 0.1
    assert samples.total > 50
    assert 0.3 < shares["network"] < 0.7 and abs(sum(shares.values()) - 1) < 1e-12
    total = samples.total
    time.sleep(0.02)
    assert samples.total == total  # stopped


def test_stack_samples_file_odebench_modules_by_section():
    from odebench.schedules import get

    sched = get("ddpm-linear-1000")
    lam = torch.linspace(-5, 5, 2000, dtype=torch.float64)
    with sampled_host_time(0.001, sections=(("schedule", "odebench.schedules"),)) as samples:
        end = time.perf_counter() + 0.2
        while time.perf_counter() < end:
            sched.t_from_lambda(lam)
    assert samples.shares().get("schedule", 0.0) > 0.5


def test_stack_sampler_refuses_a_bad_interval():
    with pytest.raises(ValueError, match="interval"), sampled_host_time(0.0):
        pass
