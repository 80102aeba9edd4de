"""Is the solver's own cost negligible next to the network's? Measured side by side.

    python benchmarks/solver_overhead.py [--batch 256] [--steps 50] [--rounds 7]

With the shipped digits UNet on the CPU, at equal numbers of model evaluations (NFE):

- time(f-pndm, N steps) / time(ddim, N + 9 steps): the pseudo-RK warm-up and the multistep
  bookkeeping against the plainest step (both make N + 9 evaluations);
- time(odebench ddim, N steps) / time(diffusers DDIMScheduler loop, N steps): odebench's
  solver and model wrapper against diffusers' own loop around the same network, on the same
  time points (diffusers' timesteps, i.e. t = (i + 1) / T, then t = 0).

Target (issue: real networks): both ratios at most 1.05. Each run is timed in two parts: the
time spent inside the network, and the rest (the solver's own time). Rounds alternate the
contenders so background load hits all alike. Two ratios are printed: the ratio of median
total times, which on a shared 2-core machine carries a few percent of noise either way, and
the ratio at a common network cost, (NFE x median cost of one evaluation + own time), which
isolates what the solver adds and is the number the target is about.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import odebench as ob


class TimedNet(torch.nn.Module):
    """Wraps the network and adds up the wall time spent inside it."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net, self.seconds, self.calls = net, 0.0, 0

    def forward(self, x, time_input):
        start = time.perf_counter()
        out = self.net(x, time_input)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import DDIMScheduler

    loaded = ob.models.load("digits-unet")  # float32, CPU
    timed = TimedNet(loaded.net)
    model = ob.models.NetworkModel(timed, time_input="index", T=1000, name="digits-unet")
    sched = ob.schedules.get("ddpm-linear-1000")
    x_T = torch.randn(args.batch, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    n = args.steps

    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=True,
    )
    scheduler.set_timesteps(n)
    same_points = torch.cat(
        [(scheduler.timesteps.double() + 1.0) / 1000, torch.zeros(1, dtype=torch.float64)]
    )

    def diffusers_loop():
        x = x_T
        with torch.inference_mode():
            for t in scheduler.timesteps:
                eps = timed(x, t.float().expand(x.shape[0]))
                x = scheduler.step(eps, t, x).prev_sample
        return x

    grid = {k: ob.timesteps(k, "uniform", t_max=1.0, t_min=1e-3) for k in (n, n + 9)}
    runs = {
        "f-pndm": lambda: ob.solve("f-pndm", model, sched, x_T, grid[n]),
        "ddim+9": lambda: ob.solve("ddim", model, sched, x_T, grid[n + 9]),
        "ddim": lambda: ob.solve("ddim", model, sched, x_T, same_points),
        "diffusers": diffusers_loop,
    }
    for fn in runs.values():  # warm-up
        fn()
    total = {k: [] for k in runs}
    own = {k: [] for k in runs}
    per_eval = []
    for _ in range(args.rounds):
        for k, fn in runs.items():
            timed.seconds, timed.calls = 0.0, 0
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            total[k].append(elapsed)
            own[k].append(elapsed - timed.seconds)
            per_eval.append(timed.seconds / timed.calls)
    cost = statistics.median(per_eval)
    nfe = {"f-pndm": n + 9, "ddim+9": n + 9, "ddim": n, "diffusers": n}
    print(
        f"digits UNet, batch {args.batch}, CPU threads {torch.get_num_threads()}, "
        f"{args.rounds} alternating rounds; one evaluation: {1e3 * cost:.1f} ms (median)"
    )
    for k in runs:
        print(
            f"  {k:<10} NFE {nfe[k]:>3}  total {statistics.median(total[k]):7.3f} s  "
            f"solver's own time {1e3 * statistics.median(own[k]):7.2f} ms"
        )
    pairs = (
        ("f-pndm", "ddim+9", f"f-pndm {n} steps / ddim {n + 9} steps"),
        ("ddim", "diffusers", f"odebench ddim / diffusers DDIMScheduler, {n} steps"),
    )
    for a, b, label in pairs:
        raw = statistics.median(total[a]) / statistics.median(total[b])
        common = (nfe[a] * cost + statistics.median(own[a])) / (
            nfe[b] * cost + statistics.median(own[b])
        )
        verdict = "ok" if common <= 1.05 else "OVER 1.05"
        print(
            f"  {label}: ratio at a common network cost {common:.4f} {verdict}   "
            f"ratio of median totals {raw:.3f}"
        )


if __name__ == "__main__":
    main()
