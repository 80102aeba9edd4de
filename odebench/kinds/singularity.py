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
from typing import Any

import pandas as pd
import torch

from . import convergence, orders, problems, schedules, singularity, solvers
from .grids import SPACINGS, timesteps
from .study import Field, StudyKind, register

CELL_KEYS = ["problem", "schedule", "spacing", "t_min", "seed"]

GRID = {
    "problem": Field(str, choices=problems.names, help="embedded problem"),
    "schedule": Field(str, choices=schedules.names, help="noise schedule"),
    "solver": Field(
        str, default=["ddim", "s-pndm", "f-pndm", "fon"], choices=orders._sampler_names
    ),
    "steps": Field(int, default=[25, 50, 100, 200, 400, 800], check=orders._positive),
    "t_min": Field(float, default=[0.1, 0.01, 0.001, 1e-4, 1e-5], check=orders._in_unit),
    "spacing": Field(
        str,
        default=["uniform", "quadratic", "lambda"],
        choices=[s for s in SPACINGS if s != "pndm"],
    ),
    "seed": Field(int, default=[0], check=orders._non_negative),
}
OPTIONS = {
    "n_samples": Field(int, default=32, check=orders._positive, help="start points per cell"),
    "t_max": Field(float, default=1.0, check=lambda v: None if 0 < v <= 1 else "in (0, 1]"),
    "ref_tol": Field(float, default=1e-12, check=orders._tolerance),
    "path_steps": Field(
        int,
        default=50,
        check=orders._positive,
        help="steps of the grid whose per-step errors are recorded",
    ),
    "lipschitz_samples": Field(int, default=16, check=orders._positive),
    "lipschitz_times": Field(int, default=30, check=orders._positive),
}


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    with orders._one_thread():
        sched = schedules.get(config["schedule"])
        prob = problems.get(config["problem"], sched)
        t_max = min(float(config["t_max"]), sched.t_hi)
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
        for name in config["solver"]:
            solver = solvers.get(name)
            for row in convergence.global_errors(solver, prob.eps, sched, x_T, grids, ref):
                rows.append({"part": "global", "solver": name, **row})
            if len(path) - 1 >= solver.min_steps:
                for row in singularity.per_step_errors(solver, prob, sched, x_T, path, tol=tol):
                    rows.append({"part": "per-step", "solver": name, **row})
        lip_ts = timesteps(int(config["lipschitz_times"]), spacing, t_max, t_min, schedule=sched)
        for row in singularity.lipschitz_along_path(
            prob, sched, x_T[: int(config["lipschitz_samples"])], lip_ts
        ):
            rows.append({"part": "lipschitz", **row})
        return rows


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Order fits of the global part, one row per solver and cell."""
    glob = df[df["part"] == "global"]
    return orders.summarize(glob) if len(glob) else pd.DataFrame()


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder) -> list:
    from pathlib import Path

    from .plots import plot_singularity

    folder = Path(folder)
    table = pd.DataFrame(singularity.exponent_table())
    path = folder / "singularity_exponents.csv"
    table.to_csv(path, index=False)
    return [path, *plot_singularity(df, summary, table, folder)]


KIND = StudyKind(
    name="singularity",
    grid=GRID,
    options=OPTIONS,
    ladder_axes=("solver", "steps"),
    run_cell=run_cell,
    version="2",  # 2: the eps coefficient at t = 0 is its limit (finite for cosine-s0)
    summarize=summarize,
    plot=plot,
    description="orders as t_min -> 0 per grid, per-step errors, stiffness, coefficient exponents",
)
register(KIND)


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
