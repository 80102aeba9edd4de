"""The "quality" study: sample quality against steps, the shape of the paper's FID table.

PNDM's headline (Liu et al. 2022, Tables 1-2) is FID against steps for DDIM, S-PNDM and
F-PNDM, and "50 F-PNDM steps match 1000 DDIM steps". Here the truth is known, so the metric
is a distance to the true distribution at the grid's end time t_min (the data when
t_min = 0):

- Gaussian problems with the exact eps: every solver is an affine map of x_T, so the law of
  its output is the push-forward N(M m + c, M S M^T) of the starting Gaussian, with M and c
  read off d + 1 solves (:func:`gaussian_pushforward`). The W2 distance to the target is then
  exact: no Monte Carlo, no error bar (metric ``w2``).
- Mixtures: squared Frechet distance to the exact moments (``frechet``), squared sliced W2 and
  unbiased MMD^2 against exact samples (``sliced_w2``, ``mmd``), mean NLL under the true
  density (``nll``), each with its bootstrap error, its floor (what exact samples score) and,
  with ``paired = true``, its excess over the exact ODE solution from the same x_T.
- The digits network: Frechet in pixel space (``frechet``) and in the feature space of the
  shipped digits classifier (``frechet_features``), against the 1797 real digits.

A cell is one (problem, model, schedule, t_min, spacing, seed); its ladder is solver x steps.
``summarize`` finds, per solver and metric, the first step count (and its NFE) at which the
solver matches the reference sampler (``ddim`` at 1000 steps by default); ``plot`` writes the
paper-shaped table and a figure per cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import problems, schedules, solvers
from .._tensor import DTYPE
from ..grids import start_time, timesteps
from ..laws import GaussianLaw, exact_law
from ..metrics.distribution import (
    Estimate,
    FrechetTo,
    floor_of,
    gaussian_w2,
    mc_estimate,
    median_bandwidth,
    metric_paired_bootstrap,
    mixture_moments,
    mmd2_estimate,
    mmd2_to,
    nll_estimate,
    paired_bootstrap,
    psd_factor,
    random_directions,
    sliced_w2_to,
)
from ..metrics.manifold import expected_nll
from ..study import Command, Field, Shortcut, StudyKind, StudyResult, register
from .common import (
    cell_cost,
    eps_model,
    fields,
    one_thread,
    positive,
    read_summary,
    read_table,
    sampler_names,
)

CELL_KEYS = ["problem", "model", "schedule", "t_min", "spacing", "seed"]
DEFAULT_STEPS = [10, 20, 50, 100, 250, 1000]
DEFAULT_SOLVERS = ["ddim", "s-pndm", "f-pndm"]
METRICS = ("w2", "frechet", "sliced_w2", "mmd", "nll", "frechet_features")
PRIORS = ("marginal", "standard")

#: How many times the affine prediction may miss the solver's output, relative to its scale,
#: before the push-forward refuses (round-off of a linear solve is ~1e-14).
AFFINE_TOL = 1e-8


def gaussian_pushforward(
    solver: str | solvers.Solver,
    problem,
    ts: torch.Tensor,
    *,
    prior: str = "marginal",
    model=None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean, covariance factor and NFE of the law of ``solver``'s output from a Gaussian start.

    The start is the exact marginal p_{ts[0]} (``prior="marginal"``) or N(0, I)
    (``"standard"``). With a Gaussian problem's exact eps (affine in x), one solve of the batch
    [m, m + L e_1, ..., m + L e_d, m + L z] gives the output law N(S(m), F F^T) with
    F = [S(m + L e_i) - S(m)]_i. The extra point checks the affinity: a solver or model that is
    not affine in x (a network, clipping) raises ValueError instead of giving a wrong W2.
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    sched = problem.schedule
    mean_in, factor_in = start_law(problem, float(ts[0]), prior)
    d = problem.dim
    z = torch.randn(d, generator=torch.Generator().manual_seed(12345), dtype=DTYPE)
    batch = torch.cat([mean_in[None], mean_in + factor_in.T, (mean_in + factor_in @ z)[None]])
    sol = solvers.solve(solver, model if model is not None else problem.eps, sched, batch, ts)
    out = sol.x
    if not bool(torch.isfinite(out).all()):
        nan = torch.full((d,), math.nan, dtype=DTYPE)
        return nan, torch.full((d, d), math.nan, dtype=DTYPE), sol.nfe
    centre, factor = out[0], (out[1 : d + 1] - out[0]).T
    miss = float((out[d + 1] - (centre + factor @ z)).norm())
    scale = float(out.norm()) + 1.0
    if miss > AFFINE_TOL * scale:
        name = solver if isinstance(solver, str) else solver.name
        raise ValueError(
            f"{name} on {problem.name} is not affine in x (miss {miss:.2g}): the exact W2 needs "
            "a Gaussian problem with its exact eps"
        )
    return centre, factor, sol.nfe


def start_law(problem, t_max: float, prior: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, covariance factor) of the starting Gaussian: p_{t_max} (one Gaussian) or N(0, I)."""
    d = problem.dim
    if prior == "standard":
        return torch.zeros(d, dtype=DTYPE), torch.eye(d, dtype=DTYPE)
    return gaussian_marginal(problem, t_max)


def gaussian_marginal(problem, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, covariance factor) of a Gaussian problem's p_t from its own eigendecomposition,
    U diag(sqrt(abar l + sigma^2)): the same numbers its exact flow uses, so the flow's
    push-forward lands on it to round-off (a factor from a new eigh of the covariance differs
    by sqrt(1e-16) = 1e-8 along the null directions at t = 0)."""
    if not _is_gaussian(problem):
        raise ValueError(f"{problem.name} is not a single Gaussian")
    t = torch.as_tensor(float(t), dtype=DTYPE)
    sched = problem.schedule
    abar = sched.alpha_bar(t)
    scale = torch.sqrt(abar * problem.evals[0] + (1.0 - abar))
    evecs = problem.evecs[0] if problem.evecs is not None else torch.eye(problem.dim, dtype=DTYPE)
    return sched.alpha(t) * problem.means[0], evecs * scale


def _is_gaussian(problem) -> bool:
    return getattr(problem, "K", 0) == 1 and hasattr(problem, "flow")


GRID = {
    "problem": fields.PROBLEM,
    "model": fields.MODEL,
    "schedule": fields.SCHEDULE,
    "solver": fields.solver(DEFAULT_SOLVERS, stochastic=True),
    "steps": fields.steps(DEFAULT_STEPS, help="step counts"),
    "t_min": fields.t_min([0.0]),
    "spacing": fields.spacing(["uniform"]),
    "seed": fields.SEED,
}


def _metrics_check(value: list) -> str | None:
    if not value:
        return "name at least one metric"
    bad = [m for m in value if m not in ("auto", *METRICS)]
    return f"unknown metric(s) {', '.join(bad)}; choose from {', '.join(METRICS)}" if bad else None


def _at_least(low: int) -> Callable[[int], str | None]:
    def check(value: int) -> str | None:
        return None if value >= low else f"must be >= {low}"

    return check


OPTIONS = {
    "n_samples": fields.n_samples(2000, check=_at_least(16), help="samples per cell"),
    "t_max": fields.T_MAX,
    "prior": Field(
        str,
        default="marginal",
        choices=PRIORS,
        help="start law: the exact marginal at t_max or N(0, I)",
    ),
    "metrics": Field(
        list,
        default=["auto"],
        items=str,
        check=_metrics_check,
        help=f"auto or some of {', '.join(METRICS)}",
    ),
    "paired": Field(
        bool,
        default=True,
        help="also score the exact ODE solution from the same x_T (the paired excess)",
    ),
    "n_boot": Field(int, default=32, check=_at_least(2), help="bootstrap resamples"),
    "n_floor": Field(int, default=16, check=_at_least(2), help="exact-sample draws of the floor"),
    "n_projections": Field(int, default=128, check=positive, help="directions of sliced W2"),
    "ref_tol": fields.ref_tol(1e-10),
    "match_solver": Field(
        str, default="ddim", choices=sampler_names, help="the reference sampler others must match"
    ),
    "match_steps": Field(int, default=1000, check=positive, help="its step count"),
    "device": fields.DEVICE,
    "network_dtype": Field(
        str,
        default="float64",
        choices=("float64", "float32"),
        help="precision the network computes in (float32: 6x faster on a CPU; no paired runs)",
    ),
}


def auto_metrics(problem, model: str, t_min: float) -> list[str]:
    """Gaussian + exact eps: the exact W2. Otherwise Frechet, sliced W2, MMD, and the NLL where
    the target has a density; the digits add the classifier-feature Frechet."""
    if _is_gaussian(problem) and model == "exact":
        return ["w2"]
    out = ["frechet", "sliced_w2", "mmd"]
    if _has_density(problem, t_min):
        out.append("nll")
    if problem.name == "digits-data":
        out = ["frechet", "frechet_features"]
    return out


def _has_density(problem, t_min: float) -> bool:
    return t_min > 0 or float(problem.evals.min()) > 0


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    sched = schedules.get(config["schedule"])
    prob = problems.get(config["problem"], sched)
    t_max = start_time(sched, config["t_max"])
    t_min = float(config["t_min"])
    if not t_min < t_max:
        raise ValueError(f"t_min {t_min:g} must be below t_max {t_max:g}")
    model_name = config.get("model", "exact")
    metrics = list(config["metrics"])
    if metrics == ["auto"]:
        metrics = auto_metrics(prob, model_name, t_min)
    grids = {
        n: timesteps(n, config["spacing"], t_max, t_min, schedule=sched) for n in config["steps"]
    }
    tag = {"match_solver": config["match_solver"], "match_steps": int(config["match_steps"])}
    if "w2" in metrics:
        if not (_is_gaussian(prob) and model_name == "exact"):
            raise ValueError("metric w2 (exact) needs a Gaussian problem with model = exact")
        if len(metrics) > 1:
            raise ValueError("metric w2 (exact) is not combined with Monte Carlo metrics")
        with one_thread():
            rows = _w2_rows(prob, config, grids, t_min)
    elif model_name == "exact":
        with one_thread():
            rows = _mc_rows(prob, sched, config, grids, t_max, t_min, metrics)
    else:
        rows = _mc_rows(prob, sched, config, grids, t_max, t_min, metrics)
    return [{**r, **tag} for r in rows]


def _w2_rows(prob, config, grids, t_min: float) -> list[dict[str, Any]]:
    target_mean, target_factor = gaussian_marginal(prob, t_min)
    prior = config["prior"]
    ts = next(iter(grids.values()))  # every grid of the ladder runs from t_max to t_min
    ode = _exact_flow_w2(prob, ts[0], ts[-1], prior, target_mean, target_factor)
    rows = []
    for name in config["solver"]:
        solver = solvers.get(name)
        for n, ts in grids.items():
            row = {"solver": name, "steps": n, "metric": "w2"}
            if n < solver.min_steps:
                rows.append({**row, "note": f"needs at least {solver.min_steps} steps"})
                continue
            if solver.stochastic:  # its law includes the noise: one probe run (odebench.laws)
                law = exact_law(solver, prob, ts, start=GaussianLaw(*start_law(prob, ts[0], prior)))
                mean, factor, nfe = law.mean, law.factor, solver.nfe_on(prob.schedule, ts)
            else:
                mean, factor, nfe = gaussian_pushforward(solver, prob, ts, prior=prior)
            value = gaussian_w2(mean, factor, target_mean, target_factor)
            est = Estimate(value=value, paired=value - ode, paired_se=0.0)
            note = {} if math.isfinite(value) else {"note": "non-finite output (diverged)"}
            rows.append({**row, "nfe": nfe, **_estimate_columns(est), **note})
    return rows


def _exact_flow_w2(prob, t0, t1, prior, target_mean, target_factor) -> float:
    """W2 of the exact ODE's output law from t0 to t1 (0 up to round-off from the exact
    marginal)."""
    mean_in, factor_in = start_law(prob, float(t0), prior)
    centre = prob.flow(mean_in[None], t0, t1)[0]
    factor = (prob.flow(mean_in + factor_in.T, t0, t1) - centre).T
    return gaussian_w2(centre, factor, target_mean, target_factor)


def _estimate_columns(est: Estimate) -> dict[str, float]:
    return {
        "value": est.value,
        "se": est.se,
        "floor": est.floor,
        "floor_se": est.floor_se,
        "excess": est.excess,
        "excess_se": est.excess_se,
        "paired": est.paired,
        "paired_se": est.paired_se,
    }


def _mc_rows(prob, sched, config, grids, t_max, t_min, metrics) -> list[dict[str, Any]]:
    from ..reference import reference

    n = int(config["n_samples"])
    seed = int(config["seed"])
    x_T = _start_samples(prob, n, t_max, config["prior"], seed)
    dtype = getattr(torch, config.get("network_dtype", "float64"))
    if dtype != torch.float64 and config["paired"]:
        raise ValueError("paired = true needs network_dtype = float64 (an adaptive reference)")
    model = config.get("model", "exact")
    net = eps_model(model, prob, sched, config.get("device", "cpu"), dtype)
    eps = prob.eps if net is None else net
    x_ode = None
    if config["paired"]:
        times = torch.tensor([t_max, t_min], dtype=DTYPE)
        tol = float(config["ref_tol"])  # the rows never read the reference's accuracy
        x_ode = reference(prob, sched, x_T, times, tol=tol, model=net, accuracy=False).at(t_min)
    # The metrics work on small matrices (64 x 64 SVDs, sorts of projections), where a pool
    # of threads mostly waits on itself: one thread, whatever the network used. (On an H200's
    # host, with torch's 16 threads, they took 1.0 s of one run's cell and 6.3 s of another's.)
    with one_thread():
        scorers = _scorers(prob, t_min, n, metrics, config, seed, x_ode)
    rows = []
    for name in config["solver"]:
        solver = solvers.get(name)
        for steps, ts in grids.items():
            row = {"solver": name, "steps": steps}
            if steps < solver.min_steps:
                rows += [
                    {**row, "metric": m, "note": f"needs at least {solver.min_steps} steps"}
                    for m in metrics
                ]
                continue
            noise = (
                {"generator": torch.Generator().manual_seed(seed + 99)} if solver.stochastic else {}
            )
            sol = solvers.solve(solver, eps, sched, x_T, ts, **noise)
            finite = bool(torch.isfinite(sol.x).all())
            for m in metrics:
                out = {**row, "metric": m, "nfe": sol.nfe}
                if not finite:
                    where = str(sol.diverged) if sol.diverged else "non-finite samples"
                    rows.append({**out, "value": math.nan, "note": where})
                    continue
                with one_thread():
                    est = scorers[m](sol.x)
                rows.append({**out, **_estimate_columns(est)})
    return rows


def _start_samples(prob, n: int, t_max: float, prior: str, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if prior == "standard":
        return torch.randn(n, prob.dim, generator=gen, dtype=DTYPE)
    return prob.sample_marginal(n, t_max, gen)


def _scorers(prob, t_min: float, n: int, metrics, config, seed: int, x_ode) -> dict:
    """One function per metric: samples -> Estimate (paired with ``x_ode``, the exact ODE
    solution from the same x_T, where it is not None).

    What does not depend on the sampler is computed here, once per cell: each metric's floor
    (from ``n_floor`` exact samples of size n), its target's fixed parts, and the exact side
    of the paired bootstrap (``x_ode`` scored on the resamples every row shares), so every
    solver and step count is compared with the same floor and the same exact side.
    """
    draw_gen = torch.Generator().manual_seed(seed + 1_000_003)

    def exact(k: int) -> torch.Tensor:
        return prob.sample_marginal(k, t_min, draw_gen)

    n_boot, n_floor = int(config["n_boot"]), int(config["n_floor"])
    y = prob.sample_marginal(n, t_min, torch.Generator().manual_seed(seed + 2_000_003))

    def boot_gen() -> torch.Generator:
        return torch.Generator().manual_seed(seed + 7)

    fns: dict = {}
    if "frechet" in metrics:
        mean, cov = mixture_moments(prob, t_min)
        factor = psd_factor(cov)
        fns["frechet"] = (FrechetTo(mean, factor), exact, lambda x: x)
    if "frechet_features" in metrics:
        fns["frechet_features"] = _feature_metric(prob, t_min, exact)
    if "sliced_w2" in metrics:
        gen = torch.Generator().manual_seed(seed + 3)
        directions = random_directions(prob.dim, int(config["n_projections"]), gen)
        fns["sliced_w2"] = (sliced_w2_to(y, directions), exact, lambda x: x)
    out = {}
    for name, (metric, draw, transform) in fns.items():
        floor = floor_of(metric, draw, n, n_floor)
        side = None
        if x_ode is not None:
            side = metric_paired_bootstrap(metric, transform(x_ode), n_boot, boot_gen())
        out[name] = _mc_scorer(metric, draw, transform, floor, n_boot, n_floor, side)
    if "mmd" in metrics:
        target = mmd2_to(y, median_bandwidth(y[:2000]))
        mmd_floor = floor_of(target, exact, n, n_floor)
        mmd_side = None
        if x_ode is not None:
            ko = target.prepared(x_ode)
            mmd_side = paired_bootstrap(lambda idx: target.score(ko, idx), n, n_boot, boot_gen())

        def mmd_score(x):
            return mmd2_estimate(
                x,
                target,
                target.bandwidth,
                exact,
                n_boot=n_boot,
                n_floor=n_floor,
                floor=mmd_floor,
                paired=mmd_side,
            )

        out["mmd"] = mmd_score
    if "nll" in metrics:
        if not _has_density(prob, t_min):
            raise ValueError(f"metric nll: {prob.name} has no density at t_min = {t_min:g}")
        h, h_se = expected_nll(prob, t_min, n_mc=20000, generator=torch.Generator().manual_seed(5))
        entropy = (float(h[0]), float(h_se[0]))
        out["nll"] = lambda x: nll_estimate(
            x, lambda s: prob.log_prob(s, t_min), entropy, x_exact_ode=x_ode
        )
    missing = [m for m in metrics if m not in out]
    if missing:
        raise ValueError(f"metric(s) {', '.join(missing)} not available for {prob.name}")
    return out


def _mc_scorer(metric, draw, transform, floor, n_boot: int, n_floor: int, paired):
    def score(x):
        return mc_estimate(
            metric,
            transform(x),
            draw,
            n_boot=n_boot,
            n_floor=n_floor,
            floor=floor,
            paired=paired,
        )

    return score


def _feature_metric(prob, t_min: float, exact):
    """Frechet distance in the digits classifier's feature space to the data's features.

    The target moments are those of the features of all 1797 digits (the data distribution
    is their empirical law, so these moments are exact); exact draws are data digits.
    """
    if prob.name != "digits-data" or t_min != 0.0:
        raise ValueError("metric frechet_features needs the digits-data problem with t_min = 0")
    from ..models.classifier import digits_features, load_digits_classifier

    clf = load_digits_classifier()
    feats = digits_features(prob.means, clf)
    mean = feats.mean(0)
    factor = (feats - mean).T / math.sqrt(feats.shape[0])

    def features(x: torch.Tensor) -> torch.Tensor:
        return digits_features(x, clf)

    return (
        FrechetTo(mean, factor),  # the data's 64 x 1797 factor narrowed to 64 x 64, once
        lambda k: features(exact(k)),
        features,
    )


# -- summaries ---------------------------------------------------------------------------------
def _cell_keys(df: pd.DataFrame) -> list[str]:
    return [k for k in CELL_KEYS if k in df.columns]


def matches(row: pd.Series, ref: pd.Series, column: str = "excess") -> bool:
    """Whether ``row`` is no worse than ``ref`` on ``column`` within two combined errors.

    Magnitudes are compared: an NLL excess below zero means samples piled onto the modes
    (under-dispersed), not better ones, and a negative Frechet or MMD excess is noise.
    """
    se = "excess_se" if column == "excess" else f"{column}_se"
    a, b = abs(float(row[column])), abs(float(ref[column]))
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    sa, sb = (float(r.get(se, 0.0)) for r in (row, ref))
    sa, sb = (0.0 if not math.isfinite(s) else s for s in (sa, sb))
    return a <= b + 2.0 * math.hypot(sa, sb)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell, metric and solver: the fewest steps (and NFE) from which the solver matches
    the reference sampler at every larger step count
    (the cell's ``match_solver`` at ``match_steps``, carried in every row).

    Two criteria: ``excess`` (distance to the target over the exact-sample floor, what a user
    with this many samples can see) and ``paired`` (the part the solver adds over the exact ODE
    solution from the same x_T, far sharper). A solver that never matches gets NaN.
    """
    if "value" not in df.columns:
        return pd.DataFrame()
    keys = _cell_keys(df)
    out = []
    for cell, group in df.groupby([*keys, "metric"], sort=False, dropna=False):
        cell = dict(zip([*keys, "metric"], cell, strict=True))
        match_solver, match_steps = group["match_solver"].iloc[0], int(group["match_steps"].iloc[0])
        ref = group[(group["solver"] == match_solver) & (group["steps"] == match_steps)]
        ref = ref.iloc[0] if len(ref) else None
        for name, g in group.groupby("solver", sort=False):
            g = g[g["value"].notna()].sort_values("nfe")
            row = {**cell, "solver": name, "reference": f"{match_solver}@{match_steps}"}
            for column in ("excess", "paired"):
                hit = None
                if ref is not None and column in g.columns:
                    hit = _first_lasting_match(g, ref, column)
                tag = "" if column == "excess" else "_paired"
                row[f"match_steps{tag}"] = int(hit["steps"]) if hit is not None else math.nan
                row[f"match_nfe{tag}"] = int(hit["nfe"]) if hit is not None else math.nan
            out.append(row)
    return pd.DataFrame(out)


def _first_lasting_match(g: pd.DataFrame, ref: pd.Series, column: str):
    """The row with the fewest NFE from which every larger NFE matches ``ref`` too (a noisy
    metric can match by chance at few steps, where its error bar is wide)."""
    hit = None
    for _, r in g.sort_values("nfe", ascending=False).iterrows():
        if not matches(r, ref, column):
            break
        hit = r
    return hit


def _fmt(value: float, se: float) -> str:
    if not math.isfinite(value):
        return "nan"
    if not math.isfinite(se) or se == 0.0:
        return f"{value:.3g}"
    return f"{value:.3g} ± {se:.1g}"


def markdown_table(df: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The paper's shape: one block per cell and metric, solvers by rows, steps by columns."""
    keys = _cell_keys(df)
    lines = []
    for cell, group in df.groupby([*keys, "metric"], sort=False, dropna=False):
        title = ", ".join(f"{k}={v}" for k, v in zip([*keys, "metric"], cell, strict=True))
        metric = cell[-1]
        what = "exact W2" if metric == "w2" else f"{metric}: excess over exact samples ± se"
        steps = sorted(group["steps"].unique())
        head = ["solver", *[str(s) for s in steps], "matches ref at NFE", "(paired)"]
        lines += [f"**{title}** ({what})", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + "---|" * len(head))
        for name, g in group.groupby("solver", sort=False):
            cells = []
            for s in steps:
                r = g[g["steps"] == s]
                if not len(r) or "excess" not in r or not math.isfinite(float(r["value"].iloc[0])):
                    cells.append("-")
                else:
                    r = r.iloc[0]
                    cells.append(_fmt(float(r["excess"]), float(r["excess_se"])))
            sel = summary
            for k, v in zip([*keys, "metric"], cell, strict=True):
                sel = sel[sel[k] == v]
            sel = sel[sel["solver"] == name]
            m = sel.iloc[0] if len(sel) else None
            match = _int_or_dash(m["match_nfe"]) if m is not None else "-"
            measured = "paired" in g.columns and bool(g["paired"].notna().any())
            paired = _int_or_dash(m["match_nfe_paired"]) if m is not None and measured else "-"
            lines.append("| " + " | ".join([name, *cells, match, paired]) + " |")
        lines.append("")
    return "\n".join(lines)


def _int_or_dash(v) -> str:
    return str(int(v)) if v == v else "never"


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path) -> list[Path]:
    """A figure per cell (each metric against NFE) and ``quality_table.md``."""
    from ..plots.quality import plot_quality

    folder = Path(folder)
    paths = plot_quality(df, folder, cell_keys=CELL_KEYS)
    if summary is not None and len(summary):
        table = folder / "quality_table.md"
        table.write_text(markdown_table(df, summary))
        paths.append(table)
    return paths


def format_summary(result: StudyResult) -> str | None:
    """The paper-shaped table: one block per cell and metric, solvers by steps."""
    summary = read_summary(result)
    if summary is None or "match_nfe" not in summary.columns:
        return None
    return "\n" + markdown_table(read_table(result), summary)


def _match(text: str) -> dict[str, Any]:
    """``--match SOLVER@STEPS``: the reference sampler and its step count."""
    solver, sep, steps = text.partition("@")
    if not sep or not steps.isdigit():
        raise ValueError(f"--match must look like SOLVER@STEPS (e.g. ddim@1000), got {text!r}")
    return {"match_solver": solver, "match_steps": int(steps)}


COMMAND = Command(
    help="sample quality against steps: exact W2 for Gaussians, Frechet, sliced W2, MMD and "
    "NLL with error bars for mixtures (the paper's FID table, where the truth is known)",
    out="results/quality",
    defaults={"problem": ["gaussian-lowrank", "gmm-2d"], "schedule": ["ddpm-linear-1000"]},
    aliases={"solver": ("--solvers",)},
    shortcuts=(
        Shortcut(
            "--match",
            help="the reference sampler SOLVER@STEPS others must match (default ddim@1000)",
            sets=_match,
            metavar="SOLVER@STEPS",
        ),
    ),
)

KIND = StudyKind(
    name="quality",
    grid=GRID,
    options=OPTIONS,
    ladder_axes=("solver", "steps"),
    run_cell=run_cell,
    version="2",
    summarize=summarize,
    plot=plot,
    description="sample quality against steps: exact W2, Frechet, sliced W2, MMD, NLL",
    format_summary=format_summary,
    command=COMMAND,
    estimate=cell_cost,
)
register(KIND)
