"""Figures of order ladders: error against steps and NFE per cell, measured orders overall."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..metrics import fit_order
from .style import cell_name, cell_title, style


def plot_orders(
    df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path, cell_keys: Sequence[str]
) -> list[Path]:
    """One figure per cell (the ``cell_keys`` present in ``df``): error against steps and
    against NFE, fitted slopes dashed; with several cells, the overview of measured orders."""
    folder = Path(folder)
    local = "t0" in df.columns and df["t0"].notna().any()
    keys = [k for k in cell_keys if k in df.columns]
    cells = list(df.groupby(keys, sort=False))
    paths = []
    for cell, cell_df in cells:
        cell_keys = dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True))
        fig = _local_figure(cell_df) if local else _global_figure(cell_df)
        fig.suptitle(cell_title(cell_keys), fontsize=10)
        name = "orders" if len(cells) == 1 else cell_name(cell_keys, "orders")
        path = folder / f"{name}{'_local' if local else ''}.png"
        fig.savefig(path, dpi=130, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    if len(cells) > 1 and summary is not None and not local:
        paths.append(plot_orders_overview(summary, folder / "orders_overview.png"))
    return paths


def plot_orders_overview(summary: pd.DataFrame, path: Path) -> Path:
    """Measured order (with its CI) of every solver in every cell, against the declared one.

    Rows: problems; columns: t_min; x: schedule; one marker per solver; hollow markers are
    fits whose verdict is "inconclusive" (CI too wide to tell orders apart).
    """
    label = summary["problem"]
    if "model" in summary.columns and (summary["model"] != "exact").any():
        label = summary["problem"] + " [" + summary["model"] + "]"
    problems = list(dict.fromkeys(label))
    t_mins = sorted(set(summary["t_min"]), reverse=True)
    schedules = list(dict.fromkeys(summary["schedule"]))
    names = list(dict.fromkeys(summary["solver"]))
    fig, axes = plt.subplots(
        len(problems),
        len(t_mins),
        squeeze=False,
        sharey=True,
        figsize=(4.6 * len(t_mins), 2.9 * len(problems)),
    )
    width = 0.8 / max(len(names), 1)
    for i, prob in enumerate(problems):
        for j, t_min in enumerate(t_mins):
            ax = axes[i][j]
            sub = summary[(label == prob) & (summary["t_min"] == t_min)]
            for k, name in enumerate(names):
                color, marker = style(name)
                rows = sub[sub["solver"] == name].set_index("schedule")
                for m, sched in enumerate(schedules):
                    if sched not in rows.index:
                        continue
                    r = rows.loc[sched]
                    x = m + (k - (len(names) - 1) / 2) * width
                    lo, hi = r["measured"] - r["ci_low"], r["ci_high"] - r["measured"]
                    face = "none" if r["verdict"] == "inconclusive" else color
                    ax.errorbar(
                        x,
                        r["measured"],
                        yerr=[[lo], [hi]],
                        fmt=marker,
                        color=color,
                        mfc=face,
                        ms=5,
                        capsize=2,
                        lw=1,
                        label=name if (m == 0 and i == 0 and j == 0) else None,
                    )
                    ax.hlines(
                        r["declared"], x - width / 2, x + width / 2, color=color, lw=2, alpha=0.5
                    )
            ax.set_xticks(range(len(schedules)), schedules, fontsize=8)
            ax.set_title(f"{prob}, t_min = {t_min:g}", fontsize=9)
            ax.set_ylim(0, 5)
            ax.grid(True, axis="y", alpha=0.3)
        axes[i][0].set_ylabel("measured global order")
    axes[0][0].legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle(
        "Measured order (95% CI) vs declared order (short bars); hollow: inconclusive", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def _draw_ladder(
    ax, x: np.ndarray, err: np.ndarray, reliable: np.ndarray, name: str, x_is_step_size: bool
) -> None:
    color, marker = style(name)
    h = x if x_is_step_size else 1.0 / x
    fit = fit_order(h, err, exclude=~reliable)
    label = name if not fit.ok else f"{name}: p = {fit.slope:.2f}"
    ax.loglog(x, err, marker=marker, color=color, lw=1, ms=4, label=label)
    ax.loglog(x[~reliable], err[~reliable], "x", color="k", ms=7, mew=1)
    if fit.ok:
        used = np.asarray(fit.used)
        xs = np.array([x[used].min(), x[used].max()])
        hs = xs if x_is_step_size else 1.0 / xs
        ax.loglog(xs, np.exp(fit.intercept) * hs**fit.slope * 0.6, "--", color=color, lw=1)


def _global_figure(cell_df: pd.DataFrame):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for name, g in cell_df.groupby("solver", sort=False):
        g = g.sort_values("steps")
        err = g["error_rms"].to_numpy(float)
        rel = g["reliable"].to_numpy(bool)
        _draw_ladder(axes[0], g["steps"].to_numpy(float), err, rel, name, False)
        _draw_ladder(axes[1], g["nfe"].to_numpy(float), err, rel, name, False)
    axes[0].set_xlabel("steps N")
    axes[1].set_xlabel("model evaluations (NFE)")
    axes[0].set_ylabel("RMS end-point error vs reference")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    axes[1].text(
        0.99,
        0.01,
        "dashed: least-squares fit over the chosen window\n"
        "x: reference not 100x more accurate (not fitted)",
        transform=axes[1].transAxes,
        ha="right",
        va="bottom",
        fontsize=7,
    )
    return fig


def _local_figure(cell_df: pd.DataFrame):
    regions = sorted(cell_df["t0"].unique(), reverse=True)
    fig, axes = plt.subplots(
        1, len(regions), figsize=(3.6 * len(regions), 3.8), sharey=True, squeeze=False
    )
    for ax, t0 in zip(axes[0], regions, strict=True):
        for name, g in cell_df[cell_df["t0"] == t0].groupby("solver", sort=False):
            g = g.sort_values("h")
            _draw_ladder(
                ax,
                g["h"].to_numpy(float),
                g["error_rms"].to_numpy(float),
                g["reliable"].to_numpy(bool),
                name,
                True,
            )
        ax.set_title(f"one step from t0 = {t0:g}", fontsize=9)
        ax.set_xlabel("step size h")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("local error (slope = order + 1)")
    return fig
