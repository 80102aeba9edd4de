"""What a float64 digits-network study costs on a CPU, and what no code change can remove.

    python benchmarks/network_costs.py [--csv figures/benchmarks/network_costs.csv] [--quick]

Three measurements, side by side in one run (wall milliseconds, best of ``--repeats``):

- ``forward``: one forward pass of the shipped class-conditional digits UNet at batch 8, 16
  and 32, float32 and float64, on 1 and 2 threads (what a second core would give the last
  cell of a study, whose cells run on one thread each), with the share spent in convolutions;
- ``gemm``: the float64 matrix product a 3x3 convolution of 32 channels on 16 images of 8x8
  reduces to (1024 x 288 times 288 x 32), against the convolution itself: the convolution
  runs at the rate of the product, so no other layout of it can be much faster;
- ``reference``: the evaluations an adaptive reference of the network's ODE takes (DOP853 in
  lambda, from t = 1 to 0.1 through 401 times, 2 samples) at tolerances 1e-10, 1e-8 and 1e-6,
  and how far its final state moves from the 1e-10 one.

Not a test: times belong on a quiet machine. ``--quick`` skips the reference (minutes).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from odebench.study.cache import atomic_write_text


def best_ms(fn: Callable[[], object], repeats: int, inner: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return 1e3 * best


def conv_share(net: torch.nn.Module, args: tuple) -> float:
    """The fraction of a forward pass's CPU time in convolution kernels (torch profiler)."""
    with torch.profiler.profile() as prof, torch.inference_mode():
        for _ in range(3):
            net(*args)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key)
    return conv / total if total else float("nan")


def forward_rows(repeats: int) -> list[dict]:
    from odebench.models import load

    rows = []
    for dtype in (torch.float32, torch.float64):
        model = load("digits-cond-unet", dtype=dtype)
        net = model.net
        for batch in (8, 16, 32):
            gen = torch.Generator().manual_seed(batch)
            x = torch.randn(batch, 1, 8, 8, generator=gen, dtype=torch.float64).to(dtype)
            index = (999 * torch.rand(batch, generator=gen, dtype=torch.float64)).to(dtype)
            labels = torch.arange(batch) % 10
            args = (x, index, labels)
            for threads in (1, 2):
                torch.set_num_threads(threads)
                with torch.inference_mode():
                    ms = best_ms(lambda net=net, args=args: net(*args), repeats)
                share = conv_share(net, args) if threads == 1 else float("nan")
                rows.append(
                    {
                        "measure": "forward",
                        "case": f"{str(dtype).replace('torch.', '')} batch {batch}",
                        "threads": threads,
                        "value": round(ms, 3),
                        "unit": "ms",
                        "note": f"conv share {share:.2f}" if share == share else "",
                    }
                )
    torch.set_num_threads(1)
    return rows


def gemm_rows(repeats: int) -> list[dict]:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 32, 8, 8, generator=gen, dtype=torch.float64)
    w = torch.randn(32, 32, 3, 3, generator=gen, dtype=torch.float64)
    a = torch.randn(1024, 288, generator=gen, dtype=torch.float64)
    b = torch.randn(288, 32, generator=gen, dtype=torch.float64)
    conv = best_ms(lambda: F.conv2d(x, w, padding=1), repeats, inner=50)
    gemm = best_ms(lambda: a @ b, repeats, inner=50)
    flops = 2 * 1024 * 288 * 32
    return [
        {"measure": "gemm", "case": "conv2d 32->32 3x3, 16 x 8x8", "threads": 1,
         "value": round(conv, 4), "unit": "ms", "note": f"{flops / conv / 1e6:.1f} GFLOP/s"},
        {"measure": "gemm", "case": "matmul 1024x288 @ 288x32", "threads": 1,
         "value": round(gemm, 4), "unit": "ms", "note": f"{flops / gemm / 1e6:.1f} GFLOP/s"},
    ]  # fmt: skip


def reference_rows() -> list[dict]:
    from odebench import problems, schedules
    from odebench.kinds.common.networks import eps_model
    from odebench.reference import reference

    torch.set_num_threads(1)
    sched = schedules.get("ddpm-linear-1000")
    prob = problems.get("digits-data", sched)
    net = eps_model("trained", prob, sched)
    x_T = prob.sample_marginal(2, 1.0, torch.Generator().manual_seed(0))
    times = torch.linspace(1.0, 0.1, 401, dtype=torch.float64)
    rows, tight = [], None
    for tol in (1e-10, 1e-8, 1e-6):
        start = time.process_time()
        ref = reference(prob, sched, x_T, times, tol=tol, model=net, accuracy=False)
        seconds = time.process_time() - start
        final = ref.states[-1]
        tight = final if tight is None else tight
        moved = float((final - tight).norm() / tight.norm())
        rows.append(
            {
                "measure": "reference",
                "case": f"tol {tol:g}",
                "threads": 1,
                "value": ref.nfe,
                "unit": "evaluations",
                "note": f"{seconds:.1f} CPU s; final state {moved:.1e} from tol 1e-10",
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, help="also write the rows to this CSV")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many (default 5)")
    parser.add_argument("--quick", action="store_true", help="skip the reference (minutes)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    rows = forward_rows(args.repeats) + gemm_rows(args.repeats)
    if not args.quick:
        rows += reference_rows()
    for r in rows:
        print(f"{r['measure']:10s} {r['case']:34s} {r['threads']} thr  {r['value']:>10} "
              f"{r['unit']:11s} {r['note']}")  # fmt: skip
    by = {(r["case"], r["threads"]): r["value"] for r in rows if r["measure"] == "forward"}
    for case in dict.fromkeys(c for c, _ in by):
        print(f"two threads on {case}: {by[(case, 1)] / by[(case, 2)]:.2f}x faster")
    if args.csv is not None:
        write_csv(args.csv, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
