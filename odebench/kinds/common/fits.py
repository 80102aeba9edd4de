"""Order fits of error ladders, shared by every kind that measures orders (orders, modern,
singularity): one summary row per solver and cell, its terminal table and its verdict marks."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ... import solvers
from ..._text import fixed_width
from ...metrics import fit_order, verdict
from .report import cell_blocks, read_summary

if TYPE_CHECKING:
    from ...study import StudyResult

#: The cell axes of an order ladder, in the order the summary's columns take them
#: (``prediction``, ``shift`` and ``guidance`` only where a study varies them).
ORDER_CELL_KEYS = [
    "problem",
    "model",
    "schedule",
    "prediction",
    "shift",
    "guidance",
    "t_min",
    "spacing",
    "seed",
]

#: How a Markdown table marks a verdict next to the measured order.
VERDICT_MARK = {
    "as declared": "",
    "reduced": " (reduced)",
    "superconvergent": " (super)",
    "inconclusive": " (?)",
    "diverged": " (diverged)",
    "measured": "",
}


def _fit_row(
    group: pd.DataFrame, x: str, err: str, declared: float | None, offset: float = 0.0
) -> dict[str, Any]:
    """Fit err ~ x^p on one solver's ladder; ``offset`` turns a local slope into an order."""
    h = group[x].to_numpy(dtype=float)
    e = group[err].to_numpy(dtype=float)
    fit = fit_order(h, e, exclude=~group["reliable"].to_numpy(dtype=bool))
    shifted = dataclasses.replace(
        fit, slope=fit.slope - offset, ci_low=fit.ci_low - offset, ci_high=fit.ci_high - offset
    )
    return {
        "measured": shifted.slope,
        "ci_low": shifted.ci_low,
        "ci_high": shifted.ci_high,
        "r2": fit.r2,
        "n_used": fit.n_used,
        "local_slopes": ";".join(f"{s - offset:.3f}" for s in fit.local_slopes),
        "left_out": ";".join(f for f in fit.flags if f) or "",
        "verdict": verdict(shifted, declared),
    }


def summarize_orders(df: pd.DataFrame) -> pd.DataFrame:
    """One row per solver and cell: declared vs measured order, CI, R^2, verdict.

    ``df`` holds global errors (``steps``, ``h``, ``nfe``, ``error_rms``/``max``/``path``) or
    local ones (``t0``, ``h``, ``error_rms``; the slope of a local error is order + 1). A local
    fit is judged against the solver's interior order (the order of a step away from the start
    and the end: ``Solver.interior_order``, e.g. 4 for unipc-3, whose global order its UniPC-1
    start caps at 3); ``order`` keeps the declared global order.
    """
    keys = [k for k in ORDER_CELL_KEYS if k in df.columns]
    local = "t0" in df.columns and df["t0"].notna().any()
    if local:
        keys = [*keys, "t0"]
    out = []
    for (cell, name), group in _groups(df, keys):
        solver = solvers.get(name)
        declared = solver.order
        if local and solver.local_order is not None:
            declared = solver.local_order - 1
        row = dict(zip(keys, cell, strict=True))
        row.update(solver=name, declared=declared, nfe_rule=nfe_rule(solver))
        if local:
            row["order"] = solver.order
            group = group.sort_values("h", ascending=False)
            row.update(_fit_row(group, "h", "error_rms", declared, offset=1.0))
            row["against"] = "h (local error slope - 1)"
        else:
            group = group.sort_values("steps")
            row.update(_fit_row(group, "h", "error_rms", declared))
            for norm in ("max", "path"):
                row[f"measured_{norm}"] = _fit_row(group, "h", f"error_{norm}", declared)[
                    "measured"
                ]
            inv_nfe = group.assign(inv_nfe=1.0 / group["nfe"])
            row["measured_vs_nfe"] = _fit_row(inv_nfe, "inv_nfe", "error_rms", declared)["measured"]
            at50 = group[group["steps"] == 50]
            row["error_at_50"] = float(at50["error_rms"].iloc[0]) if len(at50) else math.nan
            row["nfe_at_50"] = int(at50["nfe"].iloc[0]) if len(at50) else None
            row["against"] = "h"
        out.append(row)
    return pd.DataFrame(out)


def _groups(
    df: pd.DataFrame, keys: list[str]
) -> Iterator[tuple[tuple[tuple[Any, ...], str], pd.DataFrame]]:
    for cell, cell_df in df.groupby(keys, sort=False, dropna=False):
        cell = cell if isinstance(cell, tuple) else (cell,)
        for name, group in cell_df.groupby("solver", sort=False):
            yield (cell, name), group


def nfe_rule(solver: solvers.Solver) -> str:
    """The NFE formula in N, read off the solver (e.g. "N+9", "4N")."""
    a, b = solver.nfe(10), solver.nfe(20)
    if a is None:
        return "adaptive"
    per, extra = (b - a) // 10, a - 10 * ((b - a) // 10)
    base = "N" if per == 1 else f"{per}N"
    return base if extra == 0 else f"{base}{extra:+d}"


def format_order_table(summary: pd.DataFrame) -> str:
    """Order-fit summary rows as a fixed-width text table for the terminal."""
    at50 = "error_at_50" in summary.columns
    cols = ["solver", "declared", "measured", "95% CI", "R^2", "verdict"]
    cols += ["err@50", "NFE@50"] if at50 else []
    lines = []
    for _, r in summary.iterrows():
        ci = f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if np.isfinite(r["ci_low"]) else "-"
        line = [
            r["solver"],
            str(r["declared"]),
            f"{r['measured']:.2f}",
            ci,
            f"{r['r2']:.3f}",
            r["verdict"],
        ]
        if at50:
            line += [
                f"{r['error_at_50']:.2e}",
                "" if pd.isna(r["nfe_at_50"]) else str(int(r["nfe_at_50"])),
            ]
        lines.append(line)
    return fixed_width(cols, lines)


def order_summary_text(summary: pd.DataFrame | None) -> str | None:
    """The order fits of a summary (as read back from its CSV), one table per cell."""
    if summary is None or "measured" not in summary.columns:
        return None
    keys = [*ORDER_CELL_KEYS, "t0"]
    return cell_blocks(summary, keys, format_order_table)


def format_order_summary(result: StudyResult) -> str | None:
    """A kind's ``format_summary`` when its summary is order fits: one table per cell."""
    return order_summary_text(read_summary(result))
