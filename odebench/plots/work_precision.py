"""Work-precision figures: error against NFE per solver, with the Pareto front."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from .style import STYLE, cell_title, model_tag


def plot_work_precision(
    budget: pd.DataFrame,
    folder: Path,
    cell_keys: Sequence[str],
    front: Callable[[pd.DataFrame], pd.DataFrame],
) -> list[Path]:
    """Per cell: error at t_min against NFE for every solver, and the Pareto front
    (``front(rows)``: the rows of one cell no other row beats)."""
    folder = Path(folder)
    budget = budget[budget["error_rms"].notna()]
    keys = [k for k in cell_keys if k in budget.columns]
    paths = []
    for cell, g in budget.groupby(keys, sort=False):
        ck = dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True))
        fig, ax = plt.subplots(figsize=(8.5, 5.2))
        names = list(dict.fromkeys(g["solver"]))
        for k, name in enumerate(names):
            s = g[g["solver"] == name].sort_values("nfe")
            color = STYLE[name][0] if name in STYLE else plt.cm.tab20(k % 20)
            marker = STYLE[name][1] if name in STYLE else "o."[k % 2]
            ax.loglog(s["nfe"], s["error_rms"], marker=marker, color=color, lw=1, ms=4, label=name)
        best = front(g)
        ax.step(
            best["nfe"],
            best["error_rms"],
            where="post",
            color="k",
            lw=2.5,
            alpha=0.25,
            label="Pareto front",
        )
        for _, r in best.iterrows():
            ax.annotate(
                r["solver"],
                (r["nfe"], r["error_rms"]),
                fontsize=6,
                xytext=(3, -8),
                textcoords="offset points",
            )
        ax.set_xlabel("model evaluations (NFE)")
        ax.set_ylabel("RMS error at t_min vs reference")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_title(f"{cell_title(ck)}: work-precision", fontsize=9)
        name = f"work_{ck['problem']}{model_tag(ck, '_')}_{ck['schedule']}_tmin{ck['t_min']:g}"
        path = folder / f"{name}_{ck['spacing']}.png"
        fig.savefig(path, dpi=130, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths
