"""Why LMSDiscreteScheduler's error grows with N in the audit: the time convention, amplified.

LMS (k-diffusion's ``sample_lms``, order 4) passes fractional timesteps to the model.
diffusers maps its sigma to a timestep by interpolating log sigma linearly between integer
timesteps; odebench's audit tells its exact model the time (i + 1) / T of that timestep on
its own table. Between two knots the two disagree (near t = 0.0015 by 0.06 steps of the
table, a few percent in sigma). Most schedulers pass that mismatch through; LMS's last step,
from the smallest sigma to 0, extrapolates the cubic through the last four sigmas, and its
coefficients grow with N (with Karras sigmas to 5000x the step at N = 700), so it amplifies
any inconsistency between the sigma the scheduler holds and the noise level the model
answers for.

This runs LMS (default and Karras sigmas) on gaussian-lowrank in its own basis (data
N(mu, diag(s2)) of rank 3 in 8-d, exact eps, exact flow) twice: with the model answering at
the scheduler's own sigma (diffusers' convention) and at the audit's time of the timestep
(odebench's convention), and writes the error at t = 0 and the largest last-step
coefficient relative to the step.

    python scripts/lms_time_convention.py [--out figures/audit/lms_time_convention.csv]
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import warnings
from pathlib import Path

import torch

import odebench as ob

LADDER = (10, 20, 50, 100, 250, 300, 500, 700)
MU = torch.linspace(-0.6, 0.6, 8, dtype=torch.float64)
S2 = torch.tensor([1.0, 0.5, 0.25, 0, 0, 0, 0, 0], dtype=torch.float64)


def eps(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Exact eps of the sigma-scaled state x = x0 + sigma z."""
    return sigma * (x - MU) / (S2 + sigma**2)


def exact(x: torch.Tensor, s: float, t: float) -> torch.Tensor:
    """The exact probability-flow map of the sigma-scaled state from sigma s to sigma t."""
    return MU + torch.sqrt((S2 + t * t) / (S2 + s * s)) * (x - MU)


def odebench_sigma(timestep: float) -> float:
    """The sigma odebench's audit tells its model for a (fractional) VP timestep."""
    abar = float(ob.schedules.get("ddpm-linear-1000").alpha_bar((timestep + 1.0) / 1000))
    return math.sqrt((1.0 - abar) / abar)


def run(n: int, karras: bool, convention: str) -> tuple[float, float]:
    """(error at sigma = 0, largest |LMS coefficient| of the last step / its length)."""
    from diffusers import LMSDiscreteScheduler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sch = LMSDiscreteScheduler(beta_schedule="linear", use_karras_sigmas=karras)
    sch.set_timesteps(n)
    sigmas = [float(s) for s in sch.sigmas]
    z = torch.randn(16, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = start = MU + torch.sqrt(S2 + sigmas[0] ** 2) * z
    for k, timestep in enumerate(sch.timesteps):
        told = sigmas[k] if convention == "diffusers" else odebench_sigma(float(timestep))
        sch.scale_model_input(x, timestep)  # as a pipeline does (x / a; eps needs none)
        # the exact model at noise level `told`, fed the state
        x = sch.step(eps(x, told), timestep, x).prev_sample
    error = float(((x - exact(start, sigmas[0], 0.0)) ** 2).sum(-1).mean().sqrt())
    coeff = max(abs(sch.get_lms_coefficient(4, n - 1, j)) for j in range(4))
    return error, coeff / sigmas[-2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figures/audit/lms_time_convention.csv"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for karras in (False, True):
        for n in LADDER:
            for convention in ("diffusers", "odebench"):
                error, ratio = run(n, karras, convention)
                rows.append([karras, n, convention, f"{error:.6e}", f"{ratio:.4g}"])
                print(*rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["karras", "steps", "model_told", "error", "last_coeff_over_step"])
        writer.writerows(rows)
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
