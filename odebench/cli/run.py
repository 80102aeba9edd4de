"""Run a study from the command line and print what its kind declares, then the files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..study import StudySpec


def run_file(args: argparse.Namespace) -> None:
    """``odebench run FILE``: the study file ``args.study``."""
    run_spec(args.study, args)


def print_estimate(
    spec: StudySpec | Path | str, args: argparse.Namespace, max_memory: float | None
) -> None:
    """``--estimate``: the whole study's estimate (cache ignored) against the limits."""
    from ..study.limits import check
    from ..study.runner import check_address, estimate_study

    if args.scheduler is not None:
        check_address(args.scheduler)
    workers = args.workers if args.scheduler is None else 1
    run, n_cells = estimate_study(spec, workers)
    check(run, n_cells, max_memory=max_memory, yes=args.yes, what="this run")
    print(f"estimate: {run.describe(n_cells)}; within the limits")


def run_spec(spec: StudySpec | Path | str, args: argparse.Namespace) -> None:
    """Run ``spec`` (a spec or a study file) with the run options of ``args`` and print the
    kind's summary text (``StudyKind.format_summary``), the cell counts and the files."""
    from .. import study

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    max_memory = args.max_memory * 1e9 if args.max_memory is not None else None
    if args.estimate:
        print_estimate(spec, args, max_memory)
        return
    result = study.run_study(
        spec,
        out=args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.no_progress,
        max_memory=max_memory,
        yes=args.yes,
    )
    kind = study.get(result.kind)
    text = kind.format_summary(result) if kind.format_summary is not None else None
    if text is not None:
        print(text)
    print(f"\n{result.n_cells} cell(s): {result.n_computed} computed, {result.n_cached} from cache")
    print(f"table:   {result.csv}")
    if result.summary_csv is not None:
        print(f"summary: {result.summary_csv}")
    for fig in result.figures:
        print(f"figure:  {fig}")
