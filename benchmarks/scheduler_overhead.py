"""odebench's per-step cost against diffusers' schedulers, with a model that costs nothing.

    python benchmarks/scheduler_overhead.py [--batch 16] [--dim 3072] [--steps 100] [--rounds 7]

The model returns one fixed tensor of zeros, so what is timed is the sampler alone: odebench's
``solve`` (validation, plan, state machine, divergence check, Solution) against the loop a
diffusers pipeline runs (``model``, then ``scheduler.step(...).prev_sample``; ``set_timesteps``,
which resets a multistep scheduler, is called before the clock starts). Each family is run on
the same number of steps, in the same state dtype, by the odebench solver with the same
coefficients:

    DDIM         DDIMScheduler                            ddim
    PNDM         PNDMScheduler (3 PRK steps, then PLMS)   pndm-diffusers
    PLMS         PNDMScheduler(skip_prk_steps=True)       plms-diffusers
    DPM++ 2M     DPMSolverMultistepScheduler (order 2)    dpm-solver++-2m
    UniPC-2/3    UniPCMultistepScheduler (bh2)            unipc-2-bh2 / unipc-3-bh2 (lof)

and a minimal hand-written DDIM loop (per-step Python-float coefficients, ``a * x + b * eps``)
shows the floor. Rounds alternate the contenders so background load hits all alike; the best
of ``--rounds`` is kept. Target (issue 16): odebench at most half of diffusers' time per step,
for every family, in float32 and float64. Timings are for this script, never for tests.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch

import odebench as ob

SCHEDULE = "ddpm-linear-1000"  # beta linear 1e-4 .. 0.02 on 1000 steps, diffusers' default
TABLE = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")


def families() -> dict[str, tuple[Callable, str, dict]]:
    """family -> (diffusers scheduler factory, odebench solver, its options)."""
    import diffusers as d

    return {
        "DDIM": (lambda: d.DDIMScheduler(**TABLE, clip_sample=False), "ddim", {}),
        "PNDM": (lambda: d.PNDMScheduler(**TABLE), "pndm-diffusers", {}),
        "PLMS": (lambda: d.PNDMScheduler(**TABLE, skip_prk_steps=True), "plms-diffusers", {}),
        "DPM++ 2M": (
            lambda: d.DPMSolverMultistepScheduler(**TABLE, solver_order=2),
            "dpm-solver++-2m",
            {},
        ),
        "UniPC-2": (
            lambda: d.UniPCMultistepScheduler(**TABLE, solver_order=2, solver_type="bh2"),
            "unipc-2-bh2",
            {"lower_order_final": True},  # diffusers' default
        ),
        "UniPC-3": (
            lambda: d.UniPCMultistepScheduler(**TABLE, solver_order=3, solver_type="bh2"),
            "unipc-3-bh2",
            {"lower_order_final": True},
        ),
    }


class ZeroModel:
    """eps = 0 for any (x, t): one tensor made once, so the model costs a function call."""

    def __init__(self, like: torch.Tensor):
        self.out = torch.zeros_like(like)

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        return self.out


Contender = tuple[Callable[[], None], Callable[[], None]]  # (prepare, untimed; run, timed)


def _untimed() -> None:
    """Nothing to prepare."""


def contenders(steps: int, x: torch.Tensor, names: list[str]) -> dict[str, Contender]:
    """name -> (prepare, run): ``run`` is one whole sampling loop of ``steps`` steps from x,
    ``prepare`` what must happen before it outside the clock (diffusers' ``set_timesteps``)."""
    model = ZeroModel(x)
    sched = ob.schedules.get(SCHEDULE)
    ts = ob.timesteps(steps, "pndm", schedule=sched)  # t = (i + 1) / T, then t = 0
    runs: dict[str, Contender] = {}
    for family in names:
        make, solver, options = families()[family]
        runs[f"{family}/odebench"] = _odebench_run(solver, options, model, sched, x, ts)
        runs[f"{family}/diffusers"] = _diffusers_run(make(), steps, model, x)
    runs["minimal DDIM"] = _minimal_ddim(model, sched, x, ts)
    return runs


def _odebench_run(solver, options, model, sched, x, ts) -> Contender:
    def run() -> None:
        ob.solve(solver, model, sched, x, ts, **options)

    return _untimed, run


def _diffusers_run(scheduler, steps: int, model, x) -> Contender:
    def prepare() -> None:  # also resets a multistep scheduler's history
        scheduler.set_timesteps(steps)

    def run() -> None:
        sample = x
        for t in scheduler.timesteps:
            sample = scheduler.step(model(sample, t), t, sample).prev_sample

    return prepare, run


def _minimal_ddim(model, sched, x, ts) -> Contender:
    """The DDIM map x_s = (alpha_s / alpha_t) x - sigma_s expm1(lambda_s - lambda_t) eps with
    its two coefficients per step made once, as Python floats: the least a sampler can do."""
    coefs = []
    for t, s in zip(ts[:-1].tolist(), ts[1:].tolist(), strict=True):
        a, b = sched.scalars(t), sched.scalars(s)
        coef = -a.sigma / a.alpha if b.sigma == 0.0 else -b.sigma * math.expm1(b.lam - a.lam)
        coefs.append((b.alpha / a.alpha, coef))
    nodes = ts[:-1].unbind(0)

    def run() -> None:
        sample = x
        for t, (ratio, coef) in zip(nodes, coefs, strict=True):
            sample = ratio * sample + coef * model(sample, t)

    return _untimed, run


def best_times(runs: dict[str, Contender], rounds: int) -> dict[str, float]:
    """The best wall time of each run over ``rounds`` rounds, contenders alternating."""
    for prepare, run in runs.values():  # warm-up: caches, allocator, lazy imports
        prepare()
        run()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, (prepare, run) in runs.items():
            prepare()
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dim", type=int, default=3072, help="features per sample")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--families", default=",".join(families()))
    args = parser.parse_args(argv)
    names = [f.strip() for f in args.families.split(",")]
    unknown = sorted(set(names) - set(families()))
    if unknown or args.steps < 4 or args.rounds < 1:
        parser.error(f"unknown families {unknown}" if unknown else "need steps >= 4, rounds >= 1")
    torch.set_num_threads(args.threads)
    print(
        f"zero model, batch {args.batch} x {args.dim}, {args.steps} steps, "
        f"{torch.get_num_threads()} thread(s), best of {args.rounds} alternating rounds; "
        "us per step"
    )
    print(f"{'family':<9} {'dtype':<8} {'odebench':>9} {'diffusers':>10} {'ratio':>6}")
    worst = 0.0
    for dtype in args.dtypes.split(","):
        x = torch.randn(args.batch, args.dim, generator=torch.Generator().manual_seed(0))
        x = x.to(getattr(torch, dtype.strip()))
        with torch.no_grad():
            best = best_times(contenders(args.steps, x, names), args.rounds)
        per_step = {k: 1e6 * v / args.steps for k, v in best.items()}
        for family in names:
            ours, theirs = per_step[f"{family}/odebench"], per_step[f"{family}/diffusers"]
            worst = max(worst, ours / theirs)
            verdict = "ok" if ours <= 0.5 * theirs else "OVER 0.5"
            print(
                f"{family:<9} {dtype:<8} {ours:9.1f} {theirs:10.1f} {ours / theirs:6.2f}  {verdict}"
            )
        floor = per_step["minimal DDIM"]
        if "DDIM" in names:
            ratio = per_step["DDIM/odebench"] / floor
            print(f"minimal  {dtype:<8} {floor:9.1f}  (odebench ddim / minimal loop: {ratio:.2f})")
    print(f"worst odebench / diffusers ratio: {worst:.2f} (target <= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
