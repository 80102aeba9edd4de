"""Time the reference's two backends side by side: scipy's DOP853 on the host, odebench's in torch.

    python benchmarks/reference_backend.py [--rounds 3] [--cases gmm-2d gmm-64d digits-unet]
        [--csv figures/benchmarks/reference_backend.csv]

Each case is the global reference an orders study makes (the union of the ladder grids 25 ..
400 uniform steps from t_max to t_min = 0.1, in float64, one torch thread as in the study
cells): gmm-2d and gmm-64d with their exact eps (64 samples, tol 1e-12, the orders study's
defaults), and the shipped digits UNet on digits-data (16 samples, tol 1e-10, as
studies/digits_orders.toml). The two backends alternate within each round, so background
load hits both alike; the best of ``--rounds`` is kept, of the wall time and of the
process's CPU time (less sensitive to a shared machine's load). Printed per case:
evaluations, best wall seconds of each, the ratios torch / scipy of the best wall and CPU
times (target on the CPU: at most 1), the largest
relative difference of the two references' states, and the torch solve's evaluations per
host synchronisation (one per step, accepted or rejected). ``--csv PATH`` also writes these
rows to a CSV (written whole at the end, through a temporary file), the source the docs cite.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import torch

import odebench as ob
from odebench.convergence import ladder_grids
from odebench.integrate.pf import pf_dop853
from odebench.reference import reference, union_times
from odebench.study.cache import new_file_mode

CASES = {
    # name: (problem, schedule, network or None, samples, tolerance)
    "gmm-2d": ("gmm-2d", "linear", None, 64, 1e-12),
    "gmm-64d": ("gmm-64d", "linear", None, 64, 1e-12),
    "digits-unet": ("digits-data", "ddpm-linear-1000", "digits-unet", 16, 1e-10),
}
STEPS, T_MIN = [25, 50, 100, 200, 400], 0.1


def setup(case: str):
    problem, schedule, network, n, tol = CASES[case]
    sched = ob.schedules.get(schedule)
    prob = ob.problems.get(problem, sched)
    t_max = ob.grids.start_time(sched, 1.0)
    x = prob.sample_marginal(n, t_max, torch.Generator().manual_seed(0))
    times = union_times(*ladder_grids(STEPS, "uniform", t_max, T_MIN, sched).values())
    model = ob.models.load(network, dtype=torch.float64) if network else None
    return prob, sched, x, times, tol, model


def timed(backend: str, prob, sched, x, times, tol, model):
    """(wall seconds, CPU seconds of this process, the reference)."""
    wall, cpu = time.perf_counter(), time.process_time()
    ref = reference(prob, sched, x, times, tol=tol, model=model, backend=backend)
    return time.perf_counter() - wall, time.process_time() - cpu, ref


def syncs_per_step(prob, sched, x, times, tol, model) -> float:
    """Evaluations per host read of the torch lambda solve (3 reads choose the first step)."""
    _, res = pf_dop853(model or prob.eps, sched, x, times, variable="lambda", rtol=tol, atol=tol)
    return res.nfev / (res.steps + res.rejected + 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--csv", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    rows = []
    torch.set_num_threads(1)
    print(
        f"{'case':12s} {'nfe':>6s} {'scipy s':>8s} {'torch s':>8s} {'ratio':>6s} "
        f"{'cpu ratio':>9s} {'max rel diff':>12s} {'nfe/sync':>8s}"
    )
    for case in args.cases:
        prob, sched, x, times, tol, model = setup(case)
        best = {b: [float("inf")] * 2 for b in ("scipy", "torch")}  # wall, cpu
        refs = {}
        for r in range(args.rounds):
            order = ("scipy", "torch") if r % 2 == 0 else ("torch", "scipy")
            for backend in order:
                wall, cpu, refs[backend] = timed(backend, prob, sched, x, times, tol, model)
                best[backend] = [min(best[backend][0], wall), min(best[backend][1], cpu)]
        (scipy_wall, scipy_cpu), (torch_wall, torch_cpu) = best["scipy"], best["torch"]
        a, b = refs["torch"].states[1:], refs["scipy"].states[1:]
        dims = tuple(range(2, a.ndim))
        rel = float(((a - b).norm(dim=dims) / b.norm(dim=dims)).max())
        per_sync = syncs_per_step(prob, sched, x, times, tol, model)
        print(
            f"{case:12s} {refs['torch'].nfe:6d} {scipy_wall:8.2f} {torch_wall:8.2f} "
            f"{torch_wall / scipy_wall:6.2f} {torch_cpu / scipy_cpu:9.2f} {rel:12.1e} "
            f"{per_sync:8.1f}",
            flush=True,
        )
        rows.append(
            {
                "case": case,
                "nfe": refs["torch"].nfe,
                "rounds": args.rounds,
                "scipy_wall_s": f"{scipy_wall:.3f}",
                "torch_wall_s": f"{torch_wall:.3f}",
                "ratio_wall": f"{torch_wall / scipy_wall:.3f}",
                "ratio_cpu": f"{torch_cpu / scipy_cpu:.3f}",
                "max_rel_diff": f"{rel:.2e}",
                "nfe_per_sync": f"{per_sync:.1f}",
            }
        )
    if args.csv is not None:
        write_csv(args.csv, rows)


def write_csv(path: Path, rows: list[dict]) -> None:
    """All rows at once, through a temporary file renamed into place (never half a table)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.chmod(tmp, new_file_mode())
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
