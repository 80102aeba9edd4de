"""Run a study from the command line and print what its kind declares, then the files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..study import StudySpec


def run_file(args: argparse.Namespace) -> None:
    """``odebench run FILE``: the study file ``args.study``."""
    run_spec(args.study, args)


def run_spec(spec: StudySpec | Path | str, args: argparse.Namespace) -> None:
    """Run ``spec`` (a spec or a study file) with the run options of ``args`` and print the
    kind's summary text (``StudyKind.format_summary``), the cell counts and the files."""
    from .. import study

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    result = study.run_study(
        spec,
        out=args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.no_progress,
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
