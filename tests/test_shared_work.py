"""Work the studies share per cell: the exact side of the paired bootstrap scored once per cell,
the sliced W2 of every resample from one sort, the MMD target's kernel term computed once.
Each must give the numbers of the plain computation (issue 16, item 3)."""

from __future__ import annotations

import pytest
import torch

import odebench as ob
from odebench.metrics.distribution import (
    floor_of,
    frechet,
    mc_estimate,
    median_bandwidth,
    metric_paired_bootstrap,
    mixture_moments,
    mmd2,
    mmd2_estimate,
    mmd2_to,
    paired_bootstrap,
    psd_factor,
    random_directions,
    resample_indices,
    sliced_w2_to,
)

D = torch.float64
PROB = ob.problems.get("gmm-2d", "linear")


def _samples(n: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * PROB.sample(n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("d", [2, 5])
def test_sliced_resampled_equals_sorting_each_resample(d):
    gen = torch.Generator().manual_seed(d)
    x = torch.randn(300, d, generator=gen, dtype=D)
    y = torch.randn(300, d, generator=gen, dtype=D) * 1.3
    metric = sliced_w2_to(y, random_directions(d, 24, gen))
    indices = resample_indices(300, 6, torch.Generator().manual_seed(1))
    fast = metric.resampled(x, indices)
    plain = [metric(x[idx]) for idx in indices]
    assert fast == pytest.approx(plain, rel=1e-12, abs=0)
    # a resample is not the sample itself: the multiplicities matter
    assert all(abs(f - metric(x)) > 1e-6 for f in fast)


def test_resample_indices_are_the_bootstrap_draws():
    """The same draws the per-row bootstrap made: n_boot randint(n) from the generator."""
    gen = torch.Generator().manual_seed(7)
    want = [torch.randint(50, (50,), generator=gen) for _ in range(4)]
    got = resample_indices(50, 4, torch.Generator().manual_seed(7))
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def _frechet_metric():
    mean, cov = mixture_moments(PROB, 0.0)
    factor = psd_factor(cov)
    return lambda s: frechet(s, mean, factor)


@pytest.mark.parametrize("which", ["frechet", "sliced_w2"])
def test_a_shared_exact_side_gives_the_per_row_estimate(which):
    y = _samples(400, 1)
    metric = (
        _frechet_metric()
        if which == "frechet"
        else sliced_w2_to(y, random_directions(2, 32, torch.Generator().manual_seed(3)))
    )
    x_ode = _samples(400, 2)
    floor = (0.01, 0.001, 0.002)
    side = metric_paired_bootstrap(metric, x_ode, 8, torch.Generator().manual_seed(5))
    for scale in (0.9, 1.1):
        x = scale * x_ode
        per_row = mc_estimate(
            metric,
            x,
            _samples,
            n_boot=8,
            floor=floor,
            x_exact_ode=x_ode,
            generator=torch.Generator().manual_seed(5),
        )
        shared = mc_estimate(metric, x, _samples, n_boot=8, floor=floor, paired=side)
        assert shared.value == per_row.value and shared.paired == per_row.paired
        assert shared.paired_se == pytest.approx(per_row.paired_se, rel=1e-10)
        assert shared.paired == shared.value - metric(x_ode)  # the exact side is subtracted
        other = metric_paired_bootstrap(metric, x_ode, 8, torch.Generator().manual_seed(6))
        unshared = mc_estimate(metric, x, _samples, n_boot=8, floor=floor, paired=other)
        assert unshared.paired_se != shared.paired_se  # the resamples are the side's own


def test_mmd_target_and_shared_side_give_the_plain_numbers():
    y, x_ode = _samples(300, 1), _samples(300, 2)
    x = 0.9 * x_ode
    bw = median_bandwidth(y)
    target = mmd2_to(y, bw)
    assert target(x) == mmd2(x, y, bw)
    draw = _samples
    floor = floor_of(target, lambda k: _samples(k, 11), 300, 4)
    per_row = mmd2_estimate(
        x,
        y,
        bw,
        draw,
        n_boot=6,
        floor=floor,
        x_exact_ode=x_ode,
        generator=torch.Generator().manual_seed(5),
    )
    ko = target.prepared(x_ode)
    side = paired_bootstrap(
        lambda idx: target.score(ko, idx), 300, 6, torch.Generator().manual_seed(5)
    )
    shared = mmd2_estimate(x, target, bw, draw, n_boot=6, floor=floor, paired=side)
    assert (shared.value, shared.paired, shared.paired_se) == (
        per_row.value,
        per_row.paired,
        per_row.paired_se,
    )
    assert shared.paired == shared.value - target.score(ko)


def test_per_step_errors_with_a_shared_reference_are_the_same():
    """The singularity study computes the path's reference once per cell, not per solver."""
    from odebench.reference import reference
    from odebench.singularity import per_step_errors

    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    x_T = prob.sample_marginal(8, 1.0, torch.Generator().manual_seed(0))
    ts = ob.timesteps(12, "uniform", 1.0, 0.01, schedule=sched)
    ref = reference(prob, sched, x_T, ts, tol=1e-9)
    for solver in ("ddim", "f-pndm"):
        own = per_step_errors(solver, prob, sched, x_T, ts, tol=1e-9)
        shared = per_step_errors(solver, prob, sched, x_T, ts, tol=1e-9, ref=ref)
        assert shared == own
    other = ob.timesteps(10, "uniform", 1.0, 0.01, schedule=sched)
    with pytest.raises(ValueError, match="reference at the grid"):
        per_step_errors("ddim", prob, sched, x_T, other, ref=ref)


@pytest.mark.parametrize("shape", [(40, 16, 2), (9, 4, 3, 5), (6, 3, 0)])
@pytest.mark.parametrize("norm", ["rms", "max"])
def test_path_error_of_all_times_at_once_is_the_per_time_maximum(shape, norm):
    """The orders study's path error, every time point in one pass: the same float as the
    maximum of the per-time errors, with exact, diverged and exactly zero time points."""
    import math

    from odebench.metrics import ERROR_NORMS, path_error

    gen = torch.Generator().manual_seed(len(shape))
    ref = torch.randn(shape, generator=gen, dtype=D) * 1e3
    traj = ref + 1e-9 * torch.randn(shape, generator=gen, dtype=D) * torch.arange(shape[0]).view(
        -1, *[1] * (len(shape) - 1)
    )
    fn = ERROR_NORMS[norm]
    want = max(fn(traj[t], ref[t]) for t in range(shape[0]))
    assert path_error(traj, ref, norm) == want
    assert path_error(traj[:1], ref[:1], norm) == fn(traj[0], ref[0])  # t = 0: exact, 0
    if traj[0].numel():
        traj[3].view(-1)[0] = math.nan  # a diverged time point: inf, never nan
        assert path_error(traj, ref, norm) == math.inf
