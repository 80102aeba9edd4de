"""The "orders" study: measured convergence orders against declared ones.

A cell is one (problem, schedule, t_min, spacing, seed); inside it, one reference serves every
solver and every step count of the ladder. Rows are tidy: one per (solver, steps) in global
mode, one per (solver, t0, h) in local mode. ``summarize`` fits the order of each solver
(least squares over an automatic window, 95% CI, R^2, local slopes) and gives the verdict
against the solver's declared order.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import convergence, problems, schedules, solvers
from ._text import fixed_width
from .grids import SPACINGS
from .metrics import fit_order, verdict
from .study import Field, StudyKind, register

CELL_KEYS = ["problem", "model", "schedule", "t_min", "spacing", "seed"]
DEFAULT_STEPS = [25, 50, 100, 200, 400, 800, 1600]
DEFAULT_SOLVERS = ["ddim", "s-pndm", "f-pndm", "fon", "euler", "heun", "rk4"]


def _in_unit(value: float) -> str | None:
    return None if 0.0 <= value < 1.0 else "must lie in [0, 1)"


def _positive(value: int) -> str | None:
    return None if value > 0 else "must be positive"


def _non_negative(value: int) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _tolerance(value: float) -> str | None:
    return None if 0.0 < value < 1e-6 else "must lie in (0, 1e-6)"


def _device(value: str) -> str | None:
    ok = value == "cpu" or value == "cuda" or value.startswith("cuda:")
    return None if ok else "must be cpu, cuda or cuda:N"


def _sampler_names() -> list[str]:
    return [n for n in solvers.names(include_aliases=True) if n != "pf"]


def _model_names() -> list[str]:
    from .models import shipped

    return ["exact", "trained", *shipped()]


def eps_model(name: str, prob, sched, device: str = "cpu", dtype: torch.dtype = torch.float64):
    """The eps model of a cell: None for the problem's exact eps, else a shipped network in
    ``dtype`` (float64 by default: a smooth right-hand side, so adaptive references can reach
    tight tolerances) on ``device``, refused unless it was trained on this problem and
    schedule. Its output is float64 whatever ``dtype`` it computes in."""
    if name == "exact":
        return None
    from .models import load, shipped

    if name == "trained":  # the shipped network trained on this problem and schedule
        name = _trained_network(prob.name, sched.name, shipped())

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
    net = load(name, dtype=dtype, device=device)
    for key, there, here in (
        ("data", _card_problem(net.card), prob.name),
        ("schedule", net.card["schedule"], sched.name),
    ):
        if there != here:
            raise ValueError(f"network {name!r} was trained with {key} {there!r}, not {here!r}")
    return net


def _card_problem(card: dict) -> str:
    """The embedded problem a network was trained on (``problem``, else ``data``)."""
    return card.get("problem", card["data"])


def _trained_network(problem: str, schedule: str, names: list[str]) -> str:
    import json

    from .models.loading import ASSETS

    for name in names:
        card = json.loads((ASSETS / f"{name}.json").read_text())
        if _card_problem(card) == problem and card["schedule"] == schedule:
            return name
    raise ValueError(
        f"no shipped network was trained on {problem!r} with the {schedule!r} schedule"
    )


GRID = {
    "problem": Field(str, choices=problems.names, help="embedded problem"),
    "model": Field(
        str,
        default=["exact"],
        choices=_model_names,
        help="eps model: the exact eps or a shipped network trained on the problem",
    ),
    "schedule": Field(str, choices=schedules.names, help="noise schedule"),
    "solver": Field(str, choices=_sampler_names, help="solvers to measure"),
    "steps": Field(int, default=DEFAULT_STEPS, check=_positive, help="step-count ladder"),
    "t_min": Field(float, default=[0.1], check=_in_unit, help="end time of sampling"),
    "spacing": Field(
        str, default=["uniform"], choices=[s for s in SPACINGS if s != "pndm"], help="time grid"
    ),
    "seed": Field(int, default=[0], check=_non_negative, help="seed of the start points"),
}
OPTIONS = {
    "n_samples": Field(int, default=64, check=_positive, help="start points per cell"),
    "mode": Field(
        str,
        default="global",
        choices=["global", "local"],
        help="global (end-point) or local (one step) errors",
    ),
    "t_max": Field(
        float,
        default=1.0,
        check=lambda v: None if 0 < v <= 1 else "in (0, 1]",
        help="start time (capped at the schedule's end)",
    ),
    "device": Field(str, default="cpu", check=_device, help="where networks run"),
    "ref_tol": Field(
        float, default=1e-12, check=_tolerance, help="tolerance of the adaptive reference"
    ),
}


@contextmanager
def _one_thread():
    """Small float64 tensors run faster on one thread (no pool wake-up per operation)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    """All solvers of the ladder on one (problem, schedule, t_min, spacing, seed)."""
    with _one_thread():
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
            plan = convergence.local_plan(t_max, t_min)
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


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per solver and cell: declared vs measured order, CI, R^2, verdict."""
    keys = [k for k in CELL_KEYS if k in df.columns]
    local = "t0" in df.columns and df["t0"].notna().any()
    if local:
        keys = [*keys, "t0"]
    out = []
    for (cell, name), group in _groups(df, keys):
        solver = solvers.get(name)
        declared = solver.order
        row = dict(zip(keys, cell, strict=True))
        row.update(solver=name, declared=declared, nfe_rule=_nfe_rule(solver))
        if local:
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


def _groups(df: pd.DataFrame, keys: list[str]):
    for cell, cell_df in df.groupby(keys, sort=False, dropna=False):
        cell = cell if isinstance(cell, tuple) else (cell,)
        for name, group in cell_df.groupby("solver", sort=False):
            yield (cell, name), group


def _nfe_rule(solver) -> str:
    """The NFE formula in N, read off the solver (e.g. "N+9", "4N")."""
    a, b = solver.nfe(10), solver.nfe(20)
    if a is None:
        return "adaptive"
    per, extra = (b - a) // 10, a - 10 * ((b - a) // 10)
    base = "N" if per == 1 else f"{per}N"
    return base if extra == 0 else f"{base}{extra:+d}"


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder) -> list:
    """The figures, and the summary as a Markdown table (orders_table.md) for the README."""
    from pathlib import Path

    from .plots import plot_orders

    paths = plot_orders(df, summary, folder)
    if summary is not None and "error_at_50" in summary.columns:
        table = Path(folder) / "orders_table.md"
        table.write_text(markdown_table(summary))
        paths.append(table)
    return paths


VERDICT_MARK = {
    "as declared": "",
    "reduced": " (reduced)",
    "superconvergent": " (super)",
    "inconclusive": " (?)",
    "diverged": " (diverged)",
    "measured": "",
}


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
)
register(KIND)


def format_table(summary: pd.DataFrame) -> str:
    """The summary as a fixed-width text table for the terminal."""
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
