"""Order checks for other projects' test suites: ``assert_order(sampler, order)``.

A sampler author writes, in their own tests,

    from odebench.testing import assert_order
    assert_order(my_sampler, 2)

and gets odebench's measurement: the global error of the sampler's final state against a
reference that reports its own accuracy (the exact Gaussian flow by default), over a ladder of
step counts, with the order fitted with a 95% confidence interval. A failure shows the step
counts, errors, local slopes and the fitted order. ``sampler`` is a solver name, a
``Solver``, a k-diffusion-style function ``sample(model, x, sigmas)`` with a denoiser
``model(x, sigma) -> x0`` on x = x0 + sigma z (``KDiffusionSampler``), or a diffusers
scheduler instance (driven by ``odebench.audit`` on its own table, as a pipeline drives it).

By default the ladder runs from t = 1 to t = 0.1, the smooth region away from the data end
(where the audit's "order at t=0.1" line measures); ``to_data=True`` runs it to t = 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .. import convergence, problems, schedules
from .._tensor import DTYPE
from ..grids import start_time
from ..metrics import OrderFit, fit_order, rms_error
from ..solvers import Solver, solve
from ..solvers import get as get_solver

KSampler = Callable[..., torch.Tensor]


class KDiffusionSampler(Solver):
    """A k-diffusion-style function as a solver: ``fn(model, x, sigmas)`` integrates the EDM
    ODE from sigmas[0] down to sigmas[-1] with ``model(x, sigma) -> x0``, for x = x0 + sigma z.
    odebench's state at t is alpha_t times that x at sigma = sigma_t / alpha_t, so any
    schedule works; the denoiser is the x0 prediction of odebench's eps model."""

    def __init__(self, fn: KSampler, order: int | None = None, name: str | None = None):
        if not callable(fn):
            raise ValueError(f"a sampler function must be callable, got {type(fn).__name__}")
        self.fn, self.order = fn, order
        self.name = name or getattr(fn, "__name__", "k-diffusion sampler")
        self.gradient = "a k-diffusion-style sampler function"

    def nfe(self, steps: int) -> int | None:
        return None

    def step(self, state):
        raise ValueError(f"{self.name} is a whole-grid function: it has no single steps")

    def iterate(self, model, sched, x, ts, noise=None):
        """One yield: the function integrates the whole grid (its trajectory is not kept)."""
        sigmas = torch.stack([sched.sigma_tilde(t) for t in ts]).to(x.dtype)

        def denoiser(x_ve: torch.Tensor, sigma) -> torch.Tensor:
            s = float(torch.as_tensor(sigma).reshape(-1)[0])
            t = sched.t_from_sigma_tilde(s)
            eps = model(float(sched.alpha(t)) * x_ve, t)
            return x_ve - s * eps

        alpha0 = float(sched.alpha(ts[0]))
        out = self.fn(denoiser, x / alpha0, sigmas)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"{self.name} returned {got} for x of shape {tuple(x.shape)}")
        yield float(sched.alpha(ts[-1])) * out


def as_solver(sampler: str | Solver | KSampler) -> Solver:
    """A solver name, a Solver, or a k-diffusion-style function, as a Solver."""
    if isinstance(sampler, str | Solver):
        return get_solver(sampler)
    return KDiffusionSampler(sampler)


def measure_order(
    sampler: str | Solver | KSampler,
    *,
    problem: str = "gaussian-lowrank",
    schedule: str = "linear",
    steps: Sequence[int] = (25, 50, 100, 200, 400),
    t_min: float = 0.1,
    to_data: bool = False,
    spacing: str = "uniform",
    n_samples: int = 16,
    seed: int = 0,
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    x_T: torch.Tensor | None = None,
    ref_tol: float | None = None,
) -> OrderFit:
    """The fitted global order of ``sampler`` (see the module docstring).

    With ``model`` (an eps model such as a ``NetworkModel``: your own network) the sampler
    runs on that model from the start states ``x_T`` (required: e.g. ``torch.randn(8, 4, 32,
    32, dtype=torch.float64)`` for a VP model at t = 1) and the reference is an adaptive solve
    of the model's own probability-flow ODE to ``ref_tol`` (default 1e-10; run the network in
    float64, or the reference cannot get there). ``schedule`` defaults to the model's own.
    """
    if _is_scheduler(sampler):
        if model is not None:
            raise ValueError(
                "a diffusers scheduler is measured on odebench's problems only; measure its "
                "odebench family (the audit names it) on your model"
            )
        return _scheduler_order(sampler, problem, steps, to_data, n_samples, seed)
    solver = as_solver(sampler)
    if len(steps) < 3:
        raise ValueError(f"an order needs at least 3 step counts, got {list(steps)}")
    t_end = 0.0 if to_data else float(t_min)
    if model is None:
        sched = schedules.get(schedule)
        prob = problems.get(problem, sched)
        t_max = start_time(sched, 1.0)
        gen = torch.Generator().manual_seed(seed)
        x_T = prob.sample_marginal(n_samples, t_max, gen).to(DTYPE)
        eps, tol = prob.eps, 1e-12 if ref_tol is None else ref_tol
    else:
        if not isinstance(x_T, torch.Tensor) or not x_T.is_floating_point():
            raise ValueError("model= needs x_T=, the start states (a floating-point tensor)")
        own = getattr(model, "schedule", None)
        sched = own if own is not None and schedule == "linear" else schedules.get(schedule)
        prob, eps, tol = None, model, 1e-10 if ref_tol is None else ref_tol
        t_max = start_time(sched, 1.0)
    grids = convergence.ladder_grids(list(steps), spacing, t_max, t_end, sched)
    ref = convergence.global_reference(prob, sched, x_T, grids, tol=tol, model=model)
    h, err = [], []
    for n, ts in grids.items():
        sol = solve(solver, eps, sched, x_T, ts)
        h.append((t_max - t_end) / n)
        err.append(rms_error(sol.x, ref.at(float(ts[-1]))))
    return fit_order(h, err)


def _is_scheduler(obj) -> bool:
    return hasattr(obj, "set_timesteps") and hasattr(obj, "step") and not isinstance(obj, type)


def _scheduler_order(scheduler, problem, steps, to_data, n_samples, seed) -> OrderFit:
    """A diffusers scheduler instance, driven as a pipeline drives it by the audit on its own
    table (``odebench.audit``): its order at t = 0.1, or to the data with ``to_data``."""
    from ..audit import audit

    report = audit(scheduler, problem=problem, steps=list(steps), n_samples=n_samples, seed=seed)
    fit = report.fits.get("data" if to_data else "mid")
    if fit is None:
        raise AssertionError("the audit measured no order:\n" + report.card())
    return fit


def assert_order(
    sampler: str | Solver | KSampler, order: float, *, tol: float = 0.25, **options
) -> OrderFit:
    """Fail unless the measured order is within ``tol`` of ``order`` (``options`` go to
    ``measure_order``); the message shows the errors, local slopes and the fit."""
    fit = measure_order(sampler, **options)
    if fit.ok and abs(fit.slope - order) <= tol:
        return fit
    ci = f"[{fit.ci_low:.2f}, {fit.ci_high:.2f}]"
    lines = [f"expected order {order} (+-{tol}), measured {fit.slope:.2f} {ci}"]
    lines.append("  step h      error       local slope")
    slopes = ("", *(f"{s:.2f}" for s in fit.local_slopes))
    for h, err, s in zip(fit.h, fit.err, slopes, strict=False):
        lines.append(f"  {h:<10.4g}  {err:<10.3e}  {s}")
    flags = [f for f in fit.flags if f]
    if flags:
        lines.append("  flags: " + ", ".join(flags))
    raise AssertionError("\n".join(lines))
