"""The "sde" study: weak and strong orders of stochastic samplers, ODE solvers beside them.

A cell is one (problem, schedule, t_min, spacing, seed); its ladder is solver x eta x steps.
Rows are told apart by ``part``:

- ``weak``: the exact W2 (and KL, mean error) between the sampler's output law and the exact
  marginal at t_min, from x_T ~ p_{t_max}. On Gaussian data every step of every sampler is
  affine in the state and its noise, so the output law is Gaussian and ``odebench.laws``
  reads it off one batched probe run: no Monte Carlo, no error bar. ODE solvers (the eta = 0
  limit) are measured the same way. Non-Gaussian problems are refused here.
- ``strong``: the RMS over ``n_samples`` start points of |x_N - x_ref|, x_ref the same sampler
  on a ``refine`` times finer grid, both driven by ONE Brownian path sampled on the fine grid
  (``solvers.BrownianPath``; Kloeden & Platen 1992, Sec. 9.3). Every coarse grid must be a
  sub-grid of the fine one: the step counts must divide the fine count and the spacing must
  nest (checked node by node); otherwise the cell is refused. For an ODE solver this is its
  deterministic self-convergence.

``eta`` applies to the samplers that take it (``ddim-eta``, ``euler-maruyama``,
``euler-ancestral``); the others run once, with ``eta`` left blank. ``summarize`` fits the weak
order (from W2) and the strong order per sampler, 95% CIs, and gives each a verdict against
the declared ``weak_order`` / ``strong_order`` ("measured" where none is published).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import problems, schedules, solvers
from .._text import fixed_width
from ..grids import start_time, timesteps
from ..laws import exact_law, marginal, weak_error
from ..metrics import fit_order, verdict
from ..problems import Gaussian
from ..solvers import BrownianNoise, BrownianPath
from ..study import Command, Field, StudyKind, StudyResult, register
from .common import (
    VERDICT_MARK,
    cell_blocks,
    cell_cost,
    fields,
    non_negative,
    one_thread,
    positive,
    read_summary,
)

CELL_KEYS = ["problem", "schedule", "t_min", "spacing", "seed"]
DEFAULT_STEPS = [10, 20, 40, 80, 160, 320, 640]
PARTS = ("both", "weak", "strong")
#: Relative tolerance for a coarse node to count as a node of the fine grid.
NEST_TOL = 1e-13
#: A fit whose 95% CI is wider than +-MAX_HALFWIDTH is "inconclusive", declared order or not.
MAX_HALFWIDTH = 0.5


def _eta_check(value: float) -> str | None:
    return None if math.isfinite(value) and value >= 0 else "must be a finite number >= 0"


GRID = {
    "problem": fields.PROBLEM,
    "schedule": fields.SCHEDULE,
    "solver": fields.solver(
        help="stochastic samplers, and ODE solvers as the eta = 0 limit", stochastic=True
    ),
    "eta": Field(
        float,
        default=[1.0],
        check=_eta_check,
        help="noise level of the samplers that take one (ddim-eta, euler-maruyama, "
        "euler-ancestral); 0 = the ODE, 1 = the reverse SDE",
    ),
    "steps": fields.steps(DEFAULT_STEPS),
    "t_min": fields.t_min([1e-3]),
    "spacing": fields.spacing(["uniform"]),
    "seed": fields.SEED,
}
OPTIONS = {
    "errors": Field(str, default="both", choices=PARTS, help="weak, strong or both"),
    "n_samples": fields.n_samples(64, help="start points (and Brownian paths) of the strong part"),
    "refine": Field(
        int, default=8, check=positive, help="the strong reference's steps over the largest rung"
    ),
    "t_max": fields.START,
    "s_churn": Field(float, default=40.0, check=non_negative, help="edm-churn's S_churn"),
    "s_tmin": Field(float, default=0.05, check=non_negative, help="edm-churn's S_tmin"),
    "s_tmax": Field(float, default=50.0, check=non_negative, help="edm-churn's S_tmax"),
    "s_noise": Field(float, default=1.0, check=non_negative, help="edm-churn's S_noise"),
}


def samplers(config: dict[str, Any]) -> list[tuple[str, float | None, solvers.Solver]]:
    """(name, eta or None, solver) for every solver of the cell, one per eta where it takes
    one; edm-churn gets the cell's churn options."""
    out = []
    for name in config["solver"]:
        if name == "edm-churn":
            churn = {
                k: float(config[k.lower()]) for k in ("S_churn", "S_tmin", "S_tmax", "S_noise")
            }
            out.append((name, None, solvers.get(name, **churn)))
            continue
        try:
            made = [(name, float(e), solvers.get(name, eta=float(e))) for e in config["eta"]]
        except ValueError as err:
            if "bad options" not in str(err):
                raise
            made = [(name, None, solvers.get(name))]
        out.extend(made)
    return out


def _label(name: str, eta: float | None, solver: solvers.Solver) -> str:
    return solver.name if eta is not None else name


def nested_grids(
    steps: list[int], spacing: str, t_max: float, t_min: float, sched, refine: int
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The strong reference's fine grid and each rung's grid, every rung's nodes checked to be
    nodes of the fine grid (a Brownian path sampled on it then drives them all)."""
    fine_n = refine * max(steps)
    fine = timesteps(fine_n, spacing, t_max, t_min, schedule=sched)
    grids = {}
    for n in steps:
        if fine_n % n:
            raise ValueError(
                f"strong errors need nested grids: {n} steps do not divide the reference's "
                f"{fine_n} (use doubling step counts, e.g. 10, 20, 40)"
            )
        ts = timesteps(n, spacing, t_max, t_min, schedule=sched)
        sub = fine[:: fine_n // n]
        if float(((ts - sub).abs() / ts.abs().clamp_min(1e-300)).max()) > NEST_TOL:
            raise ValueError(
                f"strong errors need nested grids: spacing {spacing!r} with {n} steps has nodes "
                f"off its {fine_n}-step refinement"
            )
        grids[n] = ts
    return fine, grids


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Weak (exact W2) and strong (same Brownian path) errors along the ladder of every
    sampler of one (problem, schedule, t_min, spacing, seed)."""
    with one_thread():
        sched = schedules.get(config["schedule"])
        prob = problems.get(config["problem"], sched)
        t_max = start_time(sched, config["t_max"])
        t_min, spacing, part = float(config["t_min"]), config["spacing"], config["errors"]
        if not t_min < t_max:
            raise ValueError(f"t_min {t_min:g} must be below t_max {t_max:g}")
        steps = sorted({int(n) for n in config["steps"]})
        runs = samplers(config)
        rows: list[dict[str, Any]] = []
        if part in ("both", "weak"):
            if not isinstance(prob, Gaussian):
                raise ValueError(
                    f"weak errors are exact laws on Gaussian data: {config['problem']!r} is not "
                    'Gaussian (use errors = "strong")'
                )
            grids = {n: timesteps(n, spacing, t_max, t_min, schedule=sched) for n in steps}
            rows += _weak_rows(prob, runs, grids, t_max, t_min)
        if part in ("both", "strong"):
            seed = int(config["seed"])
            x_T = prob.sample_marginal(
                int(config["n_samples"]), t_max, torch.Generator().manual_seed(seed)
            )
            fine, grids = nested_grids(steps, spacing, t_max, t_min, sched, int(config["refine"]))
            path = BrownianPath(fine, tuple(x_T.shape), torch.Generator().manual_seed(seed + 1))
            rows += _strong_rows(prob, runs, x_T, fine, grids, path, t_max, t_min)
        return rows


def _tag(name: str, eta: float | None, solver, n: int, sched, ts, t_max, t_min) -> dict:
    return {
        "solver": name,
        "eta": math.nan if eta is None else eta,
        "label": _label(name, eta, solver),
        "stochastic": bool(solver.stochastic),
        "steps": n,
        "nfe": solver.nfe_on(sched, ts),
        "h": (t_max - t_min) / n,
    }


def _weak_rows(prob, runs, grids, t_max, t_min) -> list[dict[str, Any]]:
    target = marginal(prob, t_min)
    rows = []
    for name, eta, solver in runs:
        for n, ts in grids.items():
            row = {"part": "weak", **_tag(name, eta, solver, n, prob.schedule, ts, t_max, t_min)}
            if n < solver.min_steps:
                rows.append({**row, "note": f"needs at least {solver.min_steps} steps"})
                continue
            err = weak_error(exact_law(solver, prob, ts), target)
            rows.append(
                {**row, "w2": err.w2, "kl": err.kl, "mean_error": err.mean_error, "reliable": True}
            )
    return rows


def _strong_rows(prob, runs, x_T, fine, grids, path, t_max, t_min) -> list[dict[str, Any]]:
    sched, rows = prob.schedule, []
    for name, eta, solver in runs:
        extra = (lambda: {"noise": BrownianNoise(path)}) if solver.stochastic else dict
        ref = solvers.solve(solver, prob.eps, sched, x_T, fine, **extra()).x
        for n, ts in grids.items():
            row = {"part": "strong", **_tag(name, eta, solver, n, sched, ts, t_max, t_min)}
            if n < solver.min_steps:
                rows.append({**row, "note": f"needs at least {solver.min_steps} steps"})
                continue
            out = solvers.solve(solver, prob.eps, sched, x_T, ts, **extra()).x
            err = float((out - ref).norm(dim=1).pow(2).mean().sqrt())
            rows.append({**row, "error_rms": err, "reliable": math.isfinite(err)})
    return rows


def declared(name: str, eta: float | None, part: str) -> float | None:
    """The declared weak or strong order: an ODE solver's order for both (its strong error is
    its self-convergence), a stochastic sampler's ``weak_order`` / ``strong_order``."""
    solver = solvers.get(name) if eta is None else solvers.get(name, eta=eta)
    if not solver.stochastic:
        return solver.order
    return solver.weak_order if part == "weak" else solver.strong_order


def _fit(group: pd.DataFrame, err: str, order: float | None) -> dict[str, Any]:
    group = group.sort_values("steps")
    ok = group[err].notna() if err in group.columns else group["steps"] < 0
    group = group[ok]
    if len(group) < 2:
        return {
            "measured": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "r2": math.nan,
            "verdict": "inconclusive",
            "left_out": "",
        }
    fit = fit_order(
        group["h"].to_numpy(dtype=float),
        group[err].to_numpy(dtype=float),
        exclude=~group["reliable"].astype(bool).to_numpy(),
    )
    judged = verdict(fit, order)
    if judged == "measured" and not fit.ci_halfwidth <= MAX_HALFWIDTH:
        judged = "inconclusive"  # as metrics.verdict says of a declared order's fit
    return {
        "measured": fit.slope,
        "ci_low": fit.ci_low,
        "ci_high": fit.ci_high,
        "r2": fit.r2,
        "verdict": judged,
        "left_out": ";".join(f for f in fit.flags if f),
    }


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and sampler (label): declared and measured weak and strong orders."""
    keys = [k for k in CELL_KEYS if k in df.columns]
    out = []
    for cell, cell_df in df.groupby(keys, sort=False, dropna=False):
        cell = cell if isinstance(cell, tuple) else (cell,)
        for label, g in cell_df.groupby("label", sort=False):
            first = g.iloc[0]
            eta = None if pd.isna(first["eta"]) else float(first["eta"])
            row = dict(zip(keys, cell, strict=True))
            row.update(
                label=label,
                solver=first["solver"],
                eta=first["eta"],
                stochastic=bool(first["stochastic"]),
            )
            for part, err in (("weak", "w2"), ("strong", "error_rms")):
                sub = g[g["part"] == part]
                if not len(sub):
                    continue
                order = declared(first["solver"], eta, part)
                row[f"{part}_declared"] = order
                row.update({f"{part}_{k}": v for k, v in _fit(sub, err, order).items()})
            if "kl" in g.columns and (g["part"] == "weak").any():
                row["kl_slope"] = _fit(g[g["part"] == "weak"], "kl", None)["measured"]
            out.append(row)
    return pd.DataFrame(out)


def _order_cell(r: pd.Series, part: str) -> str:
    if f"{part}_measured" not in r or pd.isna(r.get(f"{part}_verdict")):
        return "-"
    m, lo, hi = r[f"{part}_measured"], r[f"{part}_ci_low"], r[f"{part}_ci_high"]
    if not math.isfinite(m):
        return f"-{VERDICT_MARK.get(r[f'{part}_verdict'], '')}"
    return f"{m:.2f} [{lo:.2f}, {hi:.2f}]{VERDICT_MARK.get(r[f'{part}_verdict'], '')}"


def _declared_text(value: Any) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:g}"
    )


def markdown_table(summary: pd.DataFrame, part: str) -> str:
    """Measured ``part`` order [95% CI] per sampler (rows) and schedule/spacing (columns)."""
    keys = [k for k in ("problem", "schedule", "t_min", "spacing") if k in summary.columns]
    varied = [k for k in keys if summary[k].nunique() > 1] or keys[1:2]
    cells = list(dict.fromkeys(zip(*(summary[k] for k in varied), strict=True)))
    head = ["sampler", "declared"] + [
        ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in c) for c in cells
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, g in summary.groupby("label", sort=False):
        row = [label, _declared_text(g.iloc[0].get(f"{part}_declared"))]
        indexed = {tuple(r[k] for k in varied): r for _, r in g.iterrows()}
        row += [_order_cell(indexed[c], part) if c in indexed else "-" for c in cells]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def at_nfe(df: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Each sampler's weak row with the most evaluations that fit ``budget``."""
    weak = df[(df["part"] == "weak") & df["w2"].notna() & (df["nfe"] <= budget)]
    return weak.sort_values("nfe").groupby([*CELL_KEYS, "label"], sort=False).tail(1)


def nfe_table(df: pd.DataFrame, budgets: tuple[int, ...] = (10, 20, 40, 80, 160)) -> str:
    """Exact W2 at equal NFE, one block per cell: samplers (rows) by NFE budget (columns)."""
    keys = [k for k in CELL_KEYS if k in df.columns]
    blocks = []
    for cell, part in df[df["part"] == "weak"].groupby(keys, sort=False):
        cell = cell if isinstance(cell, tuple) else (cell,)
        title = ", ".join(f"{k} = {v}" for k, v in zip(keys, cell, strict=True))
        head = ["sampler"] + [f"NFE {b}" for b in budgets]
        lines = [f"{title}:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        picks = {b: at_nfe(part, b).set_index("label") for b in budgets}
        for label in dict.fromkeys(part["label"]):
            vals = [
                f"{picks[b].loc[label, 'w2']:.3g}" if label in picks[b].index else "-"
                for b in budgets
            ]
            lines.append("| " + " | ".join([label, *vals]) + " |")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path) -> list[Path]:
    """Weak and strong errors per cell, and the tables ``sde_weak_table.md``,
    ``sde_strong_table.md`` and ``sde_nfe_table.md``."""
    from ..plots.sde import plot_sde

    folder = Path(folder)
    paths = plot_sde(df, folder, cell_keys=CELL_KEYS)
    if summary is not None and len(summary):
        for part in ("weak", "strong"):
            if f"{part}_measured" in summary.columns:
                path = folder / f"sde_{part}_table.md"
                path.write_text(markdown_table(summary, part))
                paths.append(path)
    if "w2" in df.columns:
        path = folder / "sde_nfe_table.md"
        path.write_text(nfe_table(df))
        paths.append(path)
    return paths


def format_table(summary: pd.DataFrame) -> str:
    """Weak and strong fits of one cell as a fixed-width terminal table."""
    cols = [
        "sampler",
        "weak decl.",
        "weak [95% CI]",
        "verdict",
        "strong decl.",
        "strong [95% CI]",
        "verdict",
    ]
    lines = [
        [
            r["label"],
            _declared_text(r.get("weak_declared")),
            _order_cell(r, "weak"),
            str(r.get("weak_verdict", "-")),
            _declared_text(r.get("strong_declared")),
            _order_cell(r, "strong"),
            str(r.get("strong_verdict", "-")),
        ]
        for _, r in summary.iterrows()
    ]
    return fixed_width(cols, [[c.replace("nan", "-") for c in line] for line in lines])


def format_summary(result: StudyResult) -> str | None:
    """The weak and strong order fits, one table per cell."""
    summary = read_summary(result)
    return None if summary is None else cell_blocks(summary, CELL_KEYS, format_table)


COMMAND = Command(
    help="weak (exact W2 on Gaussians) and strong (same Brownian path) orders of stochastic "
    "samplers (defaults: gaussian-lowrank, linear schedule, ddpm, euler-ancestral, "
    "sde-dpm-solver++-2m, ddim)",
    out="results/sde",
    defaults={
        "problem": ["gaussian-lowrank"],
        "schedule": ["linear"],
        "solver": ["ddpm", "euler-ancestral", "sde-dpm-solver++-2m", "ddim"],
    },
    aliases={"solver": ("--solvers",)},
)

KIND = StudyKind(
    name="sde",
    grid=GRID,
    options=OPTIONS,
    ladder_axes=("solver", "eta", "steps"),
    run_cell=run_cell,
    version="1",
    summarize=summarize,
    plot=plot,
    description="weak and strong orders of stochastic samplers, ODE solvers beside them",
    format_summary=format_summary,
    command=COMMAND,
    estimate=cell_cost,
)
register(KIND)
