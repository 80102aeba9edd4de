"""Error norms: hand-computed values, any trailing shape, diverged runs measure as inf."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from odebench.metrics import (
    ERROR_NORMS,
    max_error,
    path_error,
    relative_rms_error,
    rms_error,
)

# x - ref has per-sample norms 5 and 1 (|(3, 4)| and |(0, -1)|); |ref_i| = 0 and sqrt(2).
X = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
REF = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)


def test_hand_computed_values() -> None:
    assert rms_error(X, REF) == pytest.approx(math.sqrt((25 + 1) / 2))
    assert max_error(X, REF) == pytest.approx(5.0)
    assert relative_rms_error(X, REF) == pytest.approx(math.sqrt(13) / 1.0)
    assert rms_error(X, X) == 0.0
    assert ERROR_NORMS["rms"] is rms_error and ERROR_NORMS["max"] is max_error


def test_rms_is_not_the_mean_of_norms() -> None:
    ref = torch.zeros(2, 1, dtype=torch.float64)
    x = torch.tensor([[3.0], [4.0]], dtype=torch.float64)
    assert rms_error(x, ref) == pytest.approx(math.sqrt(12.5))  # mean would be 3.5


def test_norm_runs_over_all_trailing_dims() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 2, generator=g, dtype=torch.float64)
    ref = torch.randn(4, 3, 5, 2, generator=g, dtype=torch.float64)
    d = (x - ref).reshape(4, -1).norm(dim=1)
    assert rms_error(x, ref) == pytest.approx(float(d.pow(2).mean().sqrt()), rel=1e-12)
    assert max_error(x, ref) == pytest.approx(float(d.max()), rel=1e-12)
    size = float(ref.reshape(4, -1).norm(dim=1).pow(2).mean().sqrt())
    assert relative_rms_error(x, ref) == pytest.approx(rms_error(x, ref) / size, rel=1e-12)


def test_batch_of_scalars() -> None:
    x = torch.tensor([1.0, -2.0, 2.0])
    assert rms_error(x, torch.zeros(3)) == pytest.approx(math.sqrt(3.0))
    assert max_error(x, torch.zeros(3)) == pytest.approx(2.0)


@settings(max_examples=40, deadline=None)
@given(
    scale=st.floats(1e-150, 1e150),
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 5),
)
def test_scaling_is_exact_and_free_of_overflow(scale: float, seed: int, batch: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    ref = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    base_rms, base_max = rms_error(x, ref), max_error(x, ref)
    assert rms_error(scale * x, scale * ref) == pytest.approx(scale * base_rms, rel=1e-12)
    assert max_error(scale * x, scale * ref) == pytest.approx(scale * base_max, rel=1e-12)
    assert base_rms <= base_max <= math.sqrt(batch) * base_rms * (1 + 1e-12)


def test_float32_inputs_are_measured_in_float64() -> None:
    x = torch.tensor([[1.0 + 2**-20]], dtype=torch.float32)
    ref = torch.tensor([[1.0]], dtype=torch.float64)
    assert rms_error(x, ref) == 2**-20


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("fn", [rms_error, max_error, relative_rms_error])
def test_nonfinite_state_measures_as_inf(fn, bad: float) -> None:
    x = X.clone()
    x[1, 0] = bad
    assert fn(x, REF) == math.inf


def test_nonfinite_reference_raises() -> None:
    ref = REF.clone()
    ref[0, 0] = math.nan
    with pytest.raises(ValueError, match="reference"):
        rms_error(X, ref)


@pytest.mark.parametrize("fn", [rms_error, max_error, relative_rms_error])
def test_shape_mismatch_names_both_shapes(fn) -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        fn(torch.zeros(2, 3), torch.zeros(2, 4))


@pytest.mark.parametrize("shape", [(), (0, 3)])
def test_needs_a_nonempty_batch(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        rms_error(torch.zeros(shape), torch.zeros(shape))


def test_relative_error_of_zero_reference_raises() -> None:
    with pytest.raises(ValueError, match="zero"):
        relative_rms_error(X, torch.zeros_like(X))


# --- path error ----------------------------------------------------------------------------


def _path() -> tuple[torch.Tensor, torch.Tensor]:
    # T = 3 time points, B = 2 samples, 2 coordinates; the worst time point is t = 1.
    ref = torch.zeros(3, 2, 2, dtype=torch.float64)
    traj = ref.clone()
    traj[0, 0] = torch.tensor([1.0, 0.0])  # norms (1, 0): rms sqrt(1/2), max 1
    traj[1, 1] = torch.tensor([0.0, 2.0])  # norms (0, 2): rms sqrt(2),   max 2
    traj[2] = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # norms (sqrt2, sqrt2): rms sqrt2, max sqrt2
    return traj, ref


def test_path_error_takes_worst_time_point() -> None:
    traj, ref = _path()
    assert path_error(traj, ref) == pytest.approx(math.sqrt(2))
    assert path_error(traj, ref, norm="max") == pytest.approx(2.0)
    traj[2] *= 3
    assert path_error(traj, ref) == pytest.approx(3 * math.sqrt(2))


def test_path_error_accepts_a_callable_norm() -> None:
    traj, ref = _path()

    def l1(x: torch.Tensor, ref: torch.Tensor) -> float:
        return float((x - ref).abs().sum())

    assert path_error(traj, ref, norm=l1) == pytest.approx(4.0)  # time point 2: 1+1+1+1


def test_path_error_is_inf_when_any_time_point_diverged() -> None:
    traj, ref = _path()
    traj[1, 0, 0] = math.nan
    assert path_error(traj, ref) == math.inf
    assert path_error(traj, ref, norm="max") == math.inf


def test_path_error_rejects_bad_input() -> None:
    traj, ref = _path()
    with pytest.raises(ValueError, match="unknown norm"):
        path_error(traj, ref, norm="l1")
    with pytest.raises(ValueError, match=r"\(3, 2, 2\).*\(3, 2, 3\)"):
        path_error(traj, torch.zeros(3, 2, 3))
    with pytest.raises(ValueError, match="shape"):
        path_error(torch.zeros(3), torch.zeros(3))
