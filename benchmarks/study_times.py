"""Time every committed study from scratch: `odebench run STUDY --workers 2`, one after another.

    python benchmarks/study_times.py [--studies quality modern ...] [--workers 2]
        [--csv figures/benchmarks/study_times.csv]

Each study in ``studies/*.toml`` known to git (or those named by ``--studies``, by file stem)
runs as its own ``odebench run`` process into a fresh temporary output folder, so its cell
cache is empty and nothing under ``figures/`` is touched (the folder is removed afterwards).
Printed per study: wall seconds, the CPU seconds of the run and its workers (less sensitive
to a loaded machine), the cells computed, and the total against the target of issue 16 (every
committed study in at most 30 minutes in total with ``--workers 2`` on 2 cores). ``--csv
PATH`` also writes the rows (study, seconds, cpu_seconds, cells, workers) and the total,
written whole at the end through a temporary file: the source the docs cite. Exits 1 if a
run fails. ``--in-place`` runs each study into its own output folder instead (regenerating
its committed figures and timing that run at once, e.g. after a kind's version bump made
every cached cell stale); a study any of whose cells came from the cache is then refused,
since its time would not be that of a fresh run.
Not a test: timings belong here, on a quiet machine; a loaded one inflates every number.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from odebench.study.cache import new_file_mode

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "studies"
TARGET_S = 30 * 60


def committed_studies() -> list[str]:
    """Stems of the study files git tracks (untracked drafts are not committed studies)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "studies/*.toml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a checkout: every file there
        out = [str(p.relative_to(ROOT)) for p in STUDIES.glob("*.toml")]
    return sorted(Path(p).stem for p in out)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_study(name: str, workers: int, in_place: bool = False) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the run and its workers, cells computed) of one fresh
    run of studies/NAME.toml: into a temporary folder, or with ``in_place`` into the study's
    own output folder (refused when a cell came from its cache)."""
    with tempfile.TemporaryDirectory(prefix=f"study-times-{name}-") as tmp:
        command = [sys.executable, "-m", "odebench.cli", "run", str(STUDIES / f"{name}.toml")]
        command += [] if in_place else ["--out", str(Path(tmp) / name)]
        command += ["--workers", str(workers), "--no-progress", "--yes"]
        start, cpu = time.perf_counter(), _children_cpu()
        where = ROOT if in_place else tmp
        proc = subprocess.run(command, capture_output=True, text=True, cwd=where)
        elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        sys.exit(f"odebench run {name} failed (exit {proc.returncode}): {tail[0]}")
    text = proc.stdout + proc.stderr
    found = re.search(r"(\d+) cells?", text)
    cached = re.search(r"(\d+) from cache", text)
    if cached and int(cached.group(1)) > 0:
        sys.exit(f"{name}: {cached.group(1)} cell(s) came from its cache: not a fresh run's time")
    return elapsed, cpu, int(found.group(1)) if found else -1


def write_csv(path: Path, rows: list[tuple[str, float, float, int]], workers: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["study", "seconds", "cpu_seconds", "cells", "workers"])
        for name, seconds, cpu, cells in rows:
            writer.writerow([name, f"{seconds:.1f}", f"{cpu:.1f}", cells, workers])
        total, cpu = (sum(r[i] for r in rows) for i in (1, 2))
        writer.writerow(["total", f"{total:.1f}", f"{cpu:.1f}", "", workers])
    os.chmod(tmp, new_file_mode())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="+", metavar="NAME", help="file stems in studies/")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--csv", type=Path, help="also write the times to this CSV")
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="run into each study's own output folder (regenerates it; no cached cell allowed)",
    )
    args = parser.parse_args(argv)
    known = committed_studies()
    names = args.studies or known
    unknown = [n for n in names if not (STUDIES / f"{n}.toml").is_file()]
    if unknown:
        parser.error(f"no such study: {', '.join(unknown)} (choose from {', '.join(known)})")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    rows = []
    for name in names:
        seconds, cpu, cells = time_study(name, args.workers, args.in_place)
        rows.append((name, seconds, cpu, cells))
        print(f"{name:28s} {seconds:8.1f} s  (CPU {cpu:8.1f} s)  {cells:5d} cells", flush=True)
    total = sum(r[1] for r in rows)
    verdict = "ok" if total <= TARGET_S else "OVER"
    print(f"{'total':28s} {total:8.1f} s  ({total / 60:.1f} min; target 30 min: {verdict})")
    if args.csv is not None:
        write_csv(args.csv, rows, args.workers)


if __name__ == "__main__":
    main()
