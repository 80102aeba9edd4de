"""Run every reproduction script of the audit studies where odebench is not installed, and
record what each printed: ``<folder>/runs.csv`` (script, sha256 of its text, exit status,
seconds, its RESULT line, check).

The interpreter (``--python``) should be a fresh virtual environment with only torch, numpy
and diffusers, the versions the studies audited (issue 18: "every repro script runs in a
fresh environment with only torch, numpy and diffusers"):

    python3 -m venv /tmp/repro-env
    /tmp/repro-env/bin/pip install torch==2.13.0 numpy diffusers==0.42.1
    python3 -m venv /tmp/repro-env-scipy
    /tmp/repro-env-scipy/bin/pip install torch==2.13.0 numpy diffusers==0.42.1 scipy
    python scripts/run_repro.py --python /tmp/repro-env/bin/python \\
        --with-scipy /tmp/repro-env-scipy/bin/python figures/audit/repro figures/audit_flow/repro

diffusers' LMSDiscreteScheduler needs scipy (an optional dependency of diffusers, not among
its requirements): a script that stops with diffusers' "requires the scipy library" runs
again with ``--with-scipy`` (the same environment plus scipy), and its row says so (``env``).
``--keep`` reuses the rows of an existing runs.csv whose script is unchanged and passed.

A script passes its check when it exits 0 and prints a RESULT line; where its finding was
removed by a counterfactual (the index's cause does not start with "none of the probes")
the line reads ``before -> after`` and the counterfactual moves the number the right way:
a larger fitted order, a smaller value for every other kind. Exit status 1 when a script
fails its check, 2 (one line) for bad arguments or an interpreter that can import odebench.
``tests/test_audit_repro.py`` checks that runs.csv covers the folder's scripts as committed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RUNS = "runs.csv"
INDEX = "index.csv"
RESULT = re.compile(r"^RESULT (?P<label>.+): (?P<before>\S+)(?: -> (?P<after>\S+))?$", re.M)
NEEDS_SCIPY = "requires the scipy library"
BASE, SCIPY = "torch numpy diffusers", "torch numpy diffusers scipy"
#: the kinds whose number a working counterfactual raises (the others it lowers)
RAISED = ("order",)


def digest(path: Path) -> str:
    """The first 16 hex digits of the sha256 of a script's text."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def check(kind: str, fixed: bool, status: int, result: str) -> str:
    """ "ok", or why a script's run does not show its defect and fix."""
    if status != 0:
        return f"exit status {status}"
    match = RESULT.search(result)
    if match is None:
        return "no RESULT line"
    if not fixed:
        return "ok"
    if match["after"] is None:
        return "no '->' though a counterfactual removed the finding"
    before, after = float(match["before"]), float(match["after"])
    better = after > before if kind in RAISED else after < before
    return "ok" if better else f"the counterfactual does not improve it ({before} -> {after})"


def run_one(python: str, path: Path, timeout: float) -> tuple[int, float, str, bool]:
    """(exit status, seconds, RESULT line, whether it stopped for want of scipy) of one
    script, run in an empty folder."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cwd:
        try:
            done = subprocess.run(
                [python, str(path.resolve())],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            status, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired:
            status, out, err = 124, "", ""
    match = RESULT.search(out)
    scipy = status != 0 and NEEDS_SCIPY in err
    return status, time.perf_counter() - start, match.group(0) if match else "", scipy


def runs_csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    fields = ["script", "sha256", "env", "exit", "seconds", "result", "check"]
    writer = csv.DictWriter(buf, fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def run_folder(
    python: str, scipy: str | None, folder: Path, jobs: int, timeout: float, keep: bool
) -> list[dict[str, str]]:
    """Run the scripts of ``folder``'s index.csv; write and return its runs.csv rows."""
    index = list(csv.DictReader((folder / INDEX).open()))
    kept = {}
    if keep and (folder / RUNS).is_file():
        kept = {r["script"]: r for r in csv.DictReader((folder / RUNS).open())}

    def one(entry: dict[str, str]) -> dict[str, str]:
        path = folder / entry["script"]
        old = kept.get(entry["script"])
        if old is not None and old["sha256"] == digest(path) and old["check"] == "ok":
            return {"env": BASE, **old}  # a row from before the env column ran in the base
        status, seconds, result, needs = run_one(python, path, timeout)
        env = BASE
        if needs and scipy is not None:
            status, seconds, result, _ = run_one(scipy, path, timeout)
            env = SCIPY
        fixed = not entry["cause"].startswith("none of the probes")
        return {
            "script": entry["script"],
            "sha256": digest(path),
            "env": env,
            "exit": str(status),
            "seconds": f"{seconds:.1f}",
            "result": result,
            "check": check(entry["kind"], fixed, status, result),
        }

    with ThreadPoolExecutor(jobs) as pool:
        rows = list(pool.map(one, index))
    for r in rows:
        print(f"{r['check']:>4}  {r['seconds']:>6} s  {r['script']}: {r['result']}")
    (folder / RUNS).write_text(runs_csv(rows))
    return rows


def refuse(python: str) -> str:
    """Why ``python`` is not a fresh environment to run the scripts in ("" if it is)."""
    try:
        probe = subprocess.run(
            [python, "-c", "import odebench"], capture_output=True, cwd=tempfile.gettempdir()
        )
    except OSError as err:
        return err.strerror or "cannot run"
    return "can import odebench: use a fresh venv" if probe.returncode == 0 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="repro folders (with index.csv)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run in")
    parser.add_argument("--with-scipy", help="the same environment plus scipy (for LMS)")
    parser.add_argument("--keep", action="store_true", help="reuse unchanged passed rows")
    parser.add_argument("--jobs", type=int, default=1, help="scripts run at once")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per script")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (folder / INDEX).is_file():
            print(f"run_repro: {folder}: no {INDEX}", file=sys.stderr)
            return 2
    if args.jobs < 1:
        print("run_repro: --jobs must be at least 1", file=sys.stderr)
        return 2
    for python in filter(None, (args.python, args.with_scipy)):
        problem = refuse(python)
        if problem:
            print(f"run_repro: {python}: {problem}", file=sys.stderr)
            return 2
    failed = 0
    for folder in args.folders:
        rows = run_folder(args.python, args.with_scipy, folder, args.jobs, args.timeout, args.keep)
        bad = sum(r["check"] != "ok" for r in rows)
        print(f"{folder}: {len(rows) - bad} of {len(rows)} scripts ok")
        failed += bad
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
