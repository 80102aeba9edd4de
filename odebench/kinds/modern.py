"""The "modern" study: every solver at fixed NFE budgets (work-precision) and along a step
ladder (orders), on the same references.

A cell is one (problem, schedule, t_min, spacing, seed). Rows are told apart by ``part``:

- ``budget``: for each NFE budget (grid axis ``budget``: 5, 10, 20, 50 by default), each
  solver runs with the most steps whose evaluations fit (``Solver.steps_for_nfe``); the
  error at t_min against the reference. A solver whose warm-up does not fit a budget gets
  a row saying so.
- ``ladder``: global errors along the step ladder, from which ``summarize`` fits orders
  (as the orders study does).

``plot`` draws error against NFE per cell with the Pareto front (the solvers no other beats
at equal or lower NFE), the order figures, and writes ``modern_table.md``: declared against
measured order for every solver.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import convergence, problems, schedules, solvers
from ..grids import start_time, timesteps
from ..metrics import rms_error
from ..reference import reference, union_times
from ..study import Command, Field, StudyKind, register
from .common import (
    ORDER_CELL_KEYS,
    VERDICT_MARK,
    cell_cost,
    eps_model,
    fields,
    format_order_summary,
    one_thread,
    positive,
    summarize_orders,
)

CELL_KEYS = list(ORDER_CELL_KEYS)

GRID = {
    "problem": fields.PROBLEM,
    "model": fields.MODEL,
    "schedule": fields.SCHEDULE,
    "solver": fields.solver(help="solvers to measure"),
    "budget": Field(
        int,
        default=[5, 10, 20, 50],
        check=positive,
        help="NFE budgets of the work-precision part",
    ),
    "steps": fields.steps([10, 20, 40, 80, 160, 320]),
    "t_min": fields.t_min([1e-3]),
    "spacing": fields.spacing(["lambda"]),
    "seed": fields.SEED,
}
OPTIONS = {
    "n_samples": fields.n_samples(64),
    "t_max": fields.START,
    "ref_tol": fields.ref_tol(1e-12),
    "device": fields.DEVICE,
}


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every solver at every NFE budget and along the step ladder, on one reference."""
    with one_thread():
        sched = schedules.get(config["schedule"])
        prob = problems.get(config["problem"], sched)
        t_max = start_time(sched, config["t_max"])
        t_min, spacing = float(config["t_min"]), config["spacing"]
        if not t_min < t_max:
            raise ValueError(f"t_min {t_min:g} must be below t_max {t_max:g}")
        x_T = prob.sample_marginal(
            int(config["n_samples"]), t_max, torch.Generator().manual_seed(int(config["seed"]))
        )
        net = eps_model(config.get("model", "exact"), prob, sched, config.get("device", "cpu"))
        eps = prob.eps if net is None else net
        budgets = {}
        for name in config["solver"]:
            solver = solvers.get(name)
            for nfe in config["budget"]:
                try:
                    n = solver.steps_for_nfe(int(nfe))
                except ValueError:
                    budgets[(name, nfe)] = None
                    continue
                budgets[(name, nfe)] = timesteps(n, spacing, t_max, t_min, schedule=sched)
        grids = convergence.ladder_grids(config["steps"], spacing, t_max, t_min, sched)
        times = union_times(*grids.values(), *(g for g in budgets.values() if g is not None))
        ref = reference(prob, sched, x_T, times, tol=float(config["ref_tol"]), model=net)
        end = ref.at(t_min)
        rows: list[dict[str, Any]] = []
        for (name, nfe), ts in budgets.items():
            row = {"part": "budget", "solver": name, "budget": nfe}
            if ts is None:
                rows.append({**row, "note": f"needs more than {nfe} evaluations"})
                continue
            sol = solvers.solve(name, eps, sched, x_T, ts)
            err = rms_error(sol.x, end)
            rows.append(
                {
                    **row,
                    "steps": len(ts) - 1,
                    "nfe": sol.nfe,
                    "error_rms": err,
                    "ref_accuracy": ref.accuracy_at(t_min),
                    "reliable": bool(ref.reliable(err, t_min)) if err == err else False,
                }
            )
        for name in config["solver"]:
            solver = solvers.get(name)
            usable = {n: g for n, g in grids.items() if n >= solver.min_steps}
            for row in convergence.global_errors(solver, eps, sched, x_T, usable, ref):
                rows.append({"part": "ladder", "solver": name, **row})
        return rows


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Order fits of the ladder part, one row per solver and cell."""
    ladder = df[df["part"] == "ladder"]
    return summarize_orders(ladder) if len(ladder) else pd.DataFrame()


def pareto(points: pd.DataFrame) -> pd.DataFrame:
    """The rows no other row beats with at most as many evaluations and a lower error."""
    pts = points[points["error_rms"].map(math.isfinite)].sort_values(["nfe", "error_rms"])
    keep, best = [], math.inf
    for i, row in pts.iterrows():
        if row["error_rms"] < best:
            keep.append(i)
            best = row["error_rms"]
    return pts.loc[keep]


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path) -> list[Path]:
    """Work-precision figures with their Pareto fronts, and ``modern_table.md``."""
    from ..plots.work_precision import plot_work_precision

    folder = Path(folder)
    paths = plot_work_precision(
        df[df["part"] == "budget"], folder, cell_keys=CELL_KEYS, front=pareto
    )
    if summary is not None and len(summary):
        table = folder / "modern_table.md"
        table.write_text(markdown_table(summary))
        paths.append(table)
    return paths


def markdown_table(summary: pd.DataFrame) -> str:
    """Declared vs measured order per solver (rows), one column per cell."""
    keys = [k for k in ("problem", "schedule", "t_min") if k in summary.columns]
    cells = list(dict.fromkeys(zip(*(summary[k] for k in keys), strict=True)))
    head = ["solver", "declared"] + [
        ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in c) for c in cells
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, g in summary.groupby("solver", sort=False):
        row = [name, str(solvers.get(name).order)]
        for c in cells:
            sel = g
            for k, v in zip(keys, c, strict=True):
                sel = sel[sel[k] == v]
            if not len(sel):
                row.append("-")
                continue
            r = sel.iloc[0]
            mark = VERDICT_MARK[r["verdict"]]
            row.append(
                f"{r['measured']:.2f}{mark}" if r["measured"] == r["measured"] else f"-{mark}"
            )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


COMMAND = Command(
    help="work-precision at NFE budgets and orders along a step ladder, every solver "
    "(defaults: gaussian-lowrank, linear schedule, ddim, f-pndm, dpm-solver++-2m, unipc-3)",
    out="results/modern",
    defaults={
        "problem": ["gaussian-lowrank"],
        "schedule": ["linear"],
        "solver": ["ddim", "f-pndm", "dpm-solver++-2m", "unipc-3"],
    },
    aliases={"solver": ("--solvers",)},
)

KIND = StudyKind(
    name="modern",
    grid=GRID,
    options=OPTIONS,
    ladder_axes=("solver", "budget", "steps"),
    run_cell=run_cell,
    version="1",
    summarize=summarize,
    plot=plot,
    description="work-precision at NFE budgets and orders along a ladder, every solver",
    format_summary=format_order_summary,
    command=COMMAND,
    estimate=cell_cost,
)
register(KIND)
