"""Network cells are estimated from the network's arithmetic and the reference's real count
(issue 17).

A norms study on the digits UNet was estimated at 7 s and ran for 18 minutes: the estimate
charged a network a fixed factor per number and the adaptive reference six evaluations per
grid node, while the UNet costs 30.6 MFLOP per sample and its reference about 16,000
evaluations at tol 1e-10. The estimate now counts the network's operations, times the batch,
and a reference count that grows as the tolerance shrinks (faster for a network than for a
closed form), fitted to measured counts.
"""

from __future__ import annotations

import pytest
import torch

from odebench.kinds.common import cost
from odebench.models import load

DIGITS = {
    "problem": "digits-data",
    "model": "trained",
    "schedule": "ddpm-linear-1000",
    "solver": ["ddim", "s-pndm", "f-pndm", "fon"],
    "steps": [25, 50, 100, 200, 400],
    "t_min": 0.1,
    "n_samples": 16,
    "ref_tol": 1e-10,
    "guidance": [0.0],
    "device": "cpu",
}
GMM = {"problem": "gmm-2d", "model": "exact", "schedule": "linear", "t_min": 0.1, "n_samples": 64}


def test_a_networks_operations_are_counted() -> None:
    """An MLP's count is twice its matrices' entries (one multiply-add each), per sample."""
    flops, params = cost.network_size("gmm-2d-mlp", 2)
    net = load("gmm-2d-mlp").net
    linear = sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Linear))
    assert params == sum(p.numel() for p in net.parameters())
    assert 2 * linear <= flops <= 2.2 * linear  # plus the whitening's small matrices
    unet, _ = cost.network_size("digits-unet", 64)
    assert unet > 100 * flops  # convolutions at every pixel: 30.6 MFLOP per sample
    assert cost.network_size("no-such-network", 2) is None


@pytest.mark.parametrize(
    ("config", "measured"),
    [
        ({**DIGITS, "ref_tol": 1e-10}, 16_081),  # benchmarks/reference_backend.py
        ({**DIGITS, "ref_tol": 1e-4}, 1_672),
        ({**GMM, "ref_tol": 1e-12}, 2_359),
        ({**GMM, "ref_tol": 1e-9}, 1_195),
        ({**GMM, "ref_tol": 1e-6}, 694),
    ],
)
def test_the_reference_count_follows_the_measured_ones(config: dict, measured: int) -> None:
    assert measured / 1.5 <= cost.reference_evals(config) <= 1.5 * measured


def test_the_reference_count_grows_faster_for_a_network() -> None:
    tols = [1e-4, 1e-6, 1e-8, 1e-10, 1e-12]
    net = [cost.reference_evals({**DIGITS, "ref_tol": tol}) for tol in tols]
    exact = [cost.reference_evals({**GMM, "ref_tol": tol}) for tol in tols]
    assert net == sorted(net) and exact == sorted(exact) and len(set(net)) == len(tols)
    assert net[-1] / net[0] > 2 * exact[-1] / exact[0]
    deeper = cost.reference_evals({**DIGITS, "t_min": 0.001})
    assert deeper > cost.reference_evals(DIGITS)  # more of the stiff end
    guided = cost.reference_evals({**DIGITS, "guidance": [0.0, 3.0]})
    assert guided == pytest.approx(2 * cost.reference_evals(DIGITS))  # one per scale
    assert cost.reference_evals({**DIGITS, "paired": False}) == 0.0  # none is computed


def test_an_evaluation_costs_the_networks_arithmetic() -> None:
    one = cost.eval_seconds(DIGITS, 16, 64)
    assert one is not None
    flops, _ = cost.network_size("digits-unet", 64)
    assert one >= flops * 16 / cost.NET_FLOPS_PER_S["float64"]
    assert cost.eval_seconds(DIGITS, 160, 64) > 5 * one  # the batch's arithmetic
    assert cost.eval_seconds({**DIGITS, "network_dtype": "float32"}, 16, 64) < one
    guided = cost.eval_seconds({**DIGITS, "guidance": [3.0]}, 16, 64)
    assert guided == pytest.approx(2 * one, rel=0.05)  # two passes (conditional network)
    assert cost.eval_seconds({**DIGITS, "model": "exact"}, 16, 64) is None


def test_solvers_are_charged_their_own_evaluations() -> None:
    assert cost.evals_per_step("ddim") == 1.0
    assert cost.evals_per_step("heun") == pytest.approx(2.0, abs=0.02)
    assert cost.evals_per_step("rk4") == pytest.approx(4.0, abs=0.04)
    assert cost.evals_per_step("not-a-solver") == cost.EVALS_PER_STEP
    config = {"solver": ["ddim", "rk4"], "steps": [10, 20], "guidance": [0.0, 1.0]}
    assert cost.solver_evals(config) == pytest.approx(2 * (30 + 4 * 30), rel=0.02)
    assert cost.solver_evals({"solver": ["heun", "ddim"], "nfe": [20, 50]}) == 140


def test_the_digits_orders_cell_is_minutes_not_seconds() -> None:
    """Measured: the reference alone is 16,081 evaluations at about 40 ms of CPU each."""
    seconds = cost.cell_cost(DIGITS).seconds
    assert 16_081 * 0.039 / 2 <= seconds <= 16_081 * 0.039 * 4
    exact = cost.cell_cost({**DIGITS, "problem": "gmm-2d", "model": "exact"}).seconds
    assert exact < seconds / 100


def test_a_digits_study_at_the_defaults_needs_yes(run_cli) -> None:
    """odebench orders on the digits UNet at its default ladder (25..1600 steps, seven
    solvers, 64 samples, tol 1e-12): hours, not the minutes the old estimate gave."""
    result = run_cli(
        "orders", "--problem", "digits-data", "--model", "trained",
        "--schedule", "ddpm-linear-1000", "--estimate",
    )  # fmt: skip
    result.failed_in_one_line("above the time limit")
    assert run_cli(
        "orders", "--problem", "digits-data", "--model", "trained",
        "--schedule", "ddpm-linear-1000", "--estimate", "--yes",
    ).code == 0  # fmt: skip


def test_a_card_that_failed_once_is_counted_again_when_it_loads(tmp_path, monkeypatch) -> None:
    """The count is remembered per card file: a bad card of the same name seen earlier (a test
    of bad cards, a user's folder) must not leave None behind for the good one."""
    from odebench.models import loading

    (tmp_path / "gmm-2d-mlp.json").write_text("{not json")
    monkeypatch.setattr(loading, "ASSETS", tmp_path)
    assert cost.network_size("gmm-2d-mlp", 2) is None
    monkeypatch.undo()
    assert cost.network_size("gmm-2d-mlp", 2) is not None
