"""The ``odebench`` command line.

    odebench list                       solvers, problems, schedules, grids
    odebench orders [options]           the main job: measured vs declared orders
    odebench norms [options]            sample norms and densities along sampling paths
    odebench singularity [options]      orders as t_min -> 0, per-step errors, stiffness
    odebench quality [options]          sample quality against steps (the paper's FID table)
    odebench audit diffusers:NAME       a report card for a third-party sampler
    odebench run studies/NAME.toml      any committed study

Bad input exits with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_OUT = "results/orders"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _csv_list(kind):
    def parse(text: str):
        items = [s.strip() for s in text.split(",") if s.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        try:
            return [kind(s) for s in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {kind.__name__}, got {text!r}"
            ) from None

    return parse


def _joined(values) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _add_grid_options(
    parser: argparse.ArgumentParser,
    *,
    problem,
    schedule,
    solvers,
    t_min,
    spacing,
    n_samples: int,
    model: bool = True,
) -> None:
    """The options every study command shares: each a comma-separated list (a grid axis)."""

    def axis(flag, kind, default, what):
        parser.add_argument(
            flag, type=_csv_list(kind), default=None, help=f"{what} (default {_joined(default)})"
        )

    axis("--problem", str, problem, "embedded problem(s)")
    if model:
        axis(
            "--model",
            str,
            ["exact"],
            "eps model(s): exact, trained (the shipped network of the problem) or a name",
        )
    axis("--schedule", str, schedule, "schedule(s)")
    axis("--solvers", str, solvers, "solvers")
    axis("--t-min", float, t_min, "end time(s) of sampling")
    axis("--spacing", str, spacing, "time grid(s): uniform, quadratic, lambda, karras")
    axis("--seed", int, [0], "seed(s) of the start points")
    parser.add_argument(
        "--n-samples",
        type=int,
        default=n_samples,
        help=f"start points per cell (default {n_samples})",
    )
    parser.set_defaults(
        grid_defaults={
            "problem": problem,
            "model": ["exact"],
            "schedule": schedule,
            "solvers": solvers,
            "t_min": t_min,
            "spacing": spacing,
            "seed": [0],
        }
    )


def _grid(args, *names: str) -> dict:
    """The grid axes from the command line, defaults filled in ("solvers" -> "solver")."""
    out = {}
    for name in names:
        value = getattr(args, name)
        out["solver" if name == "solvers" else name] = (
            value if value is not None else args.grid_defaults[name]
        )
    return out


def build_parser() -> argparse.ArgumentParser:
    from .orders import DEFAULT_SOLVERS, DEFAULT_STEPS
    from .singularity_study import GRID as SINGULARITY

    parser = _Parser(prog="odebench", description="Diffusion samplers measured as ODE solvers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    sub.add_parser("list", help="list solvers, problems, schedules, grids and networks")

    orders = sub.add_parser(
        "orders",
        help="measure convergence orders (defaults: the PNDM "
        "family and classical methods on gmm-2d, linear schedule)",
    )
    _add_grid_options(
        orders,
        problem=["gmm-2d"],
        schedule=["linear"],
        solvers=DEFAULT_SOLVERS,
        t_min=[0.1],
        spacing=["uniform"],
        n_samples=64,
    )
    orders.add_argument(
        "--steps",
        type=_csv_list(int),
        default=DEFAULT_STEPS,
        help=f"step-count ladder (default {_joined(DEFAULT_STEPS)})",
    )
    orders.add_argument(
        "--t-max",
        type=float,
        default=1.0,
        help="start time, capped at the schedule's end (default 1)",
    )
    orders.add_argument(
        "--local",
        action="store_true",
        help="local (one-step) errors per region of t instead of global ones",
    )
    orders.add_argument(
        "--ref-tol",
        type=float,
        default=1e-12,
        help="tolerance of the adaptive reference (default 1e-12)",
    )
    _add_device_option(orders)
    _add_run_options(orders, default_out=DEFAULT_OUT)

    norms = sub.add_parser(
        "norms",
        help="sample norms and densities along sampling paths at "
        "equal NFE (the paper's manifold-departure diagnosis)",
    )
    _add_grid_options(
        norms,
        problem=["gaussian-lowrank"],
        schedule=["linear"],
        solvers=["ddim", "s-pndm", "f-pndm", "fon"],
        t_min=[1e-3],
        spacing=["uniform"],
        n_samples=256,
    )
    norms.add_argument(
        "--nfe", type=_csv_list(int), default=[50], help="model evaluations per solver (default 50)"
    )
    norms.add_argument("--t-max", type=float, default=1.0, help="start time (default 1)")
    _add_device_option(norms)
    _add_run_options(norms, default_out="results/norms")

    sing = sub.add_parser(
        "singularity",
        help="what the t -> 0 end of a schedule does: "
        "coefficient exponents, orders as t_min -> 0 per grid, per-step "
        "errors, stiffness",
    )
    _add_grid_options(
        sing,
        problem=["gaussian-lowrank"],
        schedule=["linear", "cosine-s0"],
        solvers=SINGULARITY["solver"].default,
        t_min=SINGULARITY["t_min"].default,
        spacing=SINGULARITY["spacing"].default,
        n_samples=32,
        model=False,
    )
    sing.add_argument(
        "--steps",
        type=_csv_list(int),
        default=SINGULARITY["steps"].default,
        help=f"step-count ladder (default {_joined(SINGULARITY['steps'].default)})",
    )
    _add_run_options(sing, default_out="results/singularity")

    _add_quality_parser(sub)
    from .audit.cli import add_parser as add_audit_parser

    add_audit_parser(sub)

    run = sub.add_parser("run", help="run a study file (TOML)")
    run.add_argument("study", type=Path, help="path to studies/NAME.toml")
    _add_run_options(run, default_out=None)
    return parser


def _add_quality_parser(sub) -> None:
    from .quality import DEFAULT_SOLVERS, DEFAULT_STEPS, METRICS, PRIORS

    q = sub.add_parser(
        "quality",
        help="sample quality against steps: exact W2 for Gaussians, Frechet, sliced W2, MMD "
        "and NLL with error bars for mixtures (the paper's FID table, where the truth is known)",
    )
    _add_grid_options(
        q,
        problem=["gaussian-lowrank", "gmm-2d"],
        schedule=["ddpm-linear-1000"],
        solvers=DEFAULT_SOLVERS,
        t_min=[0.0],
        spacing=["uniform"],
        n_samples=2000,
    )
    q.add_argument(
        "--steps",
        type=_csv_list(int),
        default=DEFAULT_STEPS,
        help=f"step counts (default {_joined(DEFAULT_STEPS)})",
    )
    q.add_argument("--t-max", type=float, default=1.0, help="start time (default 1)")
    q.add_argument(
        "--prior",
        choices=PRIORS,
        default="marginal",
        help="start law: the exact marginal at t_max (default) or N(0, I)",
    )
    q.add_argument(
        "--metrics",
        type=_csv_list(str),
        default=["auto"],
        help=f"auto (default) or some of {', '.join(METRICS)}",
    )
    q.add_argument(
        "--no-paired",
        action="store_true",
        help="skip the exact ODE solution from the same start points (the paired excess)",
    )
    q.add_argument(
        "--match",
        default="ddim@1000",
        help="the reference sampler SOLVER@STEPS others must match (default ddim@1000)",
    )
    _add_device_option(q)
    _add_run_options(q, default_out="results/quality")


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="cpu",
        help="where networks run: cpu (default), cuda or cuda:N; analytic "
        "problems always run in float64 on the CPU",
    )


def _add_run_options(parser: argparse.ArgumentParser, default_out: str | None) -> None:
    where = f"(default {default_out})" if default_out else "(default: the study's output)"
    parser.add_argument("--out", type=Path, default=default_out, help=f"output folder {where}")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes")
    parser.add_argument(
        "--scheduler", default=None, help="address of a Dask scheduler to run the cells on"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_list() -> None:
    from . import grids, problems, schedules, solvers
    from .orders import _nfe_rule

    print("Solvers (order: theoretical global order; gradient: order of the gradient part):")
    rows = []
    for name in solvers.names():
        s = solvers.get(name)
        rows.append(
            (
                name,
                str(s.order if s.order is not None else "-"),
                str(s.gradient_order if s.gradient_order is not None else "-"),
                _nfe_rule(s),
                s.warmup,
                s.summary,
            )
        )
    _print_rows(("name", "order", "gradient", "NFE", "warm-up", "method"), rows)
    print("  aliases: " + ", ".join(f"{a} = {t}" for a, t in solvers.ALIASES.items()))
    print("\nProblems (exact eps):")
    _print_rows(("name", "description"), [(n, problems.describe(n)) for n in problems.names()])
    print("\nSchedules:")
    _print_rows(
        ("name", "t range", "description"),
        [
            (n, f"[{s.t_lo:g}, {s.t_hi:g}]", s.description)
            for n, s in ((n, schedules.get(n)) for n in schedules.names())
        ],
    )
    print("\nTime grids (odebench.timesteps spacing=...):")
    _print_rows(("spacing", "description"), list(grids.SPACINGS.items()))
    print("\nShipped networks (odebench.models.load(name); studies: model = name or trained):")
    _print_rows(("name", "problem", "schedule", "time input", "parameters"), _network_rows())


def _network_rows() -> list[tuple[str, ...]]:
    import json

    from .models.loading import ASSETS, shipped

    rows = []
    for name in shipped():
        card = json.loads((ASSETS / f"{name}.json").read_text())
        params = card.get("parameters")
        rows.append(
            (
                name,
                card.get("problem", card["data"]),
                card["schedule"],
                card["time_input"],
                f"{params:,}" if params else "-",
            )
        )
    return rows


def _print_rows(header, rows) -> None:
    from ._text import fixed_width

    print(fixed_width(header, rows, rule=False, indent="  "))


def _study(kind: str, grid: dict, options: dict) -> dict:
    return {
        "study": {"name": kind, "kind": kind, "description": f"odebench {kind} (command line)"},
        "grid": grid,
        "options": options,
    }


def cmd_orders(args) -> None:
    from .study import parse_study

    grid = _grid(args, "problem", "model", "schedule", "solvers", "t_min", "spacing", "seed")
    grid["steps"] = args.steps
    options = {
        "n_samples": args.n_samples,
        "t_max": args.t_max,
        "ref_tol": args.ref_tol,
        "mode": "local" if args.local else "global",
        "device": args.device,
    }
    _run(parse_study(_study("orders", grid, options)), args)


def cmd_norms(args) -> None:
    from .study import parse_study

    grid = _grid(args, "problem", "model", "schedule", "solvers", "t_min", "spacing", "seed")
    grid["nfe"] = args.nfe
    options = {"n_samples": args.n_samples, "t_max": args.t_max, "device": args.device}
    _run(parse_study(_study("norms", grid, options)), args)


def cmd_singularity(args) -> None:
    from .study import parse_study

    grid = _grid(args, "problem", "schedule", "solvers", "t_min", "spacing", "seed")
    grid["steps"] = args.steps
    _run(parse_study(_study("singularity", grid, {"n_samples": args.n_samples})), args)


def cmd_quality(args) -> None:
    from .study import parse_study

    solver, sep, steps = args.match.partition("@")
    if not sep or not steps.isdigit():
        raise ValueError(
            f"--match must look like SOLVER@STEPS (e.g. ddim@1000), got {args.match!r}"
        )
    grid = _grid(args, "problem", "model", "schedule", "solvers", "t_min", "spacing", "seed")
    grid["steps"] = args.steps
    options = {
        "n_samples": args.n_samples,
        "t_max": args.t_max,
        "prior": args.prior,
        "metrics": args.metrics,
        "paired": not args.no_paired,
        "match_solver": solver,
        "match_steps": int(steps),
        "device": args.device,
    }
    _run(parse_study(_study("quality", grid, options)), args)


def cmd_run(args) -> None:
    _run(args.study, args)


def _run(spec, args) -> None:
    import pandas as pd

    from .study import run_study

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    result = run_study(
        spec,
        out=args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.no_progress,
    )
    if result.summary_csv is not None:
        summary = pd.read_csv(result.summary_csv)
        if "measured" in summary.columns:
            _print_order_summary(summary)
        elif "max_nll_excess" in summary.columns:
            _print_norms_summary(summary)
        elif "findings" in summary.columns:
            table = [f for f in result.figures if Path(f).name == "audit_table.md"]
            if table:
                print("\n" + Path(table[0]).read_text())
        elif "match_nfe" in summary.columns:
            from .quality import markdown_table

            print("\n" + markdown_table(pd.read_csv(result.csv), summary))
    exponents = Path(result.csv).parent / "singularity_exponents.csv"
    if any(Path(f) == exponents for f in result.figures):
        from .singularity_study import exponent_summary

        print("\nExponent of the eps coefficient near t = 0 (fitted on t in [1e-8, 1e-4]):")
        print(exponent_summary(pd.read_csv(exponents)))
    print(f"\n{result.n_cells} cell(s): {result.n_computed} computed, {result.n_cached} from cache")
    print(f"table:   {result.csv}")
    if result.summary_csv is not None:
        print(f"summary: {result.summary_csv}")
    for fig in result.figures:
        print(f"figure:  {fig}")


def _print_order_summary(summary) -> None:
    from .orders import format_table

    keys = [
        k
        for k in ("problem", "model", "schedule", "t_min", "spacing", "seed", "t0")
        if k in summary.columns
    ]
    for cell, group in summary.groupby(keys, sort=False):
        cell = cell if isinstance(cell, tuple) else (cell,)
        print("\n" + ", ".join(f"{k}={v}" for k, v in zip(keys, cell, strict=True)))
        print(format_table(group))


def _print_norms_summary(summary) -> None:
    from .norms import CELL_KEYS, format_table

    keys = [k for k in CELL_KEYS if k in summary.columns]
    for cell, group in summary.groupby(keys, sort=False):
        cell = cell if isinstance(cell, tuple) else (cell,)
        print("\n" + ", ".join(f"{k}={v}" for k, v in zip(keys, cell, strict=True)))
        print(format_table(group))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            cmd_list()
        elif args.command == "orders":
            cmd_orders(args)
        elif args.command == "norms":
            cmd_norms(args)
        elif args.command == "singularity":
            cmd_singularity(args)
        elif args.command == "quality":
            cmd_quality(args)
        elif args.command == "audit":
            from .audit.cli import run as run_audit

            run_audit(args)
        else:
            cmd_run(args)
    except KeyboardInterrupt:
        print("odebench: interrupted (finished cells are cached; rerun to resume)", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as err:
        message = " ".join(str(err).split())
        print(f"odebench: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
