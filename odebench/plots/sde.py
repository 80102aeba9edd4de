"""Figures of the sde study: weak error (exact W2) against NFE and strong error against steps,
stochastic samplers solid, ODE solvers dashed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from .style import cell_name, cell_title, save

MARKERS = "osD^v<>pPXh*"


def plot_sde(df: pd.DataFrame, folder: Path, cell_keys: Sequence[str]) -> list[Path]:
    """One figure per cell: W2 against NFE (left) and the strong RMS error against steps
    (right), whichever of the two parts the table holds."""
    folder = Path(folder)
    keys = [k for k in cell_keys if k in df.columns]
    cells = list(df.groupby(keys, sort=False))
    labels = list(dict.fromkeys(df["label"]))
    paths = []
    for cell, cell_df in cells:
        named = dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True))
        parts = [
            (p, x, y)
            for p, x, y in (("weak", "nfe", "w2"), ("strong", "steps", "error_rms"))
            if y in cell_df.columns and (cell_df["part"] == p).any()
        ]
        if not parts:
            continue
        fig, axes = plt.subplots(1, len(parts), figsize=(5.6 * len(parts), 4.2), squeeze=False)
        for ax, (part, x, y) in zip(axes[0], parts, strict=True):
            rows = cell_df[(cell_df["part"] == part) & cell_df[y].notna()]
            for label, g in rows.groupby("label", sort=False):
                i = labels.index(label)
                g = g.sort_values(x)
                ax.loglog(
                    g[x],
                    g[y],
                    marker=MARKERS[i % len(MARKERS)],
                    color=plt.get_cmap("tab20")(i % 20),
                    ls="-" if bool(g["stochastic"].iloc[0]) else "--",
                    ms=4,
                    label=label,
                )
            ax.set_xlabel("NFE" if x == "nfe" else "steps N")
            ax.set_ylabel(
                "exact W2 to the marginal at t_min" if part == "weak" else "RMS |x_N - x_ref|"
            )
            ax.set_title(f"{part} error", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][-1].legend(fontsize=7, ncol=1 if len(labels) < 8 else 2)
        fig.suptitle(cell_title(named), fontsize=10)
        name = "sde" if len(cells) == 1 else cell_name(named, "sde")
        paths.append(save(fig, folder / f"{name}.png"))
    return paths
