"""The "orders" study: measured convergence orders against declared ones.

A cell is one (problem, schedule, t_min, spacing, seed); inside it, one reference serves every
prediction kind, grid shift, solver and step count of the ladder. Rows are tidy: one per
(solver, steps) in global mode, one per (solver, t0, h) in local mode; the columns
``prediction`` and ``shift`` appear only when a study asks for other than eps and no shift.
The exact model may predict any kind (``prediction``: the solver sees the eps converted by
``models.from_prediction``), so the orders under flow matching with a velocity model are
measured as a flow-matching user runs them; t_max is capped where the schedule can start
(``grids.start_time``: t = 80/81 under flow). ``summarize`` fits the order of each solver
(least squares over an automatic window, 95% CI, R^2, local slopes) and gives the verdict
against the solver's declared order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import convergence, problems, schedules, solvers
from ..grids import start_time
from ..study import Command, Field, Shortcut, StudyKind, register
from .common import (
    ORDER_CELL_KEYS,
    VERDICT_MARK,
    cell_cost,
    fields,
    format_order_summary,
    one_thread,
    summarize_orders,
)
from .common.networks import guided_models

CELL_KEYS = list(ORDER_CELL_KEYS)
DEFAULT_STEPS = [25, 50, 100, 200, 400, 800, 1600]
DEFAULT_SOLVERS = ["ddim", "s-pndm", "f-pndm", "fon", "euler", "heun", "rk4"]

GRID = {
    "problem": fields.PROBLEM,
    "model": fields.MODEL,
    "schedule": fields.SCHEDULE,
    "prediction": fields.PREDICTION,
    "shift": fields.SHIFT,
    "guidance": fields.GUIDANCE,
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
    "t_max": fields.START,
    "device": fields.DEVICE,
    "ref_tol": fields.ref_tol(1e-12),
}


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    """All predictions, shifts and solvers of the ladder on one (problem, schedule, t_min,
    spacing, seed), against one reference."""
    with one_thread():
        sched = schedules.get(config["schedule"])
        prob = problems.get(config["problem"], sched)
        t_max = start_time(sched, config["t_max"])
        t_min = float(config["t_min"])
        if not t_min < t_max:
            raise ValueError(f"t_min {t_min:g} must be below t_max {t_max:g}")
        kinds = list(config.get("prediction", ["eps"]))
        gen = torch.Generator().manual_seed(int(config["seed"]))
        x_T = prob.sample_marginal(int(config["n_samples"]), t_max, gen)
        rows: list[dict[str, Any]] = []
        for tag, net in guided_models(config, prob, sched, x_T.shape[0]):
            if net is not None and kinds != ["eps"]:
                raise ValueError(
                    f"prediction {', '.join(kinds)} needs model = exact and guidance = 0: "
                    "a network's (or a guided model's) output is its own"
                )
            rows += [{**tag, **row} for row in _ladder(config, prob, sched, x_T, net, t_max)]
        return rows


def _ladder(config: dict[str, Any], prob, sched, x_T, net, t_max: float) -> list[dict]:
    """Every prediction, shift, solver and step count of one model against one reference."""
    t_min = float(config["t_min"])
    kinds = list(config.get("prediction", ["eps"]))
    shifts = [float(s) for s in config.get("shift", [1.0])]
    tol = float(config["ref_tol"])
    models = {k: convergence.exact_model(prob, k) if net is None else net for k in kinds}
    tags = {k: ({"prediction": k} if kinds != ["eps"] else {}) for k in kinds}
    rows: list[dict[str, Any]] = []
    if config["mode"] == "local":
        if shifts != [1.0]:
            raise ValueError("shift moves the grids of global errors; local mode has none")
        plan = convergence.local_plan(t_max, t_min, T=getattr(sched, "T", None))
        if not plan:
            raise ValueError(f"no local-error time t0 lies in ({t_min:g}, {t_max:g})")
        ref = convergence.local_reference(prob, sched, x_T, plan, t_max, tol, model=net)
        for k in kinds:
            for name in config["solver"]:
                solver = solvers.get(name)
                for row in convergence.local_errors(solver, models[k], sched, ref, plan):
                    rows.append({**tags[k], "solver": name, **row})
        return rows
    ladders = {
        s: convergence.ladder_grids(
            config["steps"], config["spacing"], t_max, t_min, sched, shift=s
        )
        for s in shifts
    }
    every = [g for grids in ladders.values() for g in grids.values()]
    union = dict(enumerate(every))
    ref = convergence.global_reference(prob, sched, x_T, union, tol, model=net)
    for k in kinds:
        for s, grids in ladders.items():
            tag = {**tags[k], **({"shift": s} if shifts != [1.0] else {})}
            for name in config["solver"]:
                solver = solvers.get(name)
                for row in convergence.global_errors(solver, models[k], sched, x_T, grids, ref):
                    rows.append({**tag, "solver": name, **row})
    return rows


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per solver and cell: declared vs measured order, CI, R^2, verdict."""
    return summarize_orders(df)


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path) -> list[Path]:
    """The figures, and the summary as a Markdown table (orders_table.md) for the README."""
    paths = _figures(df, summary, Path(folder))
    if summary is not None and "error_at_50" in summary.columns:
        table = Path(folder) / "orders_table.md"
        table.write_text(markdown_table(summary))
        paths.append(table)
    elif summary is not None and "t0" in summary.columns:
        table = Path(folder) / "orders_local_table.md"
        table.write_text(local_markdown_table(summary))
        paths.append(table)
    return paths


#: Axes whose values share one figure name: a study that varies one gets a sub-folder of
#: figures per variant (e.g. ``prediction-velocity_shift-3_spacing-karras/``).
VARIANT_KEYS = ("prediction", "shift", "guidance", "spacing")


def _figures(df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path) -> list[Path]:
    from ..plots.orders import plot_orders

    keys = [k for k in VARIANT_KEYS if k in df.columns and df[k].nunique() > 1]
    if not keys:
        return plot_orders(df, summary, folder, cell_keys=CELL_KEYS)
    paths = []
    for variant, part in df.groupby(keys, sort=False):
        variant = variant if isinstance(variant, tuple) else (variant,)
        sub = folder / "_".join(
            f"{k}-{v:g}" if isinstance(v, float) else f"{k}-{v}"
            for k, v in zip(keys, variant, strict=True)
        )
        sub.mkdir(parents=True, exist_ok=True)
        picked = None
        if summary is not None:
            mask = pd.Series(True, index=summary.index)
            for k, v in zip(keys, variant, strict=True):
                mask &= summary[k] == v
            picked = summary[mask]
        paths += plot_orders(part, picked, sub, cell_keys=CELL_KEYS)
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
    keys = [
        k
        for k in CELL_KEYS
        if k in summary.columns and k != "seed" and (k != "spacing" or summary[k].nunique() > 1)
    ]
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
    ladder_axes=("prediction", "shift", "guidance", "solver", "steps"),
    split_axes=("guidance",),  # each scale is its own model, reference and ladder
    run_cell=run_cell,
    version="1",
    summarize=summarize,
    plot=plot,
    description="measured vs declared convergence orders (global or local errors)",
    format_summary=format_order_summary,
    command=COMMAND,
    estimate=cell_cost,
)
register(KIND)
