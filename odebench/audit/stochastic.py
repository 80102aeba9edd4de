"""Stochastic samplers seen from outside: control of their noise, exact output laws, strong
errors along one Brownian path.

A diffusers scheduler such as DDPMScheduler or EulerAncestralDiscreteScheduler draws fresh
Gaussian noise inside ``step()`` (diffusers' ``randn_tensor``, called from the module that
defines ``step``). :class:`NoiseSource` replaces that function for one run, so the audit
decides what every draw returns:

- :class:`Counter` returns zeros and records which step drew what (draws per step);
- :class:`Design` gives batch row ``r0 + k d + j`` the unit vector e_j at draw k (0 elsewhere);
- :class:`PathNoise` gives step k the normalised Brownian increment of a prescribed path.

**Exact law** (:func:`exact_law`). With the exact model output of a Gaussian problem, eps (or
x0, v, the velocity) is affine in x, so every step of these schedulers is affine in the
state and the draw, and the output is X = c + A x_T + sum_k B_k xi_k with xi_k standard
normal. One batched run gives everything: row 0 starts at the mean of p(t_start) with all
draws 0 (the output mean m = c + A m_T); row j starts at m_T + L e_j (L a factor of the
covariance of p(t_start)) with draws 0 (column A L e_j, after subtracting row 0); row
(1 + d + k d + j) starts at m_T with e_j at draw k (column B_k e_j). Batch rows do not
interact, so X ~ N(m, F F^T) with F the matrix of those columns: no Monte Carlo. The weak
error is the exact W2 between that law and the exact marginal N(alpha m0, alpha^2 Sigma +
sigma^2 I) at the end time (Ho et al. 2020 for DDPM's law; Kloeden & Platen 1992, ch. 14,
for weak order). The same construction on the point-mass problem gives the output law
N(c1 x0, s^2 I): s / c1 = sigma / alpha names the time the output is at.

**Strong error** (:func:`strong_errors`). Where a step draws once, step k of a run on the grid
t_0 > t_1 > ... > t_N (odebench time of the calls, then the end time) receives
(W(t_k) - W(t_{k+1})) / sqrt(t_k - t_{k+1}), for one Brownian path W sampled on the finest
nested grid and summed on coarser ones; the error is the RMS distance of a run's output to
the finest run's output driven by the same path (Kloeden & Platen 1992, ch. 10).

**Monte Carlo law** (:func:`mc_law`, :func:`mc_floor`). Where the output is not affine (DDPM's
default clip_sample=True clips x0 predictions), n runs from x_T ~ p(t_start) with the noise
drawn by :class:`Seeded` give the sample mean and covariance; the weak error is the Frechet
distance (W2 between the Gaussian with those moments and the exact marginal; Dowson & Landau
1982, Heusel et al. 2017). Its Monte Carlo floor is the same statistic on n exact samples of
the marginal: the mean over a few seeds is the floor, their spread its standard error.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from .._tensor import DTYPE
from ..metrics import gaussian_kl as metrics_kl
from ..metrics import gaussian_w2, psd_factor, rms_error
from . import probes
from .adapters import Trace, drive

NOISE_FN = "randn_tensor"
PROBES_MODULE = "odebench.audit.counterfactual"
AFFINE_TOL = 1e-3  # relative affinity defect (clipping: ~1e-1; float32 states, N = 700: ~1e-4)


def noise_module(cls: type):
    """The module whose ``randn_tensor`` the class's ``step()`` calls, or None. A
    counterfactual probe's subclass (:mod:`.counterfactual`) defines a ``step`` that calls its
    base class's: the module is then that base's."""
    for klass in cls.__mro__:
        step = klass.__dict__.get("step")
        if step is None:
            continue
        name = getattr(step, "__module__", "") or ""
        if name == PROBES_MODULE:  # a probe's wrapper: its base class draws the noise
            continue
        module = sys.modules.get(name)
        return module if module is not None and callable(getattr(module, NOISE_FN, None)) else None
    return None


class NoiseSource:
    """Replaces the noise ``step()`` draws during one run (see the module docstring)."""

    def __init__(self) -> None:
        self.step = -1
        self.draw_steps: list[int] = []  # the step (0-based) of each draw
        self.shapes: list[tuple[int, ...]] = []

    def begin_step(self, k: int) -> None:
        self.step = k

    def make(self, index: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    @contextmanager
    def patch(self, sch: Any) -> Iterator[None]:
        module = noise_module(type(sch))
        if module is None:
            raise ValueError(f"{type(sch).__name__}.step draws no noise through {NOISE_FN}")
        original = getattr(module, NOISE_FN)

        def randn(shape, generator=None, device=None, dtype=None, layout=None):
            shape = tuple(int(s) for s in shape)
            self.draw_steps.append(self.step)
            self.shapes.append(shape)
            out = self.make(len(self.draw_steps) - 1, shape, dtype or torch.float32)
            return out if device is None else out.to(device)

        setattr(module, NOISE_FN, randn)
        try:
            yield
        finally:
            setattr(module, NOISE_FN, original)

    def per_step(self) -> dict[int, int]:
        """Number of draws in each step that drew."""
        return draws_per_step(self.draw_steps)


def draws_per_step(draw_steps: Sequence[int]) -> dict[int, int]:
    """Number of draws in each step that drew, from the step of each draw."""
    out: dict[int, int] = {}
    for k in draw_steps:
        out[k] = out.get(k, 0) + 1
    return out


class Counter(NoiseSource):
    """Every draw is 0; the draws are only counted."""

    def make(self, index, shape, dtype):
        return torch.zeros(shape, dtype=dtype)


class Design(NoiseSource):
    """Draw k gives row ``r0 + k d + j`` the unit vector e_j (rows are (d,) states), and row
    ``check`` the draw ``check_noise(k)`` (an affinity check)."""

    def __init__(self, r0: int, d: int, check: int, check_noise: Callable[[int], torch.Tensor]):
        super().__init__()
        self.r0, self.d, self.check, self.check_noise = r0, d, check, check_noise

    def make(self, index, shape, dtype):
        out = torch.zeros(shape, dtype=dtype)
        rows = self.r0 + index * self.d + torch.arange(self.d)
        if len(shape) != 2 or shape[1] != self.d or int(rows[-1]) >= shape[0]:
            raise ValueError(f"draw {index} has shape {shape}, not (batch, {self.d})")
        out[rows, torch.arange(self.d)] = 1.0
        out[self.check] = self.check_noise(index).to(dtype)
        return out


class PathNoise(NoiseSource):
    """Step k draws ``noise[k]`` (a (batch, d) tensor); a second draw in one step is refused."""

    def __init__(self, noise: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.noise = list(noise)

    def make(self, index, shape, dtype):
        if self.draw_steps.count(self.step) > 1:
            raise ValueError(f"step {self.step + 1} draws noise twice")
        return self.noise[self.step].to(dtype).reshape(shape)


class Seeded(NoiseSource):
    """Every draw is standard normal from one seeded ``torch.Generator`` (float64, then cast)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.gen = torch.Generator().manual_seed(int(seed))

    def make(self, index, shape, dtype):
        return torch.randn(shape, generator=self.gen, dtype=DTYPE).to(dtype)


def marginal(problem, sched, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and square factor of the exact marginal N(alpha m, alpha^2 Sigma + sigma^2 I) of
    a Gaussian problem at time t."""
    cov0 = getattr(problem, "cov", None)
    if cov0 is None or not hasattr(problem, "mean"):
        raise ValueError(f"the exact law needs a Gaussian problem, not {problem.name!r}")
    tt = torch.tensor(float(t), dtype=DTYPE)
    a, s = float(sched.alpha(tt)), float(sched.sigma(tt))
    cov = a * a * cov0.to(DTYPE) + s * s * torch.eye(problem.dim, dtype=DTYPE)
    vals, vecs = torch.linalg.eigh(cov)
    return a * problem.mean.to(DTYPE), vecs * vals.clamp_min(0.0).sqrt()


@dataclass
class Law:
    """The exact output law N(mean, factor factor^T) of one run, and how it was made."""

    status: str
    mean: torch.Tensor | None = None
    factor: torch.Tensor | None = None  # (d, d): F F^T compressed
    t_start: float = math.nan
    draws: int = 0
    draw_steps: list[int] = field(default_factory=list)
    trace: Trace | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def exact_law(
    factory: Callable[[], Any],
    steps: int,
    problem,
    sched,
    model,
    interface,
    T: int = 1000,
    step_args: dict[str, Any] | None = None,
    keep_inputs: bool = False,
) -> Law:
    """The exact law of the output (the interpolant's x) from x_T ~ p(t_start), by one
    counting run and one designed run (see the module docstring); ``keep_inputs`` keeps the
    designed batch's model inputs (for :func:`input_times`)."""
    d = int(problem.dim)
    gen = torch.Generator().manual_seed(1234)
    u = torch.randn(d, generator=gen, dtype=DTYPE)

    def check_noise(k: int) -> torch.Tensor:
        return torch.randn(d, generator=torch.Generator().manual_seed(k), dtype=DTYPE)

    def design(extra: int):
        def start(t: float) -> torch.Tensor:
            m, L = marginal(problem, sched, t)
            rows = [m[None], m[None] + L.T, (m + L @ u)[None], m[None].expand(extra, d)]
            return torch.cat(rows).to(DTYPE)

        return start

    def run(source, extra) -> Trace:
        return drive(
            factory,
            steps,
            design(extra),
            model,
            T,
            keep_inputs=keep_inputs and extra > 0,
            interface=interface,
            step_args=step_args,
            noise=source,
        )

    counter = Counter()
    first = run(counter, 0)
    if not first.ok:
        return Law(first.status, trace=first)
    k = len(counter.draw_steps)
    full = run(Design(2 + d, d, 1 + d, check_noise), k * d)
    if not full.ok:
        return Law(full.status, trace=full)
    x = full.x_vp.reshape(full.x_vp.shape[0], -1).to(DTYPE)
    mean = x[0]
    a_cols = (x[1 : 1 + d] - mean).T
    b_cols = (x[2 + d :] - mean).T  # (d, k d)
    weights = torch.cat([u, *[check_noise(i) for i in range(k)]]) if k else u
    cols = torch.cat([a_cols, b_cols], dim=1)
    predicted = mean + cols @ weights
    scale = max(float((x[1 + d] - mean).norm()), float(x.abs().max()), 1e-300)
    defect = float((x[1 + d] - predicted).norm()) / scale
    if defect > AFFINE_TOL:
        return Law(
            f"not affine in (x_T, noise): defect {defect:.1e} (clipping or thresholding?)",
            trace=full,
            draws=k,
        )
    factor = torch.linalg.qr(cols.T, mode="r").R.T if cols.shape[1] > d else cols
    return Law("ok", mean, factor, full.t_start, k, counter.draw_steps, full)


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample mean and a square factor of the sample covariance of the rows of x."""
    x = x.reshape(x.shape[0], -1).to(DTYPE)
    return x.mean(0), psd_factor(torch.cov(x.T))


def mc_law(
    factory: Callable[[], Any],
    steps: int,
    problem,
    sched,
    model,
    interface,
    T: int = 1000,
    step_args: dict[str, Any] | None = None,
    n: int = 4096,
    seed: int = 0,
) -> Law:
    """The Gaussian with the sample mean and covariance of n seeded runs from x_T ~
    p(t_start) (see the module docstring): a Monte Carlo stand-in for the exact law."""
    source = Seeded(seed + 17)

    def start(t: float) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed + 13)
        return problem.sample_marginal(int(n), t, gen).to(DTYPE)

    trace = drive(
        factory,
        steps,
        start,
        model,
        T,
        keep_inputs=False,
        interface=interface,
        step_args=step_args,
        noise=source,
    )
    if not trace.ok:
        return Law(trace.status, trace=trace, draws=len(source.draw_steps))
    mean, factor = _moments(trace.x_vp)
    return Law("ok", mean, factor, trace.t_start, len(source.draw_steps), source.draw_steps, trace)


def mc_floor(problem, sched, t: float, n: int, seeds: int = 8) -> tuple[float, float]:
    """Mean and standard deviation over ``seeds`` seeds of the Frechet distance of n exact
    samples of the marginal at t to that marginal: the floor of :func:`mc_law`'s W2."""
    m, f = marginal(problem, sched, t)
    vals = []
    for s in range(seeds):
        z = torch.randn(int(n), m.numel(), generator=torch.Generator().manual_seed(s), dtype=DTYPE)
        vals.append(gaussian_w2(*_moments(m + z @ f.T), m, f))
    v = torch.tensor(vals, dtype=DTYPE)
    return float(v.mean()), float(v.std())


def _point_time(x: torch.Tensor, x0: torch.Tensor, sched, T: int | None) -> float:
    """Time of a designed point-mass batch x (rows as in :func:`exact_law`): its law is
    N(c1 x0, s^2 I) and s / c1 = sigma / alpha."""
    x = x.reshape(x.shape[0], -1).to(DTYPE)
    d = x.shape[1]
    cols = torch.cat([x[1 : 1 + d], x[2 + d :]]) - x[0]
    c1 = float(x[0] @ x0) / float(x0 @ x0)
    if c1 <= 0:
        return math.nan
    s = math.sqrt(float((cols**2).sum()) / d)
    return probes.snap_time(probes.t_of_sigma_tilde(sched, s / c1), T)


def end_time(law: Law, point: torch.Tensor, sched, T: int | None) -> float:
    """The time a point-mass output law N(c1 x0, s^2 I) is at: sigma / alpha = s / c1."""
    if not law.ok:
        return math.nan
    return _point_time(law.trace.x_vp, point.to(DTYPE).reshape(-1), sched, T)


def input_times(law: Law, point: torch.Tensor, sched, T: int | None) -> dict[str, Any]:
    """Where the model inputs of a point-mass law are (their laws N(c1 x0, s^2 I) name their
    times, as the deterministic probe's states do) against the times the model is told:
    the worst gap in steps of the table (1/1000 of t on a continuous path) and where."""
    out = {"max_gap": math.nan, "worst_t_call": math.nan, "worst_t_state": math.nan}
    trace = law.trace
    if not law.ok or trace is None or len(trace.inputs) != len(trace.calls):
        return out
    x0 = point.to(DTYPE).reshape(-1)
    unit = T or 1000
    gaps = []
    for x, call in zip(trace.inputs, trace.calls, strict=True):
        t_state = _point_time(x, x0, sched, T)
        gaps.append((abs(t_state - call.t) * unit, call.t, t_state))
    finite = [g for g in gaps if math.isfinite(g[0])]
    if finite:
        worst = max(finite)
        out.update(max_gap=worst[0], worst_t_call=worst[1], worst_t_state=worst[2])
    return out


def gaussian_kl(m0, f0, m1, f1) -> float:
    """KL(N(m0, f0 f0^T) || N(m1, f1 f1^T)) (``metrics.gaussian_kl``); nan where a covariance
    is singular."""
    try:
        value = metrics_kl(m0, f0 @ f0.T, m1, f1 @ f1.T)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def weak_errors(law: Law, problem, sched, t_end: float) -> dict[str, float]:
    """W2 to the exact marginal at ``t_end`` and to the data (t = 0), and KL(law || marginal
    at t_end) where both covariances are non-singular."""
    out = {"weak_w2": math.nan, "weak_w2_data": math.nan, "weak_kl": math.nan}
    if not law.ok:
        return out
    m0, f0 = marginal(problem, sched, 0.0)
    out["weak_w2_data"] = gaussian_w2(law.mean, law.factor, m0, f0)
    if math.isfinite(t_end):
        m1, f1 = marginal(problem, sched, t_end)
        out["weak_w2"] = gaussian_w2(law.mean, law.factor, m1, f1)
        out["weak_kl"] = gaussian_kl(law.mean, law.factor, m1, f1)
    return out


# --- strong errors ---------------------------------------------------------------------------


def _grid(trace: Trace, t_end: float) -> list[float]:
    return [c.t for c in trace.calls] + [t_end]


def _nested(coarse: list[float], fine: list[float], tol: float = 1e-9) -> list[int] | None:
    """Indices of ``coarse`` in ``fine`` (both decreasing, with the same first and last
    times), or None when it is not so."""
    if not coarse or abs(coarse[0] - fine[0]) > tol or abs(coarse[-1] - fine[-1]) > tol:
        return None
    out, j = [], 0
    for t in coarse:
        while j < len(fine) and fine[j] > t + tol:
            j += 1
        if j == len(fine) or abs(fine[j] - t) > tol:
            return None
        out.append(j)
    return out


def strong_plan(grids: dict[int, list[float]]) -> tuple[int | None, list[int]]:
    """The reference step count whose grid holds the most coarser grids (finer on ties) and
    those coarser counts."""
    best: tuple[int | None, list[int]] = (None, [])
    for ref in sorted(grids):
        inside = [n for n in sorted(grids) if n < ref and _nested(grids[n], grids[ref])]
        if len(inside) >= len(best[1]):
            best = (ref, inside)
    return best


def strong_errors(
    factory: Callable[[], Any],
    grids: dict[int, list[float]],
    start: Callable[[float], torch.Tensor],
    model,
    interface,
    T: int,
    seed: int,
    step_args: dict[str, Any] | None = None,
) -> tuple[int | None, dict[int, float]]:
    """RMS distance of each coarse output to the reference output driven by the same Brownian
    path (see the module docstring); ``grids[N]``: call times then the end time of N steps."""
    ref, coarse = strong_plan(grids)
    if ref is None or not coarse:
        return None, {}
    fine = grids[ref]
    x0 = start(fine[0])
    shape = x0.reshape(x0.shape[0], -1).shape
    gen = torch.Generator().manual_seed(seed + 11)
    dt = torch.tensor([a - b for a, b in itertools.pairwise(fine)], dtype=DTYPE)
    dw = torch.randn(len(dt), *shape, generator=gen, dtype=DTYPE) * dt.sqrt()[:, None, None]
    w = torch.cat([torch.zeros(1, *shape, dtype=DTYPE), dw.cumsum(0)])  # W at fine[i]

    def run(n: int) -> torch.Tensor | None:
        idx = _nested(grids[n], fine)
        noise = [
            (w[b] - w[a]) / math.sqrt(max(fine[a] - fine[b], 1e-300))
            for a, b in itertools.pairwise(idx)
        ]
        trace = drive(
            factory,
            n,
            start,
            model,
            T,
            keep_inputs=False,
            interface=interface,
            step_args=step_args,
            noise=PathNoise(noise),
        )
        return trace.x_vp if trace.ok else None

    x_ref = run(ref)
    if x_ref is None:
        return ref, {}
    out = {}
    for n in coarse:
        x = run(n)
        out[n] = rms_error(x, x_ref) if x is not None else math.nan
    return ref, out


__all__ = [
    "Counter",
    "Design",
    "Law",
    "NoiseSource",
    "PathNoise",
    "Seeded",
    "draws_per_step",
    "end_time",
    "exact_law",
    "gaussian_kl",
    "input_times",
    "marginal",
    "mc_floor",
    "mc_law",
    "noise_module",
    "strong_errors",
    "strong_plan",
    "weak_errors",
]
