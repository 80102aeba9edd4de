"""How accurate is an eps-network on and off the data manifold?

The PNDM paper's central hypothesis (Liu et al. 2022, Sec. 3): a network is trained only on
samples of the noisy marginals p_t, so it is accurate near them (the "manifold", the shell of
typical norms of p_t) and inaccurate elsewhere; classical solvers, whose linear step
x + h f(x, t) leaves that shell, therefore evaluate it where it is poor. On an analytic problem
the exact eps is known everywhere, so the hypothesis becomes a measurement:
``eps_error_profile`` compares ``model(x, t)`` with ``problem.eps(x, t)`` at

- ``"on"``: x ~ p_t, exact samples of the marginal;
- ``"radial-<r>"``: the same samples scaled by r (default 0.9 and 1.1): off the norm shell
  by a fixed relative amount;
- ``"euler"``: the point one classical explicit Euler step of the PF-ODE in t lands on:
  from x_s ~ p_s at s = t + euler_dt, x = x_s + (t - s) f(x_s, s) with the exact right-hand
  side f (``odebench.ode.rhs`` with ``problem.eps``), so the off-manifold displacement is
  exactly the one a classical step makes (no network error mixed in).

Errors are per-coordinate RMS over the n points: rms_error = sqrt(mean (model - eps)^2),
rel_error = rms_error / sqrt(mean eps^2) with the exact eps at the same points (``eps_rms``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ._tensor import DTYPE
from .ode import rhs
from .problems import Problem

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _errors(model: EpsModel, problem: Problem, x: torch.Tensor, t: torch.Tensor) -> dict:
    exact = problem.eps(x, t)
    pred = model(x, t).to(DTYPE)
    rms = float(torch.sqrt(torch.mean((pred - exact) ** 2)))
    ref = float(torch.sqrt(torch.mean(exact**2)))
    return {"rms_error": rms, "rel_error": rms / ref if ref > 0 else float("inf"), "eps_rms": ref}


def eps_error_profile(
    model: EpsModel,
    problem: Problem,
    ts: Sequence[float] | torch.Tensor,
    *,
    n: int = 512,
    generator: torch.Generator | None = None,
    euler_dt: float | Sequence[float] = 0.02,
    radial: Sequence[float] = (0.9, 1.1),
) -> list[dict]:
    """Eps error of ``model`` against ``problem.eps`` on and off the manifold at each t in ts.

    Returns one row per (t, where): {"t", "where", "rms_error", "rel_error", "n", "eps_rms"},
    ``where`` in "on", "radial-<r>" (for r in ``radial``), "euler" (see the module docstring).
    ``euler_dt`` is the Euler step (0.02: one step of a 50-step uniform grid on [0, 1], the
    paper's headline step count); the step starts at s = min(t + euler_dt, 1). A sequence of
    steps gives one row per step, ``where`` = "euler-<dt>". ``generator`` draws every sample
    (a fresh one seeded 0 when None, so a profile is reproducible); ``model`` is called as
    solvers call it, with a float64 batch and a 0-d float64 t.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    single = isinstance(euler_dt, (int, float))
    dts = [float(euler_dt)] if single else [float(dt) for dt in euler_dt]
    if not dts or min(dts) <= 0:
        raise ValueError(f"euler_dt must be positive, got {euler_dt}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    sched = problem.schedule
    rows = []
    for t_value in torch.as_tensor(ts, dtype=DTYPE).reshape(-1).tolist():
        t = torch.tensor(t_value, dtype=DTYPE)
        x = problem.sample_marginal(n, t, gen)
        rows.append({"t": t_value, "where": "on", "n": n, **_errors(model, problem, x, t)})
        for r in radial:
            rows.append(
                {
                    "t": t_value,
                    "where": f"radial-{r:g}",
                    "n": n,
                    **_errors(model, problem, r * x, t),
                }
            )
        for dt in dts:
            s = torch.tensor(min(t_value + dt, sched.t_hi), dtype=DTYPE)
            x_s = problem.sample_marginal(n, s, gen)
            x_euler = x_s + (t - s) * rhs(problem.eps, sched, x_s, s)
            where = "euler" if single else f"euler-{dt:g}"
            rows.append(
                {"t": t_value, "where": where, "n": n, **_errors(model, problem, x_euler, t)}
            )
    return rows


def plot_eps_error(rows: Sequence[dict], path: str | Path, *, title: str | None = None) -> Path:
    """Absolute and relative eps error against t (log axes), one line per ``where``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wheres = list(dict.fromkeys(r["where"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for where in wheres:
        sel = sorted((r for r in rows if r["where"] == where), key=lambda r: r["t"])
        ts = [r["t"] for r in sel]
        style = "-o" if where == "on" else "--."
        axes[0].plot(ts, [r["rms_error"] for r in sel], style, label=where, ms=4)
        axes[1].plot(ts, [r["rel_error"] for r in sel], style, label=where, ms=4)
    labels = ("RMS eps error", "relative eps error (RMS / RMS exact eps)")
    for ax, what in zip(axes, labels, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("t (forward time; 0 = data)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(title="evaluated at")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
