"""The "audit" study kind: report cards of many samplers, one cell per sampler.

A sampler is written as its diffusers class name, optionally followed by its config as JSON:
``'DDIMScheduler {"timestep_spacing": "trailing"}'``. Rows are tidy: ``part = "ladder"``
(one per step count, see :mod:`odebench.audit.measure`) and one ``part = "facts"`` row per
cell. ``summarize`` rebuilds each report card from those rows
(:func:`odebench.audit.report.build_report`, the same function ``odebench audit`` uses);
``plot`` writes ``audit_table.md`` (the README table), ``audit_cards.md`` (every card) and
``audit_errors.png``, and where the cells ran the counterfactual probes
(``counterfactuals = true``) ``repro/*.py``: a stand-alone reproduction script per finding
(:mod:`odebench.audit.repro`).

    odebench run studies/audit.toml [--workers 2]
    odebench run studies/audit_flow.toml [--workers 2]   (flow matching, EDM, x0 / v)
    odebench run studies/audit_stochastic.toml [--workers 2]   (DDPM, ancestral, SDE solvers)

Flow-matching and EDM classes run on their own path (:mod:`odebench.audit.interfaces`);
``schedule`` names the VP table the other classes run on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from .. import problems
from ..audit.cli import add_parser
from ..audit.measure import DEFAULT_STEPS, label, measure, parse_label
from ..study import Command, Field, StudyKind, StudyResult, register
from .common import cell_cost, non_negative, positive

CELL_KEYS = ["sampler", "problem", "schedule", "seed"]
TABLE = "audit_table.md"


def _check_sampler(value: str) -> str | None:
    try:
        parse_label(value)
    except ValueError as exc:
        return str(exc)
    return None


GRID = {
    "sampler": Field(
        str, check=_check_sampler, help='class name + JSON config, e.g. "DDIMScheduler"'
    ),
    "problem": Field(
        str, default=["gaussian-lowrank"], choices=problems.names, help="embedded problem"
    ),
    "schedule": Field(
        str,
        default=["ddpm-linear-1000"],
        choices=("ddpm-linear-1000", "scaled-linear-1000", "cosine-1000"),
        help="discrete table of the VP-table classes (flow-matching and EDM ones keep their own)",
    ),
    "steps": Field(int, default=DEFAULT_STEPS, check=positive, help="step-count ladder"),
    "seed": Field(int, default=[0], check=non_negative, help="seed of the start points"),
}
OPTIONS = {
    "n_samples": Field(int, default=32, check=positive, help="start points per cell"),
    "probe_steps": Field(
        int, default=50, check=positive, help="N of the float64/determinism probes"
    ),
    "counterfactuals": Field(
        bool,
        default=False,
        help="rerun each cell's ladder once per counterfactual probe (odebench.audit.causes) "
        "and name each finding's cause on its card",
    ),
}
DROPPED = ("sampler", "problem", "schedule", "seed")  # the cell's own keys, not facts


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The ladder rows and the facts row of one sampler. A class diffusers cannot load (an
    optional backend such as torchsde missing) is a facts row with its one-line error."""
    name, user = parse_label(config["sampler"])
    try:
        rows, facts = measure(
            "diffusers:" + name,
            user,
            problem=config["problem"],
            schedule=config["schedule"],
            steps=config["steps"],
            n_samples=int(config["n_samples"]),
            seed=int(config["seed"]),
            probe_steps=int(config["probe_steps"]),
        )
    except ValueError as exc:
        if "cannot be loaded" not in str(exc):
            raise
        return [{"part": "facts", "setup_error": str(exc), "scheduler_class": name}]
    out = [{"part": "ladder", **r} for r in rows]
    out.append({"part": "facts", **{k: v for k, v in facts.items() if k not in DROPPED}})
    if config.get("counterfactuals"):
        out += counterfactual_rows(config, user, rows, facts)
    return out


def counterfactual_rows(config, user, rows, facts) -> list[dict[str, Any]]:
    """The reruns of :func:`odebench.audit.causes.run_attempts` as rows: one "cf-tried" row
    (the probes that apply), and per attempt its ladder ("cf-ladder") and facts ("cf-facts",
    or its one-line error), each with the attempt's name in ``probe``."""
    from .._tensor import one_thread
    from ..audit.causes import needs_probes, run_attempts
    from ..audit.measure import prepare
    from ..audit.report import build_report

    report = build_report(rows, facts)
    if not needs_probes(report):
        return []
    name, _ = parse_label(config["sampler"])
    prep = prepare(
        "diffusers:" + name,
        user,
        config["problem"],
        config["schedule"],
        int(config["n_samples"]),
        int(config["seed"]),
    )
    steps = sorted({int(n) for n in config["steps"]})
    with one_thread():
        usable, attempts = run_attempts(report, prep, steps, probe_steps=config["probe_steps"])
    return attempt_rows(usable, attempts)


def attempt_rows(usable, attempts) -> list[dict[str, Any]]:
    """Rows of the probes that apply and of each attempt (see :func:`counterfactual_rows`)."""
    out: list[dict[str, Any]] = [{"part": "cf-tried", "probe": ";".join(p.name for p in usable)}]
    for a in attempts:
        if a.report is None:
            out.append({"part": "cf-facts", "probe": a.name, "cf_error": a.error})
            continue
        out += [{"part": "cf-ladder", "probe": a.name, **r} for r in a.report.rows]
        kept = {k: v for k, v in a.report.facts.items() if k not in DROPPED}
        out.append({"part": "cf-facts", "probe": a.name, **kept})
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _finite_int(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _ladder(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = [
        {k: _clean(v) for k, v in r.items() if _clean(v) is not None}
        for r in frame.to_dict("records")
    ]
    for r in rows:
        ints = ("steps", "nfe", "repeats", "family_nfe", "calls_off", "worst_call")
        for key in (*ints, "draws", "max_draws", "strong_ref"):
            if key in r:
                r[key] = int(r[key])
        r["divides_T"] = bool(r.get("divides_T", False))
    return rows


def _facts(frame: pd.DataFrame, cell: dict[str, Any]) -> dict[str, Any]:
    facts = {k: _clean(v) for k, v in frame.iloc[0].items()} if len(frame) else {}
    facts = {k: v for k, v in facts.items() if v is not None}
    facts.update(cell)
    for key in ("n_samples", "seed", "T", "probe_steps"):
        if key in facts:
            facts[key] = int(facts[key])
    if _finite_int(facts.get("nominal")):
        facts["nominal"] = int(facts["nominal"])
    for key in ("stochastic", "takes_generator"):
        if key in facts:
            facts[key] = bool(facts[key])
    return facts


def _explained(report, group: pd.DataFrame, cell: dict[str, Any]):
    """``report`` annotated from the cell's counterfactual rows (unchanged without them)."""
    from ..audit.causes import Attempt, annotate
    from ..audit.counterfactual import get
    from ..audit.report import build_report

    tried = group[group["part"] == "cf-tried"]
    if not len(tried):
        return report
    names = str(tried.iloc[0]["probe"] or "")
    usable = [get(n) for n in names.split(";") if n]
    attempts = []
    for _, row in group[group["part"] == "cf-facts"].iterrows():
        probes = tuple(get(n) for n in str(row["probe"]).split(" + "))
        error = _clean(row.get("cf_error"))
        if error:
            attempts.append(Attempt(probes, None, str(error)))
            continue
        ladder = group[(group["part"] == "cf-ladder") & (group["probe"] == row["probe"])]
        facts = {**report.facts, **_facts(row.to_frame().T, cell)}
        attempts.append(Attempt(probes, build_report(_ladder(ladder), facts)))
    return annotate(report, usable, attempts)


def reports(df: pd.DataFrame) -> list:
    """The AuditReport of every cell of a study table (each finding annotated with its
    cause where the cell ran the counterfactual probes)."""
    from ..audit.report import build_report

    out = []
    keys = [k for k in CELL_KEYS if k in df.columns]
    for cell, group in df.groupby(keys, sort=False):
        cell = dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True))
        rows = _ladder(group[group["part"] == "ladder"])
        facts = _facts(group[group["part"] == "facts"], cell)
        out.append(_explained(build_report(rows, facts), group, cell))
    return out


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per sampler: nominal vs measured order, verdict, end times, float64, findings."""
    rows = []
    for rep in reports(df):
        row = {k: rep.facts.get(k) for k in ("problem", "schedule", "seed")}
        row.update(rep.summary())
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(summary: pd.DataFrame) -> str:
    """The summary as the README's table."""
    head = [
        "sampler",
        "nominal",
        "measured order [95% CI]",
        "start t",
        "end t",
        "error at N=700",
        "vs odebench (equal NFE)",
        "verdict",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in summary.iterrows():
        order = (
            f"{r['order']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
            if pd.notna(r["order"])
            else "-"
        )
        ratio = f"{r['family_ratio']:.2g}x {r['family']}" if pd.notna(r["family_ratio"]) else "-"
        nominal = f"{r['nominal']:g}" if pd.notna(r["nominal"]) else "-"
        err = f"{r['error_at_finest']:.1e}" if pd.notna(r["error_at_finest"]) else "-"
        cells = [
            f"`{r['sampler']}`",
            nominal,
            order,
            str(r["t_start"]),
            str(r["t_end"]),
            err,
            ratio,
            str(r["verdict"]).replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..audit.report import draw

    folder = Path(folder)
    reps = reports(df)
    paths = []
    if summary is not None and len(summary):
        table = folder / TABLE
        table.write_text(markdown_table(summary))
        paths.append(table)
    cards = folder / "audit_cards.md"
    cards.write_text("\n".join(f"### {r.sampler}\n\n```\n{r.card()}\n```\n" for r in reps))
    paths.append(cards)
    cols = 4
    nrow = max(1, math.ceil(len(reps) / cols))
    fig, axes = plt.subplots(nrow, cols, figsize=(4.0 * cols, 3.0 * nrow), squeeze=False)
    for ax, rep in zip(axes.flat, reps, strict=False):
        draw(ax, rep, legend=True)
        ax.set_title(rep.sampler, fontsize=6)
    for ax in list(axes.flat)[len(reps) :]:
        ax.axis("off")
    fig.tight_layout()
    fig_path = folder / "audit_errors.png"
    fig.savefig(fig_path, dpi=90)
    plt.close(fig)
    paths.append(fig_path)
    return paths + repro_scripts(reps, folder)


def repro_scripts(reps: list, folder: Path) -> list[Path]:
    """``<folder>/repro/*.py`` and ``index.csv``: a stand-alone reproduction per finding of the
    cells that ran the counterfactual probes (:mod:`odebench.audit.repro`), made from the
    rows at publish time. Not an option: an option would enter every cell's cache key, and
    the scripts are made from what the cells already store."""
    from ..audit.repro import REPRO_DIR, write_scripts

    explained = [r for r in reps if r.counterfactuals.get("causes")]
    return write_scripts(explained, Path(folder) / REPRO_DIR) if explained else []


def format_summary(result: StudyResult) -> str | None:
    """The README's table of the samplers (``audit_table.md``, as written)."""
    tables = [Path(f) for f in result.figures if Path(f).name == TABLE]
    return "\n" + tables[0].read_text() if tables else None


def audit_cost(config: dict[str, Any]):
    """:func:`cell_cost`, times the reruns of the counterfactual probes where they are on: one
    per probe, one of all of them, and the narrowing to a minimal combination, which drops one
    probe at a time (at most one fewer than the probes). An upper bound on the reruns; the
    committed audit study (31 cells) took 3087 CPU s with them against 293 s without."""
    from dataclasses import replace

    from ..audit.counterfactual import PROBES

    cost = cell_cost(config)
    if not config.get("counterfactuals"):
        return cost
    return replace(cost, seconds=cost.seconds * (1 + 2 * len(PROBES)))


#: ``odebench audit SAMPLER``: one sampler's report card, not a study of many (those run with
#: ``odebench run studies/audit.toml``), so its command is hand-written in :mod:`..audit.cli`.
COMMAND = Command(
    help="measure a third-party sampler from outside (e.g. diffusers:DDIMScheduler)",
    parser=add_parser,
)

KIND = StudyKind(
    name="audit",
    grid=GRID,
    options=OPTIONS,
    ladder_axes=("steps",),
    run_cell=run_cell,
    # 2: interpolant and model-output lines; flow families start at t = 1
    # 3: stochastic samplers get weak / strong orders (stochastic_ladder), not an ODE ladder
    # 5: stochastic cards fall back to a Monte Carlo weak error (clipped samplers)
    # 6: the Dirac probe's fit in exactly rounded sums, not MKL's lstsq, which returned
    #    results 1e-14 apart from call to call: state times and errors repeat to the bit;
    #    a probe's step() keeps the seeded generator (its stochastic facts drew from torch's
    #    global generator before, and moved with what the process had run)
    # 7: the mid state is the last model input at the time nearest MID: a Heun step's
    #    corrected state, never its predictor stage, whatever the round-off in their times
    version="7",
    summarize=summarize,
    plot=plot,
    description="report cards of third-party samplers (diffusers), measured from outside",
    format_summary=format_summary,
    command=COMMAND,
    estimate=audit_cost,
)
register(KIND)

__all__ = [
    "KIND",
    "attempt_rows",
    "counterfactual_rows",
    "format_summary",
    "label",
    "markdown_table",
    "plot",
    "reports",
    "run_cell",
    "summarize",
]
