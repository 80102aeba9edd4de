"""The ``odebench`` command line.

    odebench list                       solvers, problems, schedules, grids
    odebench orders [options]           the main job: measured vs declared orders
    odebench norms [options]            sample norms and densities along sampling paths
    odebench singularity [options]      orders as t_min -> 0, per-step errors, stiffness
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="odebench", description="Diffusion samplers measured as ODE solvers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    sub.add_parser("list", help="list solvers, problems, schedules and grids")

    orders = sub.add_parser(
        "orders",
        help="measure convergence orders (defaults: the PNDM family and classical "
        "methods on gmm-2d, linear schedule, t_min = 0.1)",
    )
    orders.add_argument(
        "--problem",
        type=_csv_list(str),
        default=["gmm-2d"],
        help="embedded problem(s), comma-separated (default gmm-2d)",
    )
    orders.add_argument(
        "--model",
        type=_csv_list(str),
        default=["exact"],
        help="eps model(s): exact, or a shipped network trained on the problem",
    )
    orders.add_argument(
        "--schedule", type=_csv_list(str), default=["linear"], help="schedule(s) (default linear)"
    )
    orders.add_argument(
        "--solvers",
        type=_csv_list(str),
        default=None,
        help="solvers (default ddim,s-pndm,f-pndm,fon,euler,heun,rk4)",
    )
    orders.add_argument(
        "--steps",
        type=_csv_list(int),
        default=None,
        help="step-count ladder (default 25,50,...,1600)",
    )
    orders.add_argument(
        "--t-min",
        type=_csv_list(float),
        default=[0.1],
        help="end time(s) of sampling (default 0.1)",
    )
    orders.add_argument(
        "--t-max",
        type=float,
        default=1.0,
        help="start time, capped at the schedule's end (default 1)",
    )
    orders.add_argument(
        "--spacing",
        type=_csv_list(str),
        default=["uniform"],
        help="time grid(s): uniform, quadratic, lambda, karras",
    )
    orders.add_argument(
        "--local",
        action="store_true",
        help="local (one-step) errors per region of t instead of global ones",
    )
    orders.add_argument("--n-samples", type=int, default=64, help="start points (default 64)")
    orders.add_argument("--seed", type=_csv_list(int), default=[0], help="seed(s) (default 0)")
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
        help="sample norms and densities along sampling paths at equal NFE (the "
        "paper's manifold-departure diagnosis)",
    )
    norms.add_argument(
        "--problem",
        type=_csv_list(str),
        default=["gaussian-lowrank"],
        help="embedded problem(s) (default gaussian-lowrank)",
    )
    norms.add_argument(
        "--model",
        type=_csv_list(str),
        default=["exact"],
        help="eps model(s): exact, or a shipped network trained on the problem",
    )
    norms.add_argument(
        "--schedule", type=_csv_list(str), default=["linear"], help="schedule(s) (default linear)"
    )
    norms.add_argument(
        "--solvers",
        type=_csv_list(str),
        default=None,
        help="solvers (default ddim,s-pndm,f-pndm,fon)",
    )
    norms.add_argument(
        "--nfe", type=_csv_list(int), default=[50], help="model evaluations per solver (default 50)"
    )
    norms.add_argument(
        "--t-min", type=_csv_list(float), default=[1e-3], help="end time(s) (default 0.001)"
    )
    norms.add_argument("--t-max", type=float, default=1.0, help="start time (default 1)")
    norms.add_argument("--spacing", type=_csv_list(str), default=["uniform"], help="time grid(s)")
    norms.add_argument("--n-samples", type=int, default=256, help="start points (default 256)")
    norms.add_argument("--seed", type=_csv_list(int), default=[0], help="seed(s) (default 0)")
    _add_device_option(norms)
    _add_run_options(norms, default_out="results/norms")

    sing = sub.add_parser(
        "singularity",
        help="what the t -> 0 end of a schedule does: coefficient exponents, "
        "orders as t_min -> 0 per grid, per-step errors, stiffness",
    )
    sing.add_argument(
        "--problem",
        type=_csv_list(str),
        default=["gaussian-lowrank"],
        help="embedded problem(s) (default gaussian-lowrank)",
    )
    sing.add_argument(
        "--schedule",
        type=_csv_list(str),
        default=["linear", "cosine-s0"],
        help="schedule(s) (default linear,cosine-s0)",
    )
    sing.add_argument(
        "--solvers",
        type=_csv_list(str),
        default=None,
        help="solvers (default ddim,s-pndm,f-pndm,fon)",
    )
    sing.add_argument(
        "--steps",
        type=_csv_list(int),
        default=None,
        help="step-count ladder (default 25,50,...,800)",
    )
    sing.add_argument(
        "--t-min",
        type=_csv_list(float),
        default=None,
        help="end times (default 0.1,0.01,0.001,1e-4,1e-5)",
    )
    sing.add_argument(
        "--spacing",
        type=_csv_list(str),
        default=None,
        help="grids (default uniform,quadratic,lambda)",
    )
    sing.add_argument("--n-samples", type=int, default=32, help="start points (default 32)")
    sing.add_argument("--seed", type=_csv_list(int), default=[0], help="seed(s) (default 0)")
    _add_run_options(sing, default_out="results/singularity")

    run = sub.add_parser("run", help="run a study file (TOML)")
    run.add_argument("study", type=Path, help="path to studies/NAME.toml")
    _add_run_options(run, default_out=None)
    return parser


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


def _print_rows(header, rows) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    print(fmt.format(*header))
    for r in rows:
        print(fmt.format(*r))


def cmd_orders(args) -> None:
    from .orders import DEFAULT_SOLVERS, DEFAULT_STEPS
    from .study import parse_study

    data = {
        "study": {
            "name": "orders",
            "kind": "orders",
            "description": "odebench orders (command line)",
        },
        "grid": {
            "problem": args.problem,
            "model": args.model,
            "schedule": args.schedule,
            "solver": args.solvers or DEFAULT_SOLVERS,
            "steps": args.steps or DEFAULT_STEPS,
            "t_min": args.t_min,
            "spacing": args.spacing,
            "seed": args.seed,
        },
        "options": {
            "n_samples": args.n_samples,
            "t_max": args.t_max,
            "mode": "local" if args.local else "global",
            "ref_tol": args.ref_tol,
            "device": args.device,
        },
    }
    _run(parse_study(data), args)


def cmd_norms(args) -> None:
    from .norms import DEFAULT_SOLVERS
    from .study import parse_study

    data = {
        "study": {"name": "norms", "kind": "norms", "description": "odebench norms (command line)"},
        "grid": {
            "problem": args.problem,
            "model": args.model,
            "schedule": args.schedule,
            "solver": args.solvers or DEFAULT_SOLVERS,
            "nfe": args.nfe,
            "t_min": args.t_min,
            "spacing": args.spacing,
            "seed": args.seed,
        },
        "options": {"n_samples": args.n_samples, "t_max": args.t_max, "device": args.device},
    }
    _run(parse_study(data), args)


def cmd_singularity(args) -> None:
    from .singularity_study import GRID
    from .study import parse_study

    grid = {
        "problem": args.problem,
        "schedule": args.schedule,
        "solver": args.solvers or GRID["solver"].default,
        "steps": args.steps or GRID["steps"].default,
        "t_min": args.t_min or GRID["t_min"].default,
        "spacing": args.spacing or GRID["spacing"].default,
        "seed": args.seed,
    }
    data = {
        "study": {
            "name": "singularity",
            "kind": "singularity",
            "description": "odebench singularity (command line)",
        },
        "grid": grid,
        "options": {"n_samples": args.n_samples},
    }
    _run(parse_study(data), args)


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
