"""``odebench audit SAMPLER [--config JSON] ...``: the report card of one sampler.

    odebench audit diffusers:DDIMScheduler --config '{"timestep_spacing": "trailing"}'

prints the card and writes ``<out>/<sampler>.csv`` (one row per step count),
``<out>/<sampler>_card.txt`` and ``<out>/<sampler>.png`` (error against NFE, with odebench's
solver of the same family), each atomically; ``--repro DIR`` also writes a stand-alone
reproduction script per finding (:mod:`.repro`). The output folder is held by the audit from
before it computes until its files are written (``study.lock.locked``, as ``odebench run``
holds its folder): a second audit into it at the same time is refused. Bad input raises
ValueError with one line (odebench's main turns it into "odebench: error: ..." and exit
status 2).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..study.limits import add_limit_options
from .functions import FUNCTION_STEPS, is_function_spec
from .measure import DEFAULT_STEPS

DEFAULT_OUT = "results/audit"
#: Model evaluations per step of the ladder: the sampler's run, odebench's solver of the same
#: family at equal NFE, the exact references and the probes (measured: about 2.7 ms per step
#: at the defaults).
EVALS_PER_STEP = 12.0


def _steps(text: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if len(values) < 3 or min(values) < 1:
        raise argparse.ArgumentTypeError("need at least 3 positive step counts")
    return values


def _default_steps(sampler: str) -> list[int]:
    return FUNCTION_STEPS if is_function_spec(sampler) else DEFAULT_STEPS


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``audit`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "audit",
        help="measure a third-party sampler from outside (e.g. diffusers:DDIMScheduler)",
        description="Report card of a diffusers scheduler run as a pipeline runs it: where "
        "it calls the model, its effective start and end times, its measured order against "
        "the exact ODE, float64, and odebench's solver of the same family at equal NFE.",
    )
    p.add_argument(
        "sampler",
        help="diffusers:ClassName (any scheduler class of diffusers), or a k-diffusion-style "
        "function sample(model, x, sigmas, ...): path/to/file.py:name or package.module:name",
    )
    p.add_argument("--config", default=None, help="scheduler config as a JSON object")
    p.add_argument(
        "--problem", default="gaussian-lowrank", help="problem (default gaussian-lowrank)"
    )
    p.add_argument(
        "--schedule",
        default=None,
        help="diffusers: a discrete table, ddpm-linear-1000 (default), scaled-linear-1000, "
        "cosine-1000; a function: a VP schedule (default linear)",
    )
    p.add_argument(
        "--steps",
        type=_steps,
        default=None,
        help="step-count ladder (default " + ",".join(map(str, DEFAULT_STEPS)) + "; "
        "functions: " + ",".join(map(str, FUNCTION_STEPS)) + ")",
    )
    p.add_argument("--n-samples", type=int, default=32, help="start points (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the start points")
    p.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=f"folder ({DEFAULT_OUT})")
    p.add_argument(
        "--strong",
        action="store_true",
        help="require a strong order (a stochastic sampler whose noise the audit drives by a "
        "Brownian path on nested grids); an error otherwise",
    )
    p.add_argument(
        "--counterfactuals",
        action="store_true",
        help="rerun the ladder once per applicable counterfactual probe and name each "
        "finding's cause (up to about 10 times the audit's time)",
    )
    p.add_argument(
        "--repro",
        type=Path,
        default=None,
        metavar="DIR",
        help="write DIR/<sampler>__<kind>.py per finding: a stand-alone script (torch, numpy, "
        "diffusers; no odebench) that shows the defect and the counterfactual that removes it "
        "(implies --counterfactuals)",
    )
    add_limit_options(p)
    p.add_argument(
        "--estimate",
        action="store_true",
        help="print the audit's estimated memory and time, check the limits, run nothing",
    )
    p.set_defaults(handler=run)
    return p


def check_size(args: argparse.Namespace, steps: list[int]) -> None:
    """Refuse an audit whose estimated memory or time exceeds the limits (one line naming
    the estimate and ``--max-memory`` / ``--yes``), before anything runs."""
    from .. import problems
    from ..study.limits import check, estimate

    try:
        dim = int(getattr(problems.get(args.problem), "dim", 64))
    except (ValueError, TypeError):  # an unknown problem: the audit names it
        dim = 64
    total = float(sum(steps))
    if _counterfactuals(args):  # the audit, all probes and their combination
        from .counterfactual import PROBES

        total *= 2 + len(PROBES)
    run = estimate(
        args.n_samples, dim, EVALS_PER_STEP * total, total, longest=max(steps, default=0)
    )
    limit = args.max_memory * 1e9 if getattr(args, "max_memory", None) is not None else None
    check(run, 1, max_memory=limit, yes=getattr(args, "yes", False), what="this audit")
    if getattr(args, "estimate", False):
        print(f"estimate: {run.describe(1)}; within the limits")


def _counterfactuals(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "counterfactuals", False) or getattr(args, "repro", None))


def _check_repro(folder: Path | None) -> None:
    """Refuse a --repro folder that is a file or cannot be written, before the audit runs."""
    if folder is None:
        return
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--repro {folder}: is a file, not a folder")
    probe = folder if folder.exists() else next((p for p in folder.parents if p.exists()), None)
    if probe is not None and not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"--repro {folder}: not writable")


def run(args: argparse.Namespace) -> None:
    """Run the audit of ``args.sampler`` and print its card; raises ValueError on bad input
    (and StudyError, a ValueError, if another run holds the output folder)."""
    from ..study.lock import locked
    from .report import audit, write

    if args.n_samples < 1:
        raise ValueError(f"--n-samples must be positive, got {args.n_samples}")
    steps = args.steps if args.steps is not None else _default_steps(args.sampler)
    repro = getattr(args, "repro", None)
    _check_repro(repro)
    check_size(args, steps)
    if args.estimate:
        return
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create the folder ({err.strerror})") from None
    options = {
        "problem": args.problem,
        "schedule": args.schedule,
        "steps": steps,
        "n_samples": args.n_samples,
        "seed": args.seed,
    }
    with locked(out):
        strong = True if getattr(args, "strong", False) else None
        report = audit(args.sampler, args.config, strong=strong, **options)
        if _counterfactuals(args):  # the same ladder, once per probe
            from .causes import explain_audit

            report = explain_audit(report, args.sampler, args.config, **options)
        print(report.card())
        for path in write(report, out):
            print(f"wrote:  {path}")
        if repro is not None:
            from .repro import write_scripts

            for path in write_scripts([report], repro):
                print(f"wrote:  {path}")
