"""GPU check: solver timings on a CIFAR-size UNet, and an orders and a quality study of a
network on the accelerator with references on the device.

    python scripts/gpu_check.py --device cuda --out figures/gpu/NAME   # target: 4 minutes
    python scripts/gpu_check.py --small --device cpu                   # tiny, on the CPU (tested)

It runs, on ``--device``:

1. a UNet2DModel of the size of DDPM's CIFAR-10 model (35.7M parameters, random weights: only
   timing matters) on a batch of 32x32x3 images, every solver family (DDIM, PNDM, the
   classical methods, DPM-Solver++, UniPC) at a few steps, timed per model evaluation, next
   to diffusers' own DDIMScheduler loop at equal NFE;
2. the shipped digits UNet: 1000-step DDIM and 50-step F-PNDM samples, timed;
3. one cell of the orders study and one of the quality study of a shipped network (the
   digits UNet; with ``--small`` the 2-d mixture MLP) in float64 on the device, run as the
   study runner runs a cell (the kind's ``run_cell``), its references adaptive solves of the
   network's own ODE by ``odebench.reference.reference`` (``backend="auto"``: the torch
   DOP853 of ``odebench.integrate`` on the network's device off the CPU, scipy on the CPU).
   Every network evaluation is timed (``odebench.models.timing``, synchronized on CUDA), so
   the script prints the share of each cell's wall time spent inside the network (target on a
   GPU: at least 90%) and how many evaluations the reference and the solvers made. A helper
   thread samples the cell's stack every 2 ms (``sampled_host_time``) and files each sample
   under the network or the part of odebench it was in (schedule, integrator, solvers,
   metrics, loading, ...): where the rest of the wall time went, without a profiler.

It prints the tables and writes ``gpu_check.json`` (timings, environment, the git commit,
the cells' rows and summaries), ``gpu_check.log`` (the printed lines) and each cell's CSV to
``--out``. ``--small`` swaps in a tiny UNet, fewer steps, smaller batches and loose
reference tolerances so that the test suite runs the whole script on the CPU in seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import odebench as ob
from odebench.models import NetworkModel, shipped

SOLVERS = [
    "ddim",
    "s-pndm",
    "f-pndm",
    "pie",
    "prk",
    "fon",
    "rk4",
    "dpm-solver++-2m",
    "unipc-2-bh2",
]


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


#: The study cells of the network part, by size: (orders, quality) settings. Full: the digits
#: UNet (a UNet trained on a known distribution, so quality has a truth); small: the 2-d mixture
#: MLP, whose float64 ODE is smooth, so the orders come out near the declared ones.
NETWORK = {False: "digits-unet", True: "gmm-2d-mlp"}
ORDERS = {
    False: {
        "solver": ["ddim", "s-pndm", "f-pndm", "dpm-solver++-2m"],
        "steps": [25, 50, 100, 200],
        "n_samples": 16,
        "ref_tol": 1e-8,
    },
    True: {
        "solver": ["ddim", "s-pndm", "dpm-solver++-2m"],
        "steps": [50, 100, 200, 400],
        "n_samples": 8,
        "ref_tol": 1e-8,
    },
}
QUALITY = {
    False: {
        "solver": ["ddim", "f-pndm", "dpm-solver++-2m"],
        "steps": [10, 20, 50, 100],
        "options": {"n_samples": 64, "ref_tol": 5e-7},
    },
    True: {
        "solver": ["ddim", "f-pndm"],
        "steps": [5, 10, 20],
        "options": {
            "n_samples": 16,
            "ref_tol": 1e-7,
            "n_boot": 8,
            "n_floor": 4,
            "n_projections": 16,
            "metrics": ["frechet", "sliced_w2", "mmd"],
        },
    },
}
#: Callers the network clock tells apart: the adaptive reference, and within it the torch
#: integrator (the device backend; scipy's solve_ivp otherwise).
CALLERS = {"reference": "odebench.reference", "torch integrator": "odebench.integrate"}


def network_specs(network: str, device: str, small: bool) -> dict[str, dict]:
    """The orders and quality studies (one cell each) of ``network`` on ``device``: on the
    problem and schedule it was trained on, float64, paired with adaptive references of its own
    ODE (``reference(backend="auto")``: the torch DOP853 on the network's device off the CPU,
    scipy on the CPU)."""
    from odebench.kinds.common import card_problem

    card = ob.models.load(network).card
    axes = {"problem": [card_problem(card)], "model": [network], "schedule": [card["schedule"]]}
    orders, quality = ORDERS[small], QUALITY[small]
    return {
        "orders": {
            "study": {"name": f"orders-{network}", "kind": "orders"},
            "grid": {**axes, "solver": orders["solver"], "steps": orders["steps"], "t_min": [0.1]},
            "options": {
                "n_samples": orders["n_samples"],
                "ref_tol": orders["ref_tol"],
                "device": device,
            },
        },
        "quality": {
            "study": {"name": f"quality-{network}", "kind": "quality"},
            "grid": {**axes, "solver": quality["solver"], "steps": quality["steps"]},
            "options": {
                **quality["options"],
                "paired": True,
                "match_solver": quality["solver"][0],
                "match_steps": quality["steps"][-1],
                "device": device,
            },
        },
    }


#: Seconds between the stack samples that say where a cell's time outside the network goes.
HOST_INTERVAL = 0.002


def run_network_study(spec: dict, out: Path) -> dict:
    """One study cell run as the runner runs it (the kind's ``run_cell`` on the cell config
    ``expand_cells`` makes; no cache, so it is timed afresh), with every network evaluation
    timed (``odebench.models.timing``); its rows and summary written to ``out``."""
    import pandas as pd

    from odebench.models.timing import sampled_host_time, timed_networks
    from odebench.study import expand_cells, get, parse_study

    parsed = parse_study(spec)
    kind = get(parsed.kind)
    (config,) = expand_cells(parsed, kind)
    with timed_networks(CALLERS) as clock, sampled_host_time(HOST_INTERVAL) as host:
        start = time.perf_counter()
        rows = kind.run_cell(config)
        wall = time.perf_counter() - start
    cell = {a: config[a] for a in kind.grid if a not in kind.ladder_axes}  # as the runner's
    df = pd.DataFrame([{**cell, **row} for row in rows])
    summary = kind.summarize(df)
    name = parsed.name
    df.to_csv(out / f"{name}.csv", index=False)
    summary.to_csv(out / f"{name}_summary.csv", index=False)
    ref_calls, torch_calls = clock.calls_of("reference"), clock.calls_of("torch integrator")
    backend = (
        "torch" if torch_calls == ref_calls > 0 else ("scipy" if torch_calls == 0 else "mixed")
    )
    return {
        "kind": parsed.kind,
        "network": config["model"],
        "problem": config["problem"],
        "config": {k: v for k, v in config.items() if k != "kind"},
        "seconds": wall,
        "network_seconds": clock.seconds,
        "network_share": clock.share(wall),
        "network_calls": clock.calls,
        "network_rows": clock.rows,
        "reference_calls": ref_calls,
        "reference_seconds": clock.seconds_of("reference"),
        "reference_backend": backend,
        "solver_calls": clock.calls - ref_calls,
        # where the wall time went, by stack samples (the network's share as a cross-check)
        "host_samples": host.total,
        "host_shares": host.shares(),
        "summary": summary.to_dict(orient="records"),
        "rows": df.to_dict(orient="records"),
    }


def network_studies(network: str, device: str, small: bool, out: Path) -> dict:
    """The orders and quality cells of ``network_specs``, each timed (``run_network_study``)."""
    return {
        what: run_network_study(spec, out)
        for what, spec in network_specs(network, device, small).items()
    }


def code_digest(root: Path) -> str:
    """SHA-256 of the code that ran: every ``odebench/**/*.py`` and this script, by relative
    path and content. A copy of the tree on another machine (whose git base may be an older
    commit with the changes unstaged) names its code by this, and the same function run on
    a checkout of a commit says whether that commit is the code that ran."""
    digest = hashlib.sha256()
    files = [*sorted((root / "odebench").rglob("*.py")), root / "scripts" / "gpu_check.py"]
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def source_commit() -> dict:
    """The git commit the script runs from, whether the tree differs from it (None where
    there is no git repository, e.g. a copy of the tree without .git), and the digest of the
    code itself (``code_digest``)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    head = git("rev-parse", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no")
    modified = None if changed is None else bool(changed)
    return {"commit": head, "modified": modified, "code_sha256": code_digest(root)}


class Log:
    """Lines printed and kept, for ``gpu_check.log``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def print_report(report: dict, say: Log) -> None:
    timings = report["unet_timings"]
    say(
        f"device: {report.get('gpu', report['device'])}  dtype: {report['dtype']}  "
        f"batch: {report['batch']}  UNet parameters: {report['unet_parameters'] / 1e6:.1f}M  "
        f"commit: {report['source']['commit']}"
        + ("  (modified tree)" if report["source"]["modified"] else "")
        + f"  code: {report['source']['code_sha256'][:16]}"
    )
    base = next(r for r in timings if r["solver"] == "ddim")["ms_per_nfe"]
    say(f"{'solver':<24}{'steps':>6}{'NFE':>6}{'seconds':>10}{'ms/NFE':>9}{'vs ddim':>9}")
    for r in timings:
        say(
            f"{r['solver']:<24}{r['steps']:>6}{r['nfe']:>6}{r['seconds']:>10.3f}"
            f"{r['ms_per_nfe']:>9.3f}{r['ms_per_nfe'] / base:>9.3f}"
        )
    for r in report.get("digits", []):
        say(f"digits-unet {r['solver']} {r['steps']} steps: {r['seconds']:.2f} s")
    for r in report["network_studies"].values():
        say(
            f"{r['kind']} of {r['network']} on {r['problem']}: {r['seconds']:.1f} s, in the "
            f"network {r['network_seconds']:.1f} s = {100 * r['network_share']:.1f}% "
            f"(target 90%); evaluations: reference {r['reference_calls']} "
            f"({r['reference_backend']}, {r['reference_seconds']:.1f} s), "
            f"solvers {r['solver_calls']}"
        )
        say(
            f"  by {r['host_samples']} stack samples: "
            + ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["host_shares"].items())
        )
        for row in r["summary"]:
            if r["kind"] == "orders":
                say(
                    f"  {row['solver']:<16} declared {row['declared']}  measured "
                    f"{row['measured']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]  "
                    f"{row['verdict']}"
                )
            else:
                say(
                    f"  {row['solver']:<16} {row['metric']:<16} matches {row['reference']} "
                    f"from NFE {row['match_nfe']} (paired: {row['match_nfe_paired']})"
                )
    share = report["network_share"]
    say(f"orders and quality: {100 * share:.1f}% of their wall time in the network")
    say("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report["part_seconds"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="tiny models and studies")
    parser.add_argument("--batch", type=int, default=None, help="images per batch")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed solve")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument(
        "--network",
        default=None,
        help="shipped network of the orders and quality cells (default: digits-unet; "
        "gmm-2d-mlp with --small)",
    )
    parser.add_argument("--out", type=Path, default=Path("results/gpu_check"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        device = torch.device(args.device)
    except RuntimeError:
        print(f"gpu_check: error: unknown device {args.device!r}", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device visible to torch", file=sys.stderr)
        return 2
    network = args.network or NETWORK[args.small]
    if network not in shipped():
        known = ", ".join(shipped())
        print(f"gpu_check: error: no shipped network {network!r} ({known})", file=sys.stderr)
        return 2
    for name in ("batch", "steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(f"gpu_check: error: --{name} must be positive", file=sys.stderr)
            return 2
    if device.type == "cpu":
        torch.set_num_threads(1)  # a few tiny models: more threads only contend
    dtype = getattr(torch, args.dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    batch = args.batch or (4 if args.small else 128)
    steps = args.steps or (5 if args.small else 20)
    report = {
        "device": str(device),
        "dtype": args.dtype,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "source": source_commit(),
        "small": args.small,
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
    parts = report["part_seconds"] = {"unet_timings": time.perf_counter() - started}

    if "digits-unet" in shipped():
        digits = ob.models.load("digits-unet", device=device, dtype=dtype)
        sched = ob.schedules.get("ddpm-linear-1000")
        x = torch.randn(8 if args.small else 64, 1, 8, 8, generator=gen, device=device, dtype=dtype)
        report["digits"] = []
        for solver, n in (
            ("ddim", 20 if args.small else 1000),
            ("f-pndm", 10 if args.small else 50),
        ):
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
    parts["digits"] = time.perf_counter() - started - sum(parts.values())
    studies = network_studies(network, args.device, args.small, args.out)
    report["network_studies"] = studies
    parts.update({what: r["seconds"] for what, r in studies.items()})
    wall = sum(r["seconds"] for r in studies.values())
    report["network_share"] = sum(r["network_seconds"] for r in studies.values()) / wall

    say = Log()
    print_report(report, say)
    report["total_seconds"] = time.perf_counter() - started
    say(f"total: {report['total_seconds']:.0f} s")
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    say(f"report: {args.out / 'gpu_check.json'}")
    (args.out / "gpu_check.log").write_text(say.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
