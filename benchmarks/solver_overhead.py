"""Is the solver's own cost negligible next to the network's? Measured side by side.

    python benchmarks/solver_overhead.py [--batch 256] [--steps 50] [--repeats 5]

With the shipped digits UNet on the CPU, at equal numbers of model evaluations, it prints

- time(f-pndm, N steps) / time(ddim, N + 9 steps): the pseudo-RK warm-up and the multistep
  bookkeeping against the plainest step (both make N + 9 evaluations);
- time(odebench ddim, N steps) / time(diffusers DDIMScheduler loop, N steps): odebench's
  solver and model wrapper against diffusers' own loop around the same network.

Target (issue: real networks): both ratios at most 1.05. Runs alternate and the median of
``--repeats`` runs is used, so a background load affects both sides alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import odebench as ob


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers import DDIMScheduler

    model = ob.models.load("digits-unet")  # float32, CPU
    net = model.net
    sched = ob.schedules.get("ddpm-linear-1000")
    x_T = torch.randn(args.batch, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    n = args.steps
    grid = {k: ob.timesteps(k, "uniform", t_max=1.0, t_min=1e-3) for k in (n, n + 9)}

    def odebench_run(solver: str, steps: int):
        return lambda: ob.solve(solver, model, sched, x_T, grid[steps])

    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=True,
    )
    scheduler.set_timesteps(n)

    def diffusers_run():
        x = x_T
        with torch.inference_mode():
            for t in scheduler.timesteps:
                x = scheduler.step(net(x, t.float().expand(x.shape[0])), t, x).prev_sample
        return x

    runs = {
        "f-pndm": odebench_run("f-pndm", n),
        "ddim+9": odebench_run("ddim", n + 9),
        "ddim": odebench_run("ddim", n),
        "diffusers": diffusers_run,
    }
    for fn in runs.values():  # warm-up
        fn()
    times = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, fn in runs.items():
            times[k].append(median_time(fn, 1))
    med = {k: statistics.median(v) for k, v in times.items()}
    r1 = med["f-pndm"] / med["ddim+9"]
    r2 = med["ddim"] / med["diffusers"]
    print(
        f"digits UNet, batch {args.batch}, CPU threads {torch.get_num_threads()}, "
        f"median of {args.repeats}"
    )
    print(
        f"  f-pndm {n} steps ({n + 9} NFE): {med['f-pndm']:.3f} s   "
        f"ddim {n + 9} steps: {med['ddim+9']:.3f} s   ratio {r1:.3f} "
        f"{'ok' if r1 <= 1.05 else 'OVER 1.05'}"
    )
    print(
        f"  odebench ddim {n} steps: {med['ddim']:.3f} s   diffusers DDIMScheduler loop "
        f"{n} steps: {med['diffusers']:.3f} s   ratio {r2:.3f} "
        f"{'ok' if r2 <= 1.05 else 'OVER 1.05'}"
    )


if __name__ == "__main__":
    main()
