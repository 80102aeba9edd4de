"""Figures for the studies (matplotlib, Agg backend, written as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .metrics import fit_order

CELL_KEYS = ["problem", "model", "schedule", "t_min", "spacing", "seed"]
STYLE = {
    "ddim": ("C0", "o"),
    "s-pndm": ("C1", "s"),
    "f-pndm": ("C2", "^"),
    "fon": ("C3", "v"),
    "euler": ("C4", "D"),
    "heun": ("C5", "P"),
    "rk4": ("C6", "X"),
    "pie": ("C7", "<"),
    "prk": ("C8", ">"),
    "ab2": ("C9", "h"),
    "ab3": ("k", "*"),
    "ipndm": ("0.5", "p"),
}


def _style(name: str) -> tuple[str, str]:
    return STYLE.get(name, ("k", "."))


def _model_tag(keys: dict, sep: str) -> str:
    model = keys.get("model", "exact")
    return "" if model in (None, "exact") else f"{sep}{model}"


def _cell_title(keys: dict) -> str:
    return (
        f"{keys['problem']}{_model_tag(keys, ' with network ')}, {keys['schedule']} schedule, "
        f"t_min = {keys['t_min']:g}, "
        f"{keys['spacing']} grid" + (f", seed {keys['seed']}" if keys.get("seed") else "")
    )


def _cell_name(keys: dict, prefix: str) -> str:
    return (
        f"{prefix}_{keys['problem']}{_model_tag(keys, '_')}_{keys['schedule']}_"
        f"tmin{keys['t_min']:g}_"
        f"{keys['spacing']}" + (f"_seed{keys['seed']}" if keys.get("seed") else "")
    )


def plot_orders(df: pd.DataFrame, summary: pd.DataFrame | None, folder) -> list[Path]:
    """One figure per cell: error against steps and against NFE, fitted slopes dashed."""
    folder = Path(folder)
    local = "t0" in df.columns and df["t0"].notna().any()
    keys = [k for k in CELL_KEYS if k in df.columns]
    cells = list(df.groupby(keys, sort=False))
    paths = []
    for cell, cell_df in cells:
        cell_keys = dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True))
        fig = _local_figure(cell_df) if local else _global_figure(cell_df)
        fig.suptitle(_cell_title(cell_keys), fontsize=10)
        name = "orders" if len(cells) == 1 else _cell_name(cell_keys, "orders")
        path = folder / f"{name}{'_local' if local else ''}.png"
        fig.savefig(path, dpi=130, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    if len(cells) > 1 and summary is not None and not local:
        paths.append(plot_orders_overview(summary, folder / "orders_overview.png"))
    return paths


def plot_orders_overview(summary: pd.DataFrame, path: Path) -> Path:
    """Measured order (with its CI) of every solver in every cell, against the declared one.

    Rows: problems; columns: t_min; x: schedule; one marker per solver; hollow markers are
    fits whose verdict is "inconclusive" (CI too wide to tell orders apart).
    """
    label = summary["problem"]
    if "model" in summary.columns and (summary["model"] != "exact").any():
        label = summary["problem"] + " [" + summary["model"] + "]"
    problems = list(dict.fromkeys(label))
    t_mins = sorted(set(summary["t_min"]), reverse=True)
    schedules = list(dict.fromkeys(summary["schedule"]))
    names = list(dict.fromkeys(summary["solver"]))
    fig, axes = plt.subplots(
        len(problems),
        len(t_mins),
        squeeze=False,
        sharey=True,
        figsize=(4.6 * len(t_mins), 2.9 * len(problems)),
    )
    width = 0.8 / max(len(names), 1)
    for i, prob in enumerate(problems):
        for j, t_min in enumerate(t_mins):
            ax = axes[i][j]
            sub = summary[(label == prob) & (summary["t_min"] == t_min)]
            for k, name in enumerate(names):
                color, marker = _style(name)
                rows = sub[sub["solver"] == name].set_index("schedule")
                for m, sched in enumerate(schedules):
                    if sched not in rows.index:
                        continue
                    r = rows.loc[sched]
                    x = m + (k - (len(names) - 1) / 2) * width
                    lo, hi = r["measured"] - r["ci_low"], r["ci_high"] - r["measured"]
                    face = "none" if r["verdict"] == "inconclusive" else color
                    ax.errorbar(
                        x,
                        r["measured"],
                        yerr=[[lo], [hi]],
                        fmt=marker,
                        color=color,
                        mfc=face,
                        ms=5,
                        capsize=2,
                        lw=1,
                        label=name if (m == 0 and i == 0 and j == 0) else None,
                    )
                    ax.hlines(
                        r["declared"], x - width / 2, x + width / 2, color=color, lw=2, alpha=0.5
                    )
            ax.set_xticks(range(len(schedules)), schedules, fontsize=8)
            ax.set_title(f"{prob}, t_min = {t_min:g}", fontsize=9)
            ax.set_ylim(0, 5)
            ax.grid(True, axis="y", alpha=0.3)
        axes[i][0].set_ylabel("measured global order")
    axes[0][0].legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle(
        "Measured order (95% CI) vs declared order (short bars); hollow: inconclusive", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def _draw_ladder(
    ax, x: np.ndarray, err: np.ndarray, reliable: np.ndarray, name: str, x_is_step_size: bool
) -> None:
    color, marker = _style(name)
    h = x if x_is_step_size else 1.0 / x
    fit = fit_order(h, err, exclude=~reliable)
    label = name if not fit.ok else f"{name}: p = {fit.slope:.2f}"
    ax.loglog(x, err, marker=marker, color=color, lw=1, ms=4, label=label)
    ax.loglog(x[~reliable], err[~reliable], "x", color="k", ms=7, mew=1)
    if fit.ok:
        used = np.asarray(fit.used)
        xs = np.array([x[used].min(), x[used].max()])
        hs = xs if x_is_step_size else 1.0 / xs
        ax.loglog(xs, np.exp(fit.intercept) * hs**fit.slope * 0.6, "--", color=color, lw=1)


def _global_figure(cell_df: pd.DataFrame):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for name, g in cell_df.groupby("solver", sort=False):
        g = g.sort_values("steps")
        err = g["error_rms"].to_numpy(float)
        rel = g["reliable"].to_numpy(bool)
        _draw_ladder(axes[0], g["steps"].to_numpy(float), err, rel, name, False)
        _draw_ladder(axes[1], g["nfe"].to_numpy(float), err, rel, name, False)
    axes[0].set_xlabel("steps N")
    axes[1].set_xlabel("model evaluations (NFE)")
    axes[0].set_ylabel("RMS end-point error vs reference")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    axes[1].text(
        0.99,
        0.01,
        "dashed: least-squares fit over the chosen window\n"
        "x: reference not 100x more accurate (not fitted)",
        transform=axes[1].transAxes,
        ha="right",
        va="bottom",
        fontsize=7,
    )
    return fig


def _local_figure(cell_df: pd.DataFrame):
    regions = sorted(cell_df["t0"].unique(), reverse=True)
    fig, axes = plt.subplots(
        1, len(regions), figsize=(3.6 * len(regions), 3.8), sharey=True, squeeze=False
    )
    for ax, t0 in zip(axes[0], regions, strict=True):
        for name, g in cell_df[cell_df["t0"] == t0].groupby("solver", sort=False):
            g = g.sort_values("h")
            _draw_ladder(
                ax,
                g["h"].to_numpy(float),
                g["error_rms"].to_numpy(float),
                g["reliable"].to_numpy(bool),
                name,
                True,
            )
        ax.set_title(f"one step from t0 = {t0:g}", fontsize=9)
        ax.set_xlabel("step size h")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("local error (slope = order + 1)")
    return fig


NORM_KEYS = ["problem", "model", "schedule", "nfe", "t_min", "spacing", "seed"]


def plot_norms(df: pd.DataFrame, folder) -> list[Path]:
    """Per cell: the norm of x_t along sampling with the exact band (the paper's norm figure),
    the paired norm departure, the NLL excess and the x0-prediction's distance to the data set.
    """
    folder = Path(folder)
    keys = [k for k in NORM_KEYS if k in df.columns]
    cells = list(df.groupby(keys, sort=False))
    paths = []
    for cell, g in cells:
        ck = dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True))
        has_set = g["x0_dist_max"].notna().any()
        ncol = 4 if has_set else 3
        fig, axes = plt.subplots(1, ncol, figsize=(4.4 * ncol, 3.8))
        first = g[g["solver"] == g["solver"].iloc[0]].sort_values("t")
        pos = first["t"] > 0
        axes[0].fill_between(
            first["t"][pos],
            first["band_low"][pos],
            first["band_high"][pos],
            color="0.85",
            label="exact p_t: E|x|^2 -+ 2 sd",
        )
        axes[0].plot(
            first["t"][pos],
            first["band_center"][pos],
            color="0.4",
            lw=1,
            label="exact sqrt(E|x_t|^2)",
        )
        for name, s in g.groupby("solver", sort=False):
            s = s[s["t"] > 0].sort_values("t")
            color, marker = _style(name)
            lab = f"{name} ({int(s['steps'].iloc[0])} steps, {int(s['nfe_used'].iloc[0])} NFE)"
            axes[0].plot(s["t"], s["rms_norm"], color=color, lw=1.2, label=lab)
            axes[1].plot(s["t"], s["norm_ratio"] - 1.0, color=color, lw=1.2, marker=marker, ms=2)
            axes[2].plot(s["t"], s["nll_excess"], color=color, lw=1.2, marker=marker, ms=2)
            if has_set:
                axes[3].plot(s["t"], s["x0_dist_max"], color=color, lw=1.2, marker=marker, ms=2)
        axes[0].set_ylabel("RMS norm of x_t")
        axes[1].set_ylabel("RMS norm / exact paths' RMS norm - 1")
        axes[2].set_ylabel("mean -log p_t(x) - (same, exact paths)")
        axes[1].set_yscale("symlog", linthresh=1e-6)
        axes[2].set_yscale("symlog", linthresh=1e-6)
        if has_set:
            axes[3].set_ylabel("max distance of x0-prediction to the data set")
            axes[3].set_yscale("log")
        for ax in axes:
            ax.set_xscale("log")
            ax.invert_xaxis()
            ax.set_xlabel("t (sampling runs right)")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(
            f"{ck['problem']}{_model_tag(ck, ' with network ')}, {ck['schedule']} schedule, "
            f"{ck['nfe']} NFE, "
            f"t_min = {ck['t_min']:g}, {ck['spacing']} grid",
            fontsize=10,
        )
        fig.tight_layout()
        name = (
            "norms"
            if len(cells) == 1
            else (
                f"norms_{ck['problem']}{_model_tag(ck, '_')}_{ck['schedule']}_nfe{ck['nfe']}_"
                f"tmin{ck['t_min']:g}_"
                f"{ck['spacing']}"
            )
        )
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=130, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def plot_singularity(
    df: pd.DataFrame, summary: pd.DataFrame | None, exponents: pd.DataFrame, folder
) -> list[Path]:
    """Figures of the singularity study: coefficients, order vs t_min, per-step errors,
    stiffness."""
    folder = Path(folder)
    paths = [_plot_coefficients(exponents, folder / "singularity_coefficients.png")]
    if summary is not None and len(summary):
        paths.append(_plot_order_vs_tmin(summary, folder / "singularity_orders.png"))
    steps = df[df["part"] == "per-step"]
    if len(steps):
        paths.append(_plot_per_step(steps, folder / "singularity_per_step.png"))
    lip = df[df["part"] == "lipschitz"]
    if len(lip):
        paths.append(_plot_lipschitz(lip, folder / "singularity_stiffness.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def _plot_coefficients(exponents: pd.DataFrame, path: Path) -> Path:
    import torch

    from . import schedules
    from .singularity import coefficient_curves

    names = list(dict.fromkeys(exponents["schedule"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    t = torch.logspace(-8, -0.01, 400, dtype=torch.float64)
    for i, name in enumerate(names):
        sched = schedules.get(name)
        tt = t[t <= sched.t_hi]
        ex = exponents.set_index(["schedule", "variable", "which"])
        style = {"color": f"C{i % 10}", "lw": 1.2, "ls": "-" if i < 10 else "--"}
        curves = coefficient_curves(sched, tt, "t")
        p_eps = ex.loc[(name, "t", "eps"), "exponent"]
        axes[0].loglog(tt, curves["eps"], label=f"{name} (t^{p_eps:+.2f})", **style)
        axes[1].loglog(tt, curves["x"], label=name, **style)
        lam = coefficient_curves(sched, tt, "lambda")
        axes[2].loglog(tt, lam["eps"], label=name, **style)
    axes[0].set_title("|eps coefficient| of dx/dt = beta/(2 sigma)", fontsize=9)
    axes[1].set_title("|x coefficient| of dx/dt = beta/2", fontsize=9)
    axes[2].set_title("|eps coefficient| of dx/dlambda = sigma (bounded)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("t")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, title="fitted exponent near t = 0", title_fontsize=7)
    return _save(fig, path)


def _panels(df: pd.DataFrame):
    """A figure with one row per (problem, schedule) and one column per spacing; yields
    (fig, axes) first, then (ax, problem, schedule, spacing, rows of df in that panel)."""
    pairs = list(dict.fromkeys(zip(df["problem"], df["schedule"], strict=True)))
    spacings = list(dict.fromkeys(df["spacing"]))
    fig, axes = plt.subplots(
        len(pairs),
        len(spacings),
        squeeze=False,
        sharey=True,
        figsize=(4.3 * len(spacings), 3.0 * len(pairs)),
    )
    yield fig, axes
    for i, (prob, sched) in enumerate(pairs):
        for j, spacing in enumerate(spacings):
            sub = df[
                (df["problem"] == prob) & (df["schedule"] == sched) & (df["spacing"] == spacing)
            ]
            yield axes[i][j], prob, sched, spacing, sub


def _plot_order_vs_tmin(summary: pd.DataFrame, path: Path) -> Path:
    panels = _panels(summary)
    fig, axes = next(panels)
    for ax, prob, sched, spacing, sub in panels:
        for name, g in sub.groupby("solver", sort=False):
            g = g[g["t_min"] > 0].sort_values("t_min")
            color, marker = _style(name)
            lo = (g["measured"] - g["ci_low"]).clip(lower=0)
            hi = (g["ci_high"] - g["measured"]).clip(lower=0)
            ax.errorbar(
                g["t_min"],
                g["measured"],
                yerr=[lo, hi],
                color=color,
                marker=marker,
                ms=4,
                capsize=2,
                lw=1,
                label=name,
            )
            ax.axhline(g["declared"].iloc[0], color=color, lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_ylim(0, 5)
        ax.set_title(f"{prob}, {sched}, {spacing} grid", fontsize=9)
        ax.set_xlabel("t_min")
        ax.grid(True, which="both", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("measured global order")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Measured order (95% CI) as t_min -> 0; dotted: declared", fontsize=10)
    return _save(fig, path)


def _plot_per_step(steps: pd.DataFrame, path: Path) -> Path:
    steps = steps[steps["t_min"] == steps["t_min"][steps["t_min"] > 0].min()]
    panels = _panels(steps)
    fig, axes = next(panels)
    for ax, prob, sched, spacing, sub in panels:
        for name, g in sub.groupby("solver", sort=False):
            color, marker = _style(name)
            ax.loglog(
                g["t_from"],
                g["error"].replace(np.inf, np.nan),
                color=color,
                marker=marker,
                ms=2.5,
                lw=1,
                label=name,
            )
        ax.invert_xaxis()
        t_min = sub["t_min"].iloc[0] if len(sub) else float("nan")
        ax.set_title(f"{prob}, {sched}, {spacing}, t_min = {t_min:g}", fontsize=9)
        ax.set_xlabel("t at the start of the step")
        ax.grid(True, which="both", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("one-step error from the exact state")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def _plot_lipschitz(lip: pd.DataFrame, path: Path) -> Path:
    lip = lip[lip["t_min"] == lip["t_min"][lip["t_min"] > 0].min()]
    lip = lip[lip["spacing"] == lip["spacing"].iloc[0]]
    problems_ = list(dict.fromkeys(lip["problem"]))
    fig, axes = plt.subplots(1, len(problems_), squeeze=False, figsize=(5 * len(problems_), 4))
    for ax, prob in zip(axes[0], problems_, strict=True):
        for k, (sched, g) in enumerate(lip[lip["problem"] == prob].groupby("schedule", sort=False)):
            g = g[g["t"] > 0]
            ax.loglog(g["t"], g["lip_max"], color=f"C{k}", lw=1.3, label=f"{sched}: in t")
            ax.loglog(
                g["t"],
                g["lip_lambda_max"],
                color=f"C{k}",
                lw=1.3,
                ls="--",
                label=f"{sched}: in lambda",
            )
        ax.invert_xaxis()
        ax.set_title(f"{prob}: largest singular value of df/dx along exact paths", fontsize=9)
        ax.set_xlabel("t")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_work_precision(budget: pd.DataFrame, folder) -> list[Path]:
    """Per cell: error at t_min against NFE for every solver, and the Pareto front."""
    from .modern import CELL_KEYS, pareto

    folder = Path(folder)
    budget = budget[budget["error_rms"].notna()]
    keys = [k for k in CELL_KEYS if k in budget.columns]
    paths = []
    for cell, g in budget.groupby(keys, sort=False):
        ck = dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True))
        fig, ax = plt.subplots(figsize=(8.5, 5.2))
        names = list(dict.fromkeys(g["solver"]))
        for k, name in enumerate(names):
            s = g[g["solver"] == name].sort_values("nfe")
            color = STYLE[name][0] if name in STYLE else plt.cm.tab20(k % 20)
            marker = STYLE[name][1] if name in STYLE else "o."[k % 2]
            ax.loglog(s["nfe"], s["error_rms"], marker=marker, color=color, lw=1, ms=4, label=name)
        front = pareto(g)
        ax.step(
            front["nfe"],
            front["error_rms"],
            where="post",
            color="k",
            lw=2.5,
            alpha=0.25,
            label="Pareto front",
        )
        for _, r in front.iterrows():
            ax.annotate(
                r["solver"],
                (r["nfe"], r["error_rms"]),
                fontsize=6,
                xytext=(3, -8),
                textcoords="offset points",
            )
        ax.set_xlabel("model evaluations (NFE)")
        ax.set_ylabel("RMS error at t_min vs reference")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_title(f"{_cell_title(ck)}: work-precision", fontsize=9)
        name = f"work_{ck['problem']}{_model_tag(ck, '_')}_{ck['schedule']}_tmin{ck['t_min']:g}"
        path = folder / f"{name}_{ck['spacing']}.png"
        fig.savefig(path, dpi=130, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def plot_quality(df: pd.DataFrame, folder) -> list[Path]:
    """Per cell: each metric against NFE, with the reference sampler's level dashed.

    Exact metrics (W2) are drawn log-log. Monte Carlo metrics get two rows: the excess over
    the exact-sample floor with 2-se bars (what a user's metric would show), and the paired
    excess over the exact ODE solution (the solver's own share); both on a symlog axis whose
    linear zone is the typical error bar, since an exact sampler scatters around zero.
    """
    from .quality import CELL_KEYS

    folder = Path(folder)
    df = df[df["value"].notna()] if "value" in df.columns else df.iloc[0:0]
    keys = [k for k in CELL_KEYS if k in df.columns]
    paths = []
    for cell, g in df.groupby(keys, sort=False):
        ck = dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True))
        metrics = list(dict.fromkeys(g["metric"]))
        exact = metrics == ["w2"]
        paired = "paired" in g.columns and bool(g["paired"].notna().any())
        rows = 1 if exact or not paired else 2
        fig, axes = plt.subplots(
            rows, len(metrics), figsize=(4.2 * len(metrics) + 1.5, 3.4 * rows), squeeze=False
        )
        for j, metric in enumerate(metrics):
            gm = g[g["metric"] == metric]
            columns = (
                [("value", None)] if exact else [("excess", "excess_se"), ("paired", "paired_se")]
            )[:rows]
            for i, (col, se_col) in enumerate(columns):
                ax = axes[i][j]
                _quality_panel(ax, gm, col, se_col, exact)
                label = {
                    "value": "W2 to the target (exact)",
                    "excess": "excess over exact samples",
                    "paired": "excess over the exact ODE",
                }[col]
                ax.set_title(f"{metric}: {label}", fontsize=8)
                ax.set_xlabel("NFE")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.suptitle(_cell_title(ck), fontsize=9)
        paths.append(_save(fig, folder / f"{_cell_name(ck, 'quality')}.png"))
    return paths


def _quality_panel(ax, g: pd.DataFrame, col: str, se_col: str | None, exact: bool) -> None:
    ref_solver, ref_steps = g["match_solver"].iloc[0], int(g["match_steps"].iloc[0])
    for k, name in enumerate(dict.fromkeys(g["solver"])):
        s = g[g["solver"] == name].sort_values("nfe")
        color, marker = _style(name) if name in STYLE else (plt.cm.tab10(k % 10), "o")
        err = 2.0 * s[se_col].to_numpy(dtype=float) if se_col else None
        ax.errorbar(
            s["nfe"],
            s[col],
            yerr=err,
            marker=marker,
            color=color,
            lw=1,
            ms=4,
            capsize=2,
            label=name,
        )
    ref = g[(g["solver"] == ref_solver) & (g["steps"] == ref_steps)]
    if len(ref):
        ax.axhline(
            float(ref[col].iloc[0]),
            color="0.3",
            ls="--",
            lw=1,
            label=f"{ref_solver} at {ref_steps} steps",
        )
    ax.set_xscale("log")
    if exact:
        ax.set_yscale("log")
    else:
        se = g[se_col].to_numpy(dtype=float)
        se = se[np.isfinite(se) & (se > 0)]
        ax.set_yscale("symlog", linthresh=float(np.median(se)) if len(se) else 1e-6)
        ax.axhline(0.0, color="k", lw=0.5)
    ax.grid(True, which="both", alpha=0.3)
