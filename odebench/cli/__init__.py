"""The ``odebench`` command line.

    odebench list                       solvers, problems, schedules, grids, networks
    odebench orders [flags]             the main job: measured vs declared orders
    odebench KIND [flags]               any registered study kind (modern, norms, quality,
                                        singularity, ...), flags generated from its fields
    odebench audit diffusers:NAME       a report card for a third-party sampler
    odebench run studies/NAME.toml      any committed study

Each kind's subcommand is generated from the fields it declares (:mod:`.generate`) and prints
the summary text the kind declares (``StudyKind.format_summary``, :mod:`.run`). Bad input
exits with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .generate import Parser, add_kind_commands, add_run_options

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand: list, one per registered study kind, run."""
    from .listing import cmd_list
    from .run import run_file

    parser = Parser(prog="odebench", description="Diffusion samplers measured as ODE solvers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    listing = sub.add_parser("list", help="list solvers, problems, schedules, grids and networks")
    listing.set_defaults(handler=lambda args: cmd_list())
    add_kind_commands(sub)
    run = sub.add_parser("run", help="run a study file (TOML)")
    run.add_argument("study", type=Path, help="path to studies/NAME.toml")
    add_run_options(run, default_out=None)
    run.set_defaults(handler=run_file)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``odebench`` with ``argv`` (default: the process's); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except KeyboardInterrupt:
        print("odebench: interrupted (finished cells are cached; rerun to resume)", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as err:
        message = " ".join(str(err).split())
        print(f"odebench: error: {message}", file=sys.stderr)
        return 2
    return 0
