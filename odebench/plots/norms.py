"""Figures of the norms study: norms along sampling against the exact band, departures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from .style import model_tag, style


def plot_norms(df: pd.DataFrame, folder: Path, cell_keys: Sequence[str]) -> list[Path]:
    """Per cell: the norm of x_t along sampling with the exact band (the paper's norm figure),
    the paired norm departure, the NLL excess and the x0-prediction's distance to the data set.
    """
    folder = Path(folder)
    keys = [k for k in cell_keys if k in df.columns]
    cells = list(df.groupby(keys, sort=False))
    paths = []
    for cell, g in cells:
        ck = dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True))
        has_set = g["x0_dist_max"].notna().any()
        ncol = 4 if has_set else 3
        fig, axes = plt.subplots(1, ncol, figsize=(4.4 * ncol, 3.8))
        first = g[g["solver"] == g["solver"].iloc[0]].sort_values("t")
        pos = first["t"] > 0
        axes[0].fill_between(
            first["t"][pos],
            first["band_low"][pos],
            first["band_high"][pos],
            color="0.85",
            label="exact p_t: E|x|^2 -+ 2 sd",
        )
        axes[0].plot(
            first["t"][pos],
            first["band_center"][pos],
            color="0.4",
            lw=1,
            label="exact sqrt(E|x_t|^2)",
        )
        for name, s in g.groupby("solver", sort=False):
            s = s[s["t"] > 0].sort_values("t")
            color, marker = style(name)
            lab = f"{name} ({int(s['steps'].iloc[0])} steps, {int(s['nfe_used'].iloc[0])} NFE)"
            axes[0].plot(s["t"], s["rms_norm"], color=color, lw=1.2, label=lab)
            axes[1].plot(s["t"], s["norm_ratio"] - 1.0, color=color, lw=1.2, marker=marker, ms=2)
            axes[2].plot(s["t"], s["nll_excess"], color=color, lw=1.2, marker=marker, ms=2)
            if has_set:
                axes[3].plot(s["t"], s["x0_dist_max"], color=color, lw=1.2, marker=marker, ms=2)
        axes[0].set_ylabel("RMS norm of x_t")
        axes[1].set_ylabel("RMS norm / exact paths' RMS norm - 1")
        axes[2].set_ylabel("mean -log p_t(x) - (same, exact paths)")
        axes[1].set_yscale("symlog", linthresh=1e-6)
        axes[2].set_yscale("symlog", linthresh=1e-6)
        if has_set:
            axes[3].set_ylabel("max distance of x0-prediction to the data set")
            axes[3].set_yscale("log")
        for ax in axes:
            ax.set_xscale("log")
            ax.invert_xaxis()
            ax.set_xlabel("t (sampling runs right)")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(
            f"{ck['problem']}{model_tag(ck, ' with network ')}, {ck['schedule']} schedule, "
            f"{ck['nfe']} NFE, "
            f"t_min = {ck['t_min']:g}, {ck['spacing']} grid",
            fontsize=10,
        )
        fig.tight_layout()
        name = (
            "norms"
            if len(cells) == 1
            else (
                f"norms_{ck['problem']}{model_tag(ck, '_')}_{ck['schedule']}_nfe{ck['nfe']}_"
                f"tmin{ck['t_min']:g}_"
                f"{ck['spacing']}" + (f"_w{ck['guidance']:g}" if "guidance" in ck else "")
                # a guidance ladder's rows carry their scale: one figure per w
            )
        )
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=130, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths
