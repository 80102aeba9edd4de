"""Figures of the singularity study: coefficients near t = 0, orders as t_min -> 0, per-step
errors and stiffness."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .style import save, style


def plot_singularity(
    df: pd.DataFrame,
    summary: pd.DataFrame | None,
    exponents: pd.DataFrame,
    curves: Mapping[str, Mapping[str, Any]],
    folder: Path,
) -> list[Path]:
    """Figures of the singularity study: coefficients, order vs t_min, per-step errors,
    stiffness. ``curves`` maps each schedule of ``exponents`` to its coefficient curves:
    ``t``, ``eps`` and ``x`` (of dx/dt) and ``eps_lambda`` (of dx/dlambda) at those t."""
    folder = Path(folder)
    paths = [_plot_coefficients(exponents, curves, folder / "singularity_coefficients.png")]
    if summary is not None and len(summary):
        paths.append(_plot_order_vs_tmin(summary, folder / "singularity_orders.png"))
    steps = df[df["part"] == "per-step"]
    if len(steps):
        paths.append(_plot_per_step(steps, folder / "singularity_per_step.png"))
    lip = df[df["part"] == "lipschitz"]
    if len(lip):
        paths.append(_plot_lipschitz(lip, folder / "singularity_stiffness.png"))
    return paths



def _plot_coefficients(
    exponents: pd.DataFrame, curves: Mapping[str, Mapping[str, Any]], path: Path
) -> Path:
    names = list(dict.fromkeys(exponents["schedule"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, name in enumerate(names):
        c = curves[name]
        tt = c["t"]
        ex = exponents.set_index(["schedule", "variable", "which"])
        line = {"color": f"C{i % 10}", "lw": 1.2, "ls": "-" if i < 10 else "--"}
        p_eps = ex.loc[(name, "t", "eps"), "exponent"]
        axes[0].loglog(tt, c["eps"], label=f"{name} (t^{p_eps:+.2f})", **line)
        axes[1].loglog(tt, c["x"], label=name, **line)
        axes[2].loglog(tt, c["eps_lambda"], label=name, **line)
    axes[0].set_title("|eps coefficient| of dx/dt = beta/(2 sigma)", fontsize=9)
    axes[1].set_title("|x coefficient| of dx/dt = beta/2", fontsize=9)
    axes[2].set_title("|eps coefficient| of dx/dlambda = sigma (bounded)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("t")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, title="fitted exponent near t = 0", title_fontsize=7)
    return save(fig, path)


def _panels(df: pd.DataFrame) -> Iterator[Any]:
    """A figure with one row per (problem, schedule) and one column per spacing; yields
    (fig, axes) first, then (ax, problem, schedule, spacing, rows of df in that panel)."""
    pairs = list(dict.fromkeys(zip(df["problem"], df["schedule"], strict=True)))
    spacings = list(dict.fromkeys(df["spacing"]))
    fig, axes = plt.subplots(
        len(pairs),
        len(spacings),
        squeeze=False,
        sharey=True,
        figsize=(4.3 * len(spacings), 3.0 * len(pairs)),
    )
    yield fig, axes
    for i, (prob, sched) in enumerate(pairs):
        for j, spacing in enumerate(spacings):
            sub = df[
                (df["problem"] == prob) & (df["schedule"] == sched) & (df["spacing"] == spacing)
            ]
            yield axes[i][j], prob, sched, spacing, sub


def _plot_order_vs_tmin(summary: pd.DataFrame, path: Path) -> Path:
    panels = _panels(summary)
    fig, axes = next(panels)
    for ax, prob, sched, spacing, sub in panels:
        for name, g in sub.groupby("solver", sort=False):
            g = g[g["t_min"] > 0].sort_values("t_min")
            color, marker = style(name)
            lo = (g["measured"] - g["ci_low"]).clip(lower=0)
            hi = (g["ci_high"] - g["measured"]).clip(lower=0)
            ax.errorbar(
                g["t_min"],
                g["measured"],
                yerr=[lo, hi],
                color=color,
                marker=marker,
                ms=4,
                capsize=2,
                lw=1,
                label=name,
            )
            ax.axhline(g["declared"].iloc[0], color=color, lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_ylim(0, 5)
        ax.set_title(f"{prob}, {sched}, {spacing} grid", fontsize=9)
        ax.set_xlabel("t_min")
        ax.grid(True, which="both", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("measured global order")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Measured order (95% CI) as t_min -> 0; dotted: declared", fontsize=10)
    return save(fig, path)


def _plot_per_step(steps: pd.DataFrame, path: Path) -> Path:
    steps = steps[steps["t_min"] == steps["t_min"][steps["t_min"] > 0].min()]
    panels = _panels(steps)
    fig, axes = next(panels)
    for ax, prob, sched, spacing, sub in panels:
        for name, g in sub.groupby("solver", sort=False):
            color, marker = style(name)
            ax.loglog(
                g["t_from"],
                g["error"].replace(np.inf, np.nan),
                color=color,
                marker=marker,
                ms=2.5,
                lw=1,
                label=name,
            )
        ax.invert_xaxis()
        t_min = sub["t_min"].iloc[0] if len(sub) else float("nan")
        ax.set_title(f"{prob}, {sched}, {spacing}, t_min = {t_min:g}", fontsize=9)
        ax.set_xlabel("t at the start of the step")
        ax.grid(True, which="both", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("one-step error from the exact state")
    axes[0][0].legend(fontsize=7)
    return save(fig, path)


def _plot_lipschitz(lip: pd.DataFrame, path: Path) -> Path:
    lip = lip[lip["t_min"] == lip["t_min"][lip["t_min"] > 0].min()]
    lip = lip[lip["spacing"] == lip["spacing"].iloc[0]]
    problems_ = list(dict.fromkeys(lip["problem"]))
    fig, axes = plt.subplots(1, len(problems_), squeeze=False, figsize=(5 * len(problems_), 4))
    for ax, prob in zip(axes[0], problems_, strict=True):
        for k, (sched, g) in enumerate(lip[lip["problem"] == prob].groupby("schedule", sort=False)):
            g = g[g["t"] > 0]
            ax.loglog(g["t"], g["lip_max"], color=f"C{k}", lw=1.3, label=f"{sched}: in t")
            ax.loglog(
                g["t"],
                g["lip_lambda_max"],
                color=f"C{k}",
                lw=1.3,
                ls="--",
                label=f"{sched}: in lambda",
            )
        ax.invert_xaxis()
        ax.set_title(f"{prob}: largest singular value of df/dx along exact paths", fontsize=9)
        ax.set_xlabel("t")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, path)
