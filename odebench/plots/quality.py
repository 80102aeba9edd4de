"""Figures of the quality study: each metric against NFE, the reference sampler dashed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .style import STYLE, cell_name, cell_title, save, style


def plot_quality(df: pd.DataFrame, folder: Path, cell_keys: Sequence[str]) -> list[Path]:
    """Per cell: each metric against NFE, with the reference sampler's level dashed.

    Exact metrics (W2) are drawn log-log. Monte Carlo metrics get two rows: the excess over
    the exact-sample floor with 2-se bars (what a user's metric would show), and the paired
    excess over the exact ODE solution (the solver's own share); both on a symlog axis whose
    linear zone is the typical error bar, since an exact sampler scatters around zero.
    """
    folder = Path(folder)
    df = df[df["value"].notna()] if "value" in df.columns else df.iloc[0:0]
    keys = [k for k in cell_keys if k in df.columns]
    paths = []
    for cell, g in df.groupby(keys, sort=False):
        ck = dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True))
        metrics = list(dict.fromkeys(g["metric"]))
        exact = metrics == ["w2"]
        paired = "paired" in g.columns and bool(g["paired"].notna().any())
        rows = 1 if exact or not paired else 2
        fig, axes = plt.subplots(
            rows, len(metrics), figsize=(4.2 * len(metrics) + 1.5, 3.4 * rows), squeeze=False
        )
        for j, metric in enumerate(metrics):
            gm = g[g["metric"] == metric]
            columns = (
                [("value", None)] if exact else [("excess", "excess_se"), ("paired", "paired_se")]
            )[:rows]
            for i, (col, se_col) in enumerate(columns):
                ax = axes[i][j]
                _quality_panel(ax, gm, col, se_col, exact)
                label = {
                    "value": "W2 to the target (exact)",
                    "excess": "excess over exact samples",
                    "paired": "excess over the exact ODE",
                }[col]
                ax.set_title(f"{metric}: {label}", fontsize=8)
                ax.set_xlabel("NFE")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.suptitle(cell_title(ck), fontsize=9)
        paths.append(save(fig, folder / f"{cell_name(ck, 'quality')}.png"))
    return paths


def _quality_panel(ax, g: pd.DataFrame, col: str, se_col: str | None, exact: bool) -> None:
    ref_solver, ref_steps = g["match_solver"].iloc[0], int(g["match_steps"].iloc[0])
    for k, name in enumerate(dict.fromkeys(g["solver"])):
        s = g[g["solver"] == name].sort_values("nfe")
        color, marker = style(name) if name in STYLE else (plt.cm.tab10(k % 10), "o")
        err = 2.0 * s[se_col].to_numpy(dtype=float) if se_col else None
        ax.errorbar(
            s["nfe"],
            s[col],
            yerr=err,
            marker=marker,
            color=color,
            lw=1,
            ms=4,
            capsize=2,
            label=name,
        )
    ref = g[(g["solver"] == ref_solver) & (g["steps"] == ref_steps)]
    if len(ref):
        ax.axhline(
            float(ref[col].iloc[0]),
            color="0.3",
            ls="--",
            lw=1,
            label=f"{ref_solver} at {ref_steps} steps",
        )
    ax.set_xscale("log")
    if exact:
        ax.set_yscale("log")
    else:
        se = g[se_col].to_numpy(dtype=float)
        se = se[np.isfinite(se) & (se > 0)]
        ax.set_yscale("symlog", linthresh=float(np.median(se)) if len(se) else 1e-6)
        ax.axhline(0.0, color="k", lw=0.5)
    ax.grid(True, which="both", alpha=0.3)
