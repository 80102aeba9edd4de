"""The "norms" study: does a sampler leave the data manifold along its path?

The PNDM paper's diagnosis of classical methods is that their samples drift off the
high-density region, seen through the norms of x_t along sampling. Here every solver starts
from the same exact samples of p_{t_max} and runs at (nearly) equal NFE; at every grid time we
record, per solver,

- the RMS norm, mean norm and 5/50/95% quantiles of |x_t|, against the exact band of the
  marginal p_t (sqrt(E|x_t|^2), and sqrt(E|x_t|^2 -+ 2 sd(|x_t|^2)));
- the paired departure from the exact trajectories through the same start points (the
  probability-flow ODE maps exact samples of p_{t_max} to exact samples of p_t): the RMS-norm
  ratio and the excess negative log-density, mean_i [-log p_t(x_i) + log p_t(x_i exact)];
- for problems whose data lie on or near a subspace, the distance of the x0-prediction of
  the model to that set.

``model`` can be any eps model (analytic now, a network later): the exact marginals always
come from the problem.
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
from ..metrics import norm_band, norm_statistics, subspace_distance
from ..reference import reference, union_times
from ..study import Command, Field, StudyKind, StudyResult, register
from .common import cell_blocks, cell_cost, fields, one_thread, positive, read_summary
from .common.networks import guided_models

CELL_KEYS = ["problem", "model", "schedule", "guidance", "nfe", "t_min", "spacing", "seed"]
DEFAULT_SOLVERS = list(solvers.PAPER_FAMILY)

GRID = {
    "problem": fields.PROBLEM,
    "model": fields.MODEL,
    "schedule": fields.SCHEDULE,
    "guidance": fields.GUIDANCE,
    "solver": fields.solver(DEFAULT_SOLVERS),
    "nfe": Field(int, default=[50], check=positive, help="model evaluations per solver"),
    "t_min": fields.t_min([1e-3]),
    "spacing": fields.spacing(["uniform"]),
    "seed": fields.SEED,
}
OPTIONS = {
    "n_samples": fields.n_samples(256),
    "t_max": fields.T_MAX,
    "ref_tol": fields.ref_tol(1e-10),
    "device": fields.DEVICE,
}


def path_rows(
    prob, sched, model, name: str, ts: torch.Tensor, traj: torch.Tensor, exact: torch.Tensor
) -> list[dict[str, Any]]:
    """One row per grid time of one solver's path ``traj`` against the exact ``exact``."""
    rows = []
    band = norm_band(prob, ts)
    for k, t in enumerate(ts):
        x, x_exact = traj[k], exact[k]
        finite = bool(torch.isfinite(x).all())
        stats = (
            norm_statistics(x)
            if finite
            else dict.fromkeys(("rms_norm", "mean_norm", "q05", "q50", "q95"), math.inf)
        )
        exact_rms = norm_statistics(x_exact)["rms_norm"]
        row = {
            "solver": name,
            "step": k,
            "t": float(t),
            **stats,
            "band_center": float(band.center[k]),
            "band_low": float(band.low[k]),
            "band_high": float(band.high[k]),
            "exact_rms_norm": exact_rms,
            "norm_ratio": stats["rms_norm"] / exact_rms if exact_rms > 0 else math.nan,
        }
        if float(sched.sigma(t)) > 0 and finite:
            nll = -prob.log_prob(x, t)
            nll_exact = -prob.log_prob(x_exact, t)
            row.update(
                nll=float(nll.mean()),
                nll_exact=float(nll_exact.mean()),
                nll_excess=float((nll - nll_exact).mean()),
            )
        else:  # the density of singular data at t = 0 is not a number
            row.update(nll=math.nan, nll_exact=math.nan, nll_excess=math.nan)
        if prob.subspace is not None and finite and float(sched.sigma(t)) > 0:
            dist = subspace_distance(_x0_prediction(model, sched, x, t), prob.subspace)
            row.update(x0_dist_mean=float(dist.mean()), x0_dist_max=float(dist.max()))
        else:
            row.update(x0_dist_mean=math.nan, x0_dist_max=math.nan)
        rows.append(row)
    return rows


def _x0_prediction(model, sched, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(x - sigma eps) / alpha with the model's eps (not the problem's)."""
    return (x - sched.sigma(t) * model(x, t)) / sched.alpha(t)


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    """All solvers of the ladder on one (problem, schedule, nfe, t_min, spacing, seed)."""
    with one_thread():
        sched = schedules.get(config["schedule"])
        prob = problems.get(config["problem"], sched)
        t_max = start_time(sched, config["t_max"])
        t_min = float(config["t_min"])
        if not t_min < t_max:
            raise ValueError(f"t_min {t_min:g} must be below t_max {t_max:g}")
        x_T = prob.sample_marginal(
            int(config["n_samples"]), t_max, torch.Generator().manual_seed(int(config["seed"]))
        )
        plans = {}
        for name in config["solver"]:
            solver = solvers.get(name)
            n = solver.steps_for_nfe(int(config["nfe"]))
            plans[name] = (solver, timesteps(n, config["spacing"], t_max, t_min, schedule=sched))
        times = union_times(*(ts for _, ts in plans.values()))
        rows = []
        for tag, net in guided_models(config, prob, sched, x_T.shape[0]):
            eps = prob.eps if net is None else net
            # With a network (or guidance) the paired paths are the exact paths of the model's
            # own ODE: the departure measured is the solver's; the band and densities stay
            # those of the (unconditional) data.
            # The rows never read the reference's accuracy: its second solve is skipped.
            tol = float(config["ref_tol"])
            ref = reference(prob, sched, x_T, times, tol=tol, model=net, accuracy=False)
            for name, (solver, ts) in plans.items():
                sol = solvers.solve(solver, eps, sched, x_T, ts, trajectory=True)
                exact = torch.stack([ref.at(t) for t in ts])
                for row in path_rows(prob, sched, eps, name, ts, sol.trajectory, exact):
                    row.update(
                        steps=len(ts) - 1,
                        nfe_used=sol.nfe,
                        diverged_step=sol.diverged.step if sol.diverged else None,
                    )
                    rows.append({**tag, **row})
        return rows


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per solver and cell: the largest departures and where along t they happen."""
    keys = [k for k in CELL_KEYS if k in df.columns]
    out = []
    for cell, cell_df in df.groupby(keys, sort=False, dropna=False):
        cell = cell if isinstance(cell, tuple) else (cell,)
        for name, g in cell_df.groupby("solver", sort=False):
            row = dict(zip(keys, cell, strict=True))
            dev = (g["rms_norm"] / g["band_center"] - 1.0).abs()
            paired = (g["norm_ratio"] - 1.0).abs()
            row.update(
                solver=name,
                steps=int(g["steps"].iloc[0]),
                nfe_used=int(g["nfe_used"].iloc[0]),
                max_norm_dev=_at_max(dev, g)[0],
                t_max_norm_dev=_at_max(dev, g)[1],
                max_paired_norm_dev=_at_max(paired, g)[0],
                t_max_paired_norm_dev=_at_max(paired, g)[1],
                max_nll_excess=_at_max(g["nll_excess"], g)[0],
                t_max_nll_excess=_at_max(g["nll_excess"], g)[1],
                final_nll_excess=float(g["nll_excess"].iloc[-1]),
                max_x0_dist=float(g["x0_dist_max"].max()),  # often at t_max, where 1/alpha is big
                final_x0_dist=float(g["x0_dist_max"].iloc[-1]),
                outside_band_steps=int(
                    ((g["rms_norm"] < g["band_low"]) | (g["rms_norm"] > g["band_high"])).sum()
                ),
                diverged=not pd.isna(g["diverged_step"].iloc[0]),
            )
            out.append(row)
    return pd.DataFrame(out)


def _at_max(values: pd.Series, g: pd.DataFrame) -> tuple[float, float]:
    values = values.replace([math.inf], math.nan)
    if values.notna().sum() == 0:
        return math.nan, math.nan
    i = values.idxmax()
    return float(values[i]), float(g.loc[i, "t"])


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path) -> list[Path]:
    """Per cell: norms along sampling against the exact band, paired departures, NLL excess."""
    from ..plots.norms import plot_norms

    return plot_norms(df, folder, cell_keys=CELL_KEYS)


def format_table(summary: pd.DataFrame) -> str:
    """The departures of one cell's solvers as a fixed-width text table."""
    cols = [
        "solver",
        "steps",
        "NFE",
        "max |norm dev|",
        "at t",
        "max NLL excess",
        "at t",
        "final NLL excess",
        "final x0 dist",
    ]
    lines = []
    for _, r in summary.iterrows():
        lines.append(
            [
                r["solver"],
                str(r["steps"]),
                str(r["nfe_used"]),
                f"{r['max_paired_norm_dev']:.2e}",
                f"{r['t_max_paired_norm_dev']:.3g}",
                f"{r['max_nll_excess']:.2e}",
                f"{r['t_max_nll_excess']:.3g}",
                f"{r['final_nll_excess']:.2e}",
                f"{r['final_x0_dist']:.1e}",
            ]
        )
    return fixed_width(cols, lines)


def format_summary(result: StudyResult) -> str | None:
    """The largest departures per solver, one fixed-width table per cell."""
    summary = read_summary(result)
    if summary is None or "max_nll_excess" not in summary.columns:
        return None
    return cell_blocks(summary, CELL_KEYS, format_table)


COMMAND = Command(
    help="sample norms and densities along sampling paths at equal NFE (the paper's "
    "manifold-departure diagnosis)",
    out="results/norms",
    defaults={"problem": ["gaussian-lowrank"], "schedule": ["linear"]},
    aliases={"solver": ("--solvers",)},
)

KIND = StudyKind(
    name="norms",
    grid=GRID,
    options=OPTIONS,
    ladder_axes=("guidance", "solver"),
    run_cell=run_cell,
    version="1",
    summarize=summarize,
    plot=plot,
    description="sample norms and densities along sampling paths vs the exact marginals",
    format_summary=format_summary,
    command=COMMAND,
    estimate=cell_cost,
)
register(KIND)
