"""The "singularity" study: what the t -> 0 end of a schedule does to solvers.

A cell is one (problem, schedule, spacing, t_min, seed). It records, in one tidy table told
apart by the column ``part``:

- ``global``: global errors along the step ladder (as the orders study), so the measured order
  can be followed as t_min goes to 0, per grid spacing;
- ``per-step``: the local error of every step of one grid of ``path_steps`` steps, each from
  the exact state (which steps cost the accuracy);
- ``lipschitz``: the stiffness (largest singular value of df/dx) along exact trajectories,
  in t and in lambda;
- ``skipped``: a combination that cannot exist (a lambda or Karras grid cannot reach t = 0),
  recorded with the reason instead of failing the study.

A path that leaves the finite numbers (rk4 asked to reach t = 0 on a singular schedule) is a
row with ``diverged_step`` / ``diverged_t`` and an infinite error, never a crash.
The figures and the exponent table of every schedule's coefficients are written by ``plot``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import convergence, problems, schedules, singularity, solvers
from ..grids import start_time, timesteps
from ..reference import reference
from ..study import Command, Field, StudyKind, StudyResult, register
from .common import (
    cell_cost,
    fields,
    one_thread,
    order_summary_text,
    positive,
    read_summary,
    summarize_orders,
)

CELL_KEYS = ["problem", "schedule", "spacing", "t_min", "seed"]
EXPONENTS = "singularity_exponents.csv"

GRID = {
    "problem": fields.PROBLEM,
    "schedule": fields.SCHEDULE,
    "solver": fields.solver(["ddim", "s-pndm", "f-pndm", "fon"]),
    "steps": fields.steps([25, 50, 100, 200, 400, 800]),
    "t_min": fields.t_min([0.1, 0.01, 0.001, 1e-4, 1e-5], help="end times of sampling"),
    "spacing": fields.spacing(
        ["uniform", "quadratic", "lambda"],
        help="time grids: uniform, quadratic, lambda, karras",
    ),
    "seed": fields.SEED,
}
OPTIONS = {
    "n_samples": fields.n_samples(32),
    "t_max": fields.T_MAX,
    "ref_tol": fields.ref_tol(1e-12),
    "path_steps": Field(
        int,
        default=50,
        check=positive,
        help="steps of the grid whose per-step errors are recorded",
    ),
    "lipschitz_samples": Field(
        int, default=16, check=positive, help="start points of the stiffness estimate"
    ),
    "lipschitz_times": Field(
        int, default=30, check=positive, help="times of the stiffness estimate"
    ),
}


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Global errors, per-step errors and stiffness of one (problem, schedule, grid, t_min)."""
    with one_thread():
        sched = schedules.get(config["schedule"])
        prob = problems.get(config["problem"], sched)
        t_max = start_time(sched, config["t_max"])
        t_min, spacing = float(config["t_min"]), config["spacing"]
        if spacing in ("lambda", "karras") and float(sched.sigma(t_min)) == 0.0:
            return [{"part": "skipped", "note": f"a {spacing} grid cannot reach t = {t_min:g}"}]
        x_T = prob.sample_marginal(
            int(config["n_samples"]), t_max, torch.Generator().manual_seed(int(config["seed"]))
        )
        tol = float(config["ref_tol"])
        rows: list[dict[str, Any]] = []
        grids = convergence.ladder_grids(config["steps"], spacing, t_max, t_min, sched)
        ref = convergence.global_reference(prob, sched, x_T, grids, tol)
        path = timesteps(int(config["path_steps"]), spacing, t_max, t_min, schedule=sched)
        path_ref = None  # the exact states on the path: one reference for every solver
        for name in config["solver"]:
            solver = solvers.get(name)
            for row in convergence.global_errors(solver, prob.eps, sched, x_T, grids, ref):
                rows.append({"part": "global", "solver": name, **row})
            if len(path) - 1 >= solver.min_steps:
                if path_ref is None:
                    path_ref = reference(prob, sched, x_T, path, tol=tol)
                steps = singularity.per_step_errors(
                    solver, prob, sched, x_T, path, tol=tol, ref=path_ref
                )
                for row in steps:
                    rows.append({"part": "per-step", "solver": name, **row})
        lip_ts = timesteps(int(config["lipschitz_times"]), spacing, t_max, t_min, schedule=sched)
        # The Lanczos start vectors come from their own seeded generator, not from the global
        # one, whose state depends on what ran before in the process (the estimates agree only
        # to the iteration's tolerance, ~1e-10, across start vectors).
        lanczos = torch.Generator().manual_seed(int(config["seed"]))
        for row in singularity.lipschitz_along_path(
            prob, sched, x_T[: int(config["lipschitz_samples"])], lip_ts, generator=lanczos
        ):
            rows.append({"part": "lipschitz", **row})
        return rows


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Order fits of the global part, one row per solver and cell."""
    glob = df[df["part"] == "global"]
    return summarize_orders(glob) if len(glob) else pd.DataFrame()


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path) -> list[Path]:
    """The exponent table of every schedule's coefficients and the figures."""
    from ..plots.singularity import plot_singularity

    folder = Path(folder)
    table = pd.DataFrame(singularity.exponent_table())
    path = folder / EXPONENTS
    table.to_csv(path, index=False)
    curves = coefficient_curves(list(dict.fromkeys(table["schedule"])))
    return [path, *plot_singularity(df, summary, table, curves, folder)]


def coefficient_curves(names: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """Per schedule: t on [1e-8, ~1] (within the schedule's domain), |eps| and |x| coefficients
    of dx/dt and |eps| coefficient of dx/dlambda there (what the coefficient figure draws)."""
    t = torch.logspace(-8, -0.01, 400, dtype=torch.float64)
    out = {}
    for name in names:
        sched = schedules.get(name)
        tt = t[t <= sched.t_hi]
        in_t = singularity.coefficient_curves(sched, tt, "t")
        in_lambda = singularity.coefficient_curves(sched, tt, "lambda")
        out[name] = {"t": tt, "eps": in_t["eps"], "x": in_t["x"], "eps_lambda": in_lambda["eps"]}
    return out


def exponent_summary(table: pd.DataFrame) -> str:
    """The eps coefficient's exponent near t = 0, per schedule, in t / lambda / sigma_tilde."""
    rows = table[table["which"] == "eps"].pivot(
        index="schedule", columns="variable", values="exponent"
    )
    lines = ["schedule            in t     in lambda  in sigma_tilde"]
    for name, r in rows.iterrows():
        vals = [r.get(v, math.nan) for v in ("t", "lambda", "sigma_tilde")]
        lines.append(f"{name:<18}  " + "  ".join(f"{v:+8.3f}" for v in vals))
    return "\n".join(lines)


def format_summary(result: StudyResult) -> str | None:
    """The order fits per cell, then the exponent of every schedule's eps coefficient."""
    chunks = []
    orders = order_summary_text(read_summary(result))
    if orders is not None:
        chunks.append(orders)
    exponents = [Path(f) for f in result.figures if Path(f).name == EXPONENTS]
    if exponents:
        chunks.append("\nExponent of the eps coefficient near t = 0 (fitted on t in [1e-8, 1e-4]):")
        chunks.append(exponent_summary(pd.read_csv(exponents[0])))
    return "\n".join(chunks) if chunks else None


COMMAND = Command(
    help="what the t -> 0 end of a schedule does: coefficient exponents, orders as "
    "t_min -> 0 per grid, per-step errors, stiffness",
    out="results/singularity",
    defaults={"problem": ["gaussian-lowrank"], "schedule": ["linear", "cosine-s0"]},
    aliases={"solver": ("--solvers",)},
)

KIND = StudyKind(
    name="singularity",
    grid=GRID,
    options=OPTIONS,
    ladder_axes=("solver", "steps"),
    run_cell=run_cell,
    # 2: the eps coefficient at t = 0 is its limit (finite for cosine-s0); 3: seeded Lanczos
    # start vectors (the lip_* columns move by up to 1e-9 relative, nothing else)
    version="3",
    summarize=summarize,
    plot=plot,
    description="orders as t_min -> 0 per grid, per-step errors, stiffness, coefficient exponents",
    format_summary=format_summary,
    command=COMMAND,
    estimate=cell_cost,
)
register(KIND)
