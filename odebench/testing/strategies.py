"""Hypothesis strategies for property tests of samplers, as odebench writes its own.

    from hypothesis import given
    from odebench.testing import strategies as obst

    @given(prob=obst.mixtures(), data=st.data())
    def test_my_sampler_is_exact_on_dirac_data(prob, data): ...

``schedules()`` draws a registered schedule (every interpolant), ``mixtures()`` a Gaussian
mixture with random means, diagonal variances and weights under such a schedule,
``gaussians()`` one Gaussian (it has an exact flow map), and ``grids(schedule)`` a strictly
decreasing time grid drawn as random steps in lambda, the schedule's natural clock, with
alpha / sigma >= 1e-3 at its start. Needs the ``hypothesis`` package (``odebench[testing]``).
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from .. import problems
from .. import schedules as _schedules
from .._tensor import DTYPE


def schedules(interpolant: str | None = None) -> st.SearchStrategy:
    """A registered schedule ("vp", "ve" or "flow" only, with ``interpolant``)."""
    return st.sampled_from(_schedules.names(interpolant)).map(_schedules.get)


@st.composite
def mixtures(draw, schedule=None, max_dim: int = 3, max_components: int = 3):
    """A Gaussian mixture in 1..max_dim dimensions with 1..max_components diagonal components
    (means of size ~2, variances in [0.05, 1.05], random weights)."""
    sched = draw(schedules()) if schedule is None else _schedules.get(schedule)
    d = draw(st.integers(1, max_dim))
    k = draw(st.integers(1, max_components))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    means = 2.0 * torch.randn(k, d, generator=g, dtype=DTYPE)
    variances = 0.05 + torch.rand(k, d, generator=g, dtype=DTYPE)
    weights = torch.softmax(torch.randn(k, generator=g, dtype=DTYPE), 0)
    return problems.GaussianMixture(means, variances, weights, sched)


@st.composite
def gaussians(draw, schedule=None, max_dim: int = 4):
    """One Gaussian N(m, C) with a random full covariance (exact flow map ``.flow``)."""
    sched = draw(schedules()) if schedule is None else _schedules.get(schedule)
    d = draw(st.integers(1, max_dim))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    a = torch.randn(d, d, generator=g, dtype=DTYPE)
    cov = a @ a.T / d + 0.05 * torch.eye(d, dtype=DTYPE)
    return problems.Gaussian(torch.randn(d, generator=g, dtype=DTYPE), cov, sched)


@st.composite
def grids(draw, schedule, min_steps: int = 5, max_steps: int = 40, t_min: float = 1e-4):
    """A strictly decreasing grid of min_steps..max_steps steps, drawn as random increments of
    lambda in [0.01, 2.3] (sigma / alpha shrinks at most tenfold per step) from a start with
    alpha / sigma >= 1e-3 down to no lower than ``t_min``."""
    sched = _schedules.get(schedule)
    lam_top = max(float(sched.lambda_(sched.t_hi)), -6.9078)
    lam_end = float(sched.lambda_(t_min))
    start = lam_top + draw(st.floats(0.0, 0.5)) * (lam_end - lam_top)
    incs = draw(st.lists(st.floats(0.01, 2.3), min_size=min_steps, max_size=max_steps))
    lam = [start]
    for inc in incs:
        if lam[-1] + inc >= lam_end:
            break
        lam.append(lam[-1] + inc)
    if len(lam) < min_steps + 1:  # too few fitted before the end: spread min_steps evenly
        lam = [start + k * (lam_end - start) / min_steps for k in range(min_steps + 1)]
    ts = sched.t_from_lambda(torch.tensor(lam, dtype=DTYPE))
    keep = torch.ones_like(ts, dtype=torch.bool)
    keep[1:] = ts[1:] < ts[:-1]  # drop any tie that t(lambda) rounded together
    return ts[keep]


__all__ = ["gaussians", "grids", "mixtures", "schedules"]
