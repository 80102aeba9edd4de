"""GPU check: the network studies and solver timings on an accelerator.

    python scripts/gpu_check.py                        # on a GPU; finishes in under 5 minutes
    python scripts/gpu_check.py --small --device cpu   # the same code paths, tiny, on the CPU

It runs, on ``--device``:

1. a UNet2DModel of the size of DDPM's CIFAR-10 model (35.7M parameters, random weights: only
   timing matters) on a batch of 32x32x3 images, every solver at a few steps, timed per model
   evaluation, next to diffusers' own DDIMScheduler loop at equal NFE;
2. the shipped digits UNet: 1000-step DDIM and 50-step F-PNDM samples, timed;
3. the orders and norms studies of the shipped GMM networks (networks in float64 on the
   device, references by adaptive solves of the same networks).

It prints a table of time per NFE per solver and writes everything (timings, environment,
study tables) to ``--out``. ``--small`` swaps in a tiny UNet, fewer steps and smaller
studies so that the test suite can run the whole script on the CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import odebench as ob
from odebench.models import NetworkModel, shipped

SOLVERS = ["ddim", "s-pndm", "f-pndm", "pie", "prk", "fon", "rk4"]


def cifar_unet(small: bool):
    from diffusers import UNet2DModel

    if small:
        return UNet2DModel(
            sample_size=8,
            in_channels=3,
            out_channels=3,
            layers_per_block=1,
            block_out_channels=(8, 16),
            norm_num_groups=4,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        ), 8
    # google/ddpm-cifar10-32: 4 resolutions, attention at 16x16, 2 blocks per level.
    return UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        layers_per_block=2,
        block_out_channels=(128, 256, 256, 256),
        norm_num_groups=32,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        dropout=0.0,
    ), 32


class _Eps(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, index):
        return self.unet(x, index).sample


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def time_solvers(
    model: NetworkModel, eps_net, x_T: torch.Tensor, steps: int, device, rounds: int = 3
) -> list[dict]:
    """Median wall time per model evaluation of each solver and of diffusers' DDIM loop, over
    ``rounds`` rounds that visit every contender in turn (after one warm-up each), so clock
    and cache states affect all of them alike."""
    sched = ob.schedules.get("ddpm-linear-1000")
    runs = {}
    for name in SOLVERS:
        solver = ob.solvers.get(name)
        n = max(steps, solver.min_steps)
        ts = ob.timesteps(n, "uniform", t_max=1.0, t_min=1e-3)
        runs[name] = (n, solver.nfe(n), lambda s=solver, g=ts: ob.solve(s, model, sched, x_T, g).x)
    runs["diffusers DDIMScheduler"] = (steps, steps, diffusers_ddim(eps_net, x_T, steps, device))
    finite = {name: bool(torch.isfinite(fn()).all()) for name, (_, _, fn) in runs.items()}
    seconds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (_, _, fn) in runs.items():
            seconds[name].append(_timed(fn, device))
    rows = []
    for name, (n, nfe, _) in runs.items():
        med = statistics.median(seconds[name])
        rows.append(
            {
                "solver": name,
                "steps": n,
                "nfe": nfe,
                "seconds": med,
                "ms_per_nfe": 1e3 * med / nfe,
                "rounds": rounds,
                "finite": finite[name],
            }
        )
    return rows


def diffusers_ddim(eps_net, x_T: torch.Tensor, steps: int, device):
    """diffusers' DDIMScheduler loop (eta = 0, no clipping) at ``steps`` NFE, as a callable."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=True,
    )
    sched.set_timesteps(steps)

    def loop():
        x = x_T
        with torch.inference_mode():
            for t in sched.timesteps:
                x = sched.step(eps_net(x, t.to(device).expand(x.shape[0])), t, x).prev_sample
        return x

    return loop


def run_studies(device: str, small: bool, out: Path) -> dict:
    """The orders and norms studies of the shipped networks on ``device``: each network on the
    problem and schedule it was trained on (the digits UNet on the empirical digits
    distribution), its references adaptive solves of its own ODE. ``small`` keeps only the
    GMM networks, with short ladders."""
    import pandas as pd

    from odebench.kinds.common import card_problem
    from odebench.study import parse_study, run_study

    results = {}
    for net in shipped():
        card = ob.models.load(net).card
        problem, schedule = card_problem(card), card["schedule"]
        if small and not problem.startswith("gmm-"):
            continue
        image = problem == "digits-data"
        orders = {
            "study": {"name": f"orders-{net}", "kind": "orders"},
            "grid": {
                "problem": [problem],
                "model": [net],
                "schedule": [schedule],
                "solver": ["ddim", "s-pndm", "f-pndm", "fon"],
                "steps": [10, 20, 40] if small else [25, 50, 100, 200, 400],
                "t_min": [0.1],
            },
            "options": {
                "n_samples": 8 if small else (16 if image else 64),
                "device": device,
                "ref_tol": 1e-8 if small or image else 1e-10,
            },
        }
        norms = {
            "study": {"name": f"norms-{net}", "kind": "norms"},
            "grid": {
                "problem": [problem],
                "model": [net],
                "schedule": [schedule],
                "nfe": [20 if small else 50],
                "t_min": [1e-3],
            },
            "options": {
                "n_samples": 8 if small else (32 if image else 256),
                "device": device,
                "ref_tol": 1e-8,
            },
        }
        for spec in (orders, norms):
            start = time.perf_counter()
            res = run_study(parse_study(spec), out=out / spec["study"]["name"], progress=False)
            summary = pd.read_csv(res.summary_csv)
            results[spec["study"]["name"]] = {
                "seconds": time.perf_counter() - start,
                "summary": summary.to_dict(orient="records"),
            }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="tiny models and studies")
    parser.add_argument("--batch", type=int, default=None, help="images per batch")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed solve")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--out", type=Path, default=Path("results/gpu_check"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device visible to torch", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    batch = args.batch or (4 if args.small else 128)
    steps = args.steps or (5 if args.small else 20)
    report = {
        "device": str(device),
        "dtype": args.dtype,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "batch": batch,
        "steps": steps,
    }
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
        torch.backends.cudnn.benchmark = True

    unet, size = cifar_unet(args.small)
    report["unet_parameters"] = sum(p.numel() for p in unet.parameters())
    eps_net = _Eps(unet).to(device=device, dtype=dtype).eval()
    model = NetworkModel(
        eps_net, time_input="index", T=1000, device=device, dtype=dtype, name="cifar10-size-unet"
    )
    gen = torch.Generator(device=device).manual_seed(0)
    x_T = torch.randn(batch, 3, size, size, generator=gen, device=device, dtype=dtype)
    timings = time_solvers(model, eps_net, x_T, steps, device, rounds=1 if args.small else 3)
    report["unet_timings"] = timings

    if "digits-unet" in shipped():
        digits = ob.models.load("digits-unet", device=device, dtype=dtype)
        sched = ob.schedules.get("ddpm-linear-1000")
        x = torch.randn(64, 1, 8, 8, generator=gen, device=device, dtype=dtype)
        report["digits"] = []
        for solver, n in (("ddim", 50 if args.small else 1000), ("f-pndm", 50)):
            ts = ob.timesteps(n, "pndm", schedule=sched)
            _sync(device)
            start = time.perf_counter()
            sol = ob.solve(solver, digits, sched, x, ts)
            _sync(device)
            report["digits"].append(
                {
                    "solver": solver,
                    "steps": n,
                    "nfe": sol.nfe,
                    "seconds": time.perf_counter() - start,
                    "finite": bool(torch.isfinite(sol.x).all()),
                }
            )
    report["studies"] = run_studies(args.device, args.small, args.out)

    print(
        f"device: {report.get('gpu', device)}  dtype: {args.dtype}  batch: {batch}  "
        f"UNet parameters: {report['unet_parameters'] / 1e6:.1f}M"
    )
    base = next(r for r in timings if r["solver"] == "ddim")["ms_per_nfe"]
    print(f"{'solver':<24}{'steps':>6}{'NFE':>6}{'seconds':>10}{'ms/NFE':>9}{'vs ddim':>9}")
    for r in timings:
        print(
            f"{r['solver']:<24}{r['steps']:>6}{r['nfe']:>6}{r['seconds']:>10.3f}"
            f"{r['ms_per_nfe']:>9.3f}{r['ms_per_nfe'] / base:>9.3f}"
        )
    for r in report.get("digits", []):
        print(f"digits-unet {r['solver']} {r['steps']} steps: {r['seconds']:.2f} s")
    for name, r in report["studies"].items():
        print(f"study {name}: {r['seconds']:.1f} s")
        for row in r["summary"]:
            if "measured" in row:
                print(
                    f"  {row['solver']:<8} declared {row['declared']}  measured "
                    f"{row['measured']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]  "
                    f"{row['verdict']}"
                )
            else:
                print(
                    f"  {row['solver']:<8} max |norm dev| {row['max_paired_norm_dev']:.2e}  "
                    f"final NLL excess {row['final_nll_excess']:.2e}"
                )
    report["total_seconds"] = time.perf_counter() - started
    print(f"total: {report['total_seconds']:.0f} s")
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(f"report: {args.out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
