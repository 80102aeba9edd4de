"""Time the main job: `odebench orders` with its defaults, fresh and again from its cache.

    python benchmarks/orders_time.py

Targets (issue: the convergence engine): under 30 s fresh and under 5 s from the cache on the
2-core CI machine. Prints the measured times and their ratios to those targets; exits 1 if a
run fails. Not a test: timings belong here, side by side, not in the test suite.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"fresh": 30.0, "cached": 5.0}


def run(out: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "odebench.cli", "orders", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"odebench orders failed: {proc.stderr.strip()}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "orders"
        times = {"fresh": run(out), "cached": run(out)}
    for name, seconds in times.items():
        ratio = seconds / TARGETS[name]
        print(
            f"odebench orders ({name:6s}): {seconds:6.2f} s   target {TARGETS[name]:4.0f} s"
            f"   ratio {ratio:.2f} {'ok' if ratio <= 1 else 'OVER'}"
        )


if __name__ == "__main__":
    main()
