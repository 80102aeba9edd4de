"""The in-place arithmetic that keeps the solvers' per-step cost low (issue 16) changes nothing
it does not own: not the caller's state, not a tensor the model hands back (a model may return
one tensor it keeps), and it gives the same bits as the out-of-place formula it replaces.

The timings themselves are in benchmarks/scheduler_overhead.py; here it is only run on a tiny
configuration, to keep it working."""

import importlib.util
import pathlib

import pytest
import torch

import odebench as ob
from odebench._tensor import add_into, scaled_sum, weighted_sum
from odebench.solvers.transfer import DataTransfer, DDIMTransfer, EDMTransfer, LinearTransfer

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scaled_sum_is_the_formula_to_round_off(dtype):
    g = torch.Generator().manual_seed(1)
    x, y = (torch.randn(64, 33, generator=g, dtype=dtype) for _ in range(2))
    x0, y0 = x.clone(), y.clone()
    a, b = 0.9871234567, -0.0123456789
    got, want = scaled_sum(a, x, b, y), a * x + b * y
    ulp = torch.finfo(dtype).eps
    assert float((got - want).abs().max()) <= 2 * ulp * float(want.abs().max())
    assert torch.equal(x, x0) and torch.equal(y, y0)  # the operands are left alone
    assert not torch.equal(scaled_sum(a, x, -b, y), want)  # the sign of b is read


def test_add_into_writes_into_its_first_argument_only_when_the_result_fits():
    total, term = torch.ones(3, 4), torch.full((3, 4), 2.0)
    out = add_into(total, term, 0.5)
    assert out.data_ptr() == total.data_ptr() and torch.equal(out, torch.full((3, 4), 2.0))
    small = torch.ones(3, 1)  # broadcasting: the sum is larger than the first operand
    wide = add_into(small, term)
    assert torch.equal(wide, torch.full((3, 4), 3.0)) and torch.equal(small, torch.ones(3, 1))
    low = torch.ones(3, 4, dtype=torch.float32)  # promotion: the sum is float64
    promoted = add_into(low, term.double(), -1.0)
    assert promoted.dtype == torch.float64 and torch.equal(promoted, -torch.ones(3, 4).double())
    assert torch.equal(low, torch.ones(3, 4))


def test_add_into_with_unit_weight_is_the_plain_sum_bit_for_bit():
    g = torch.Generator().manual_seed(2)
    x, y = (torch.randn(1000, generator=g) for _ in range(2))
    assert torch.equal(add_into(x.clone(), y), x + y)


def test_weighted_sum_skips_zero_weights_and_copies_nothing_for_a_lone_unit_weight():
    g = torch.Generator().manual_seed(3)
    u, v, w = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(3))
    assert weighted_sum((0.0, 1.0, 0.0), (u, v, w)) is v
    assert torch.allclose(weighted_sum((0.5, -2.0, 0.0), (u, v, w)), 0.5 * u - 2.0 * v)
    assert torch.allclose(weighted_sum((1.0, 0.25, 3.0), (u, v, w)), u + 0.25 * v + 3.0 * w)
    with pytest.raises(ValueError, match="all combination weights are zero"):
        weighted_sum((0.0, 0.0), (u, v))


@pytest.mark.parametrize(
    "transfer", [LinearTransfer(), DDIMTransfer(), DataTransfer(), EDMTransfer()]
)
@pytest.mark.parametrize("s", [0.3, 0.0])
def test_step_sum_is_the_step_of_the_combined_slope(transfer, s):
    """A multistep combination handed to the transfer term by term gives the transfer's step
    of the combined slope (to round-off), into sigma = 0 as well (where x drops out of the data
    form)."""
    sched = ob.schedules.get("ddpm-linear-1000")
    t, s = torch.tensor(0.5, dtype=torch.float64), torch.tensor(s, dtype=torch.float64)
    if isinstance(transfer, LinearTransfer) and float(s) == 0.0:
        s = torch.tensor(0.01, dtype=torch.float64)  # the ODE's slope is singular at t = 0
    g = torch.Generator().manual_seed(4)
    x, *vs = (torch.randn(8, 5, generator=g, dtype=torch.float64) for _ in range(4))
    weights = (55 / 24, -59 / 24, 37 / 24)
    want = transfer.step(sched, x, sum(w * v for w, v in zip(weights, vs, strict=True)), t, s)
    got = transfer.step_sum(sched, x, weights, vs, t, s)
    assert torch.allclose(got, want, rtol=1e-13, atol=1e-13)
    if isinstance(transfer, DataTransfer) and float(s) == 0.0:
        assert torch.equal(transfer.step_sum(sched, x * float("nan"), weights, vs, t, s), got)


class KeptOutput:
    """A model that returns the same tensor every call (as a cache or a zero model does)."""

    def __init__(self, like: torch.Tensor):
        self.out = torch.full_like(like, 0.25)

    def __call__(self, x, t):
        return self.out


@pytest.mark.parametrize("name", [n for n in ob.solvers.names() if n != "pf"])
def test_no_solver_writes_into_the_state_or_the_models_output(name):
    sched = ob.schedules.get("ddpm-linear-1000")
    ts = ob.timesteps(12, "pndm", schedule=sched)
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x_before, model = x.clone(), KeptOutput(x)
    states, copies = [], []
    for state in ob.solvers.get(name).iterate(model, sched, x, ts):
        states.append(state)
        copies.append(state.clone())
    assert torch.equal(x, x_before)
    assert torch.equal(model.out, torch.full_like(x, 0.25))
    # no step wrote into a state an earlier step returned
    assert all(torch.equal(a, b) for a, b in zip(states, copies, strict=True))


def test_benchmark_runs_on_a_tiny_configuration(capsys):
    pytest.importorskip("diffusers")
    path = ROOT / "benchmarks" / "scheduler_overhead.py"
    spec = importlib.util.spec_from_file_location("scheduler_overhead", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--batch", "2", "--dim", "8", "--steps", "6", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    for family in ("DDIM", "PNDM", "PLMS", "DPM++ 2M", "UniPC-2", "UniPC-3"):
        assert sum(line.startswith(family + " ") for line in out.splitlines()) == 2, family
    assert "minimal loop" in out and "worst odebench / diffusers ratio" in out
