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
from odebench._tensor import add_into, scaled_sum

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
    for family in ("DDIM", "PLMS", "DPM++ 2M", "UniPC-2", "UniPC-3"):
        assert sum(line.startswith(family + " ") for line in out.splitlines()) == 2, family
    assert "minimal loop" in out and "worst odebench / diffusers ratio" in out
