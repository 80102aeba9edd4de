"""Time one cell of a committed study, and fingerprint its rows (before/after comparisons).

A study's cost is the sum of its cells'; a speed-up that must not change results is checked
by running the same cell with the code before and after (e.g. from a ``git worktree`` of the
old commit on ``PYTHONPATH``), alternately, and comparing the CPU seconds and the rows'
fingerprint, which is equal only when every value of every row is the same to the bit:

    python benchmarks/cell_times.py studies/audit.toml sampler=DEISMultistepScheduler
    PYTHONPATH=/tmp/old python benchmarks/cell_times.py studies/audit.toml sampler=...

A cell is the study's grid with every plain axis at its first value unless ``axis=value``
names another (the ladder axes keep their lists), and the study's options. One thread.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch


def cell(study_file: Path, chosen: dict[str, str]) -> dict[str, Any]:
    """The config of the cell of ``study_file`` that ``chosen`` names (see the module doc):
    the first of the study's cells, in its expansion order, whose axes have those values."""
    from odebench.study.runner import expand_cells
    from odebench.study.spec import load_study

    for config in expand_cells(load_study(study_file)):
        if all(str(config.get(axis)) == value for axis, value in chosen.items()):
            return config
    raise SystemExit(f"{study_file}: no cell with {chosen}")


def fingerprint(rows: list[dict[str, Any]]) -> str:
    """A hash of every value of every row (floats by their exact hex form)."""

    def exact(value: Any) -> Any:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else value.hex()
        return str(value)

    text = json.dumps([{k: exact(v) for k, v in row.items()} for row in rows], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def commit(root: Path) -> str:
    """The git commit of the odebench at ``root`` ("+changes" when its package differs)."""
    run = lambda *cmd: subprocess.run(  # noqa: E731
        ["git", "-C", str(root), *cmd], capture_output=True, text=True
    ).stdout.strip()
    head = run("rev-parse", "--short", "HEAD") or str(root)
    return head + ("+changes" if run("status", "--porcelain", "--", "odebench") else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("axes", nargs="*", help="axis=value naming the cell")
    parser.add_argument("--csv", type=Path, help="append a row (code, study, cell, ...) here")
    args = parser.parse_args(argv)
    chosen = dict(a.split("=", 1) for a in args.axes if "=" in a)
    if len(chosen) != len(args.axes):
        raise SystemExit("cells are named by axis=value")
    torch.set_num_threads(1)
    from odebench.study import get

    config = cell(args.study, chosen)
    start = time.process_time()
    rows = get(config["kind"]).run_cell(config)
    seconds = time.process_time() - start
    import odebench

    code = commit(Path(odebench.__file__).resolve().parents[1])
    line = [code, args.study.stem, " ".join(args.axes), f"{seconds:.1f}", len(rows)]
    line.append(fingerprint(rows))
    print(
        f"{code}: {args.study.stem} {' '.join(args.axes)}: {seconds:.1f} CPU s, "
        f"{len(rows)} rows, fingerprint {line[-1]}"
    )
    if args.csv is not None:
        new = not args.csv.exists()
        with args.csv.open("a", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            if new:
                writer.writerow(["code", "study", "cell", "cpu_seconds", "rows", "fingerprint"])
            writer.writerow(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
