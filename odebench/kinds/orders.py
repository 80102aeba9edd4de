"""The "orders" study: measured convergence orders against declared ones.

A cell is one (problem, schedule, t_min, spacing, seed); inside it, one reference serves every
solver and every step count of the ladder. Rows are tidy: one per (solver, steps) in global
mode, one per (solver, t0, h) in local mode. ``summarize`` fits the order of each solver
(least squares over an automatic window, 95% CI, R^2, local slopes) and gives the verdict
against the solver's declared order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import convergence, problems, schedules, solvers
from ..study import Command, Field, Shortcut, StudyKind, register
from .common import (
    ORDER_CELL_KEYS,
    VERDICT_MARK,
    eps_model,
    fields,
    format_order_summary,
    one_thread,
    summarize_orders,
)

CELL_KEYS = list(ORDER_CELL_KEYS)
DEFAULT_STEPS = [25, 50, 100, 200, 400, 800, 1600]
DEFAULT_SOLVERS = ["ddim", "s-pndm", "f-pndm", "fon", "euler", "heun", "rk4"]

GRID = {
    "problem": fields.PROBLEM,
    "model": fields.MODEL,
    "schedule": fields.SCHEDULE,
    "solver": fields.solver(help="solvers to measure"),
    "steps": fields.steps(DEFAULT_STEPS),
    "t_min": fields.t_min([0.1]),
    "spacing": fields.spacing(["uniform"]),
    "seed": fields.SEED,
}
OPTIONS = {
    "n_samples": fields.n_samples(64),
    "mode": Field(
        str,
        default="global",
        choices=["global", "local"],
        help="global (end-point) or local (one step) errors",
    ),
    "t_max": fields.T_MAX,
    "device": fields.DEVICE,
    "ref_tol": fields.ref_tol(1e-12),
}


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    """All solvers of the ladder on one (problem, schedule, t_min, spacing, seed)."""
    with one_thread():
        sched = schedules.get(config["schedule"])
        prob = problems.get(config["problem"], sched)
        t_max = min(float(config["t_max"]), sched.t_hi)
        t_min = float(config["t_min"])
        if not t_min < t_max:
            raise ValueError(f"t_min {t_min:g} must be below t_max {t_max:g}")
        gen = torch.Generator().manual_seed(int(config["seed"]))
        x_T = prob.sample_marginal(int(config["n_samples"]), t_max, gen)
        tol = float(config["ref_tol"])
        net = eps_model(config.get("model", "exact"), prob, sched, config.get("device", "cpu"))
        eps = prob.eps if net is None else net
        rows: list[dict[str, Any]] = []
        if config["mode"] == "local":
            plan = convergence.local_plan(t_max, t_min, T=getattr(sched, "T", None))
            if not plan:
                raise ValueError(f"no local-error time t0 lies in ({t_min:g}, {t_max:g})")
            ref = convergence.local_reference(prob, sched, x_T, plan, t_max, tol, model=net)
            for name in config["solver"]:
                for row in convergence.local_errors(solvers.get(name), eps, sched, ref, plan):
                    rows.append({"solver": name, **row})
            return rows
        grids = convergence.ladder_grids(config["steps"], config["spacing"], t_max, t_min, sched)
        ref = convergence.global_reference(prob, sched, x_T, grids, tol, model=net)
        for name in config["solver"]:
            for row in convergence.global_errors(solvers.get(name), eps, sched, x_T, grids, ref):
                rows.append({"solver": name, **row})
        return rows


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per solver and cell: declared vs measured order, CI, R^2, verdict."""
    return summarize_orders(df)


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path) -> list[Path]:
    """The figures, and the summary as a Markdown table (orders_table.md) for the README."""
    from ..plots.orders import plot_orders

    paths = plot_orders(df, summary, folder, cell_keys=CELL_KEYS)
    if summary is not None and "error_at_50" in summary.columns:
        table = Path(folder) / "orders_table.md"
        table.write_text(markdown_table(summary))
        paths.append(table)
    elif summary is not None and "t0" in summary.columns:
        table = Path(folder) / "orders_local_table.md"
        table.write_text(local_markdown_table(summary))
        paths.append(table)
    return paths


def local_markdown_table(summary: pd.DataFrame) -> str:
    """Local fits: one row per solver, its global and interior orders, then the measured
    order (local slope - 1) per schedule and t0, verdicts against the interior order marked."""
    names = list(dict.fromkeys(summary["solver"]))
    cols = [k for k in ("problem", "schedule", "t0") if k in summary.columns]
    cells = list(dict.fromkeys(map(tuple, summary[cols].itertuples(index=False))))
    head = ["solver", "order", "interior"] + [
        " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in c[1:]) for c in cells
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    indexed = summary.set_index([*cols, "solver"])
    for n in names:
        first = summary[summary["solver"] == n].iloc[0]
        row = [n, str(first["order"]), str(first["declared"])]
        for c in cells:
            r = indexed.loc[(*c, n)]
            row.append(f"{r['measured']:.2f}{VERDICT_MARK[r['verdict']]}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def markdown_table(summary: pd.DataFrame) -> str:
    """Measured order [95% CI] per solver (columns) and cell (rows), verdicts marked."""
    names = list(dict.fromkeys(summary["solver"]))
    keys = [k for k in ("problem", "model", "schedule", "t_min") if k in summary.columns]
    head = keys + [f"{n} ({solvers.get(n).order})" for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell, g in summary.groupby(keys, sort=False):
        g = g.set_index("solver")
        cells = []
        for n in names:
            r = g.loc[n]
            cells.append(
                f"{r['measured']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
                f"{VERDICT_MARK[r['verdict']]}"
            )
        shown = [f"{v:g}" if isinstance(v, float) else str(v) for v in cell]
        lines.append("| " + " | ".join(shown + cells) + " |")
    return "\n".join(lines) + "\n"


COMMAND = Command(
    help="measure convergence orders (defaults: the PNDM family and classical methods on "
    "gmm-2d, linear schedule)",
    out="results/orders",
    defaults={"problem": ["gmm-2d"], "schedule": ["linear"], "solver": DEFAULT_SOLVERS},
    aliases={"solver": ("--solvers",)},
    shortcuts=(
        Shortcut(
            "--local",
            help="local (one-step) errors per region of t instead of global ones",
            sets=lambda _: {"mode": "local"},
            switch=True,
        ),
    ),
)

KIND = StudyKind(
    name="orders",
    grid=GRID,
    options=OPTIONS,
    ladder_axes=("solver", "steps"),
    run_cell=run_cell,
    version="1",
    summarize=summarize,
    plot=plot,
    description="measured vs declared convergence orders (global or local errors)",
    format_summary=format_order_summary,
    command=COMMAND,
)
register(KIND)
