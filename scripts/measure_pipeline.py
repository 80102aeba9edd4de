"""Measure the sampler of your diffusers pipeline on your own model (a GPU recipe).

    python scripts/measure_pipeline.py path/to/unet --device cuda \\
        --scheduler DPMSolverMultistepScheduler --solvers ddim,heun --n-samples 8
    python scripts/measure_pipeline.py --tiny --device cpu        # a random tiny UNet, seconds

The folder holds a diffusers UNet2DModel, UNet2DConditionModel, DiTTransformer2DModel or
SD3Transformer2DModel saved with ``save_pretrained`` (``odebench.models.load_diffusers``: no
download, safetensors only). The network runs in float64 on ``--device``; every sampler runs
from the same start states x_T ~ N(0, I) (scaled to the schedule's noise level at the start)
over a ladder of step counts, and its final state is compared with an adaptive solve of the
network's own probability-flow ODE (the reference reports its own accuracy; on a GPU it runs
on the device, odebench.reference's torch backend). The measured global order comes with a
95% confidence interval (``odebench.testing.measure_order``).

``--scheduler NAME`` adds the odebench solver of the diffusers scheduler's family (the one
``odebench audit diffusers:NAME`` compares the scheduler with, on exact problems, where it
also reports how far the scheduler is from that family): run the audit for the scheduler's
own deviations, and this script for what the family does on your network. ``--condition
FILE.safetensors`` gives a conditional model its inputs: a tensor ``condition`` (and
``null_condition`` for ``--guidance`` w != 1), or ``condition.KEY`` / ``null_condition.KEY``
tensors for several keyword inputs (SD3: encoder_hidden_states, pooled_projections). DiT
labels can be given as ``--labels 1,207,360``.

Printed: per sampler, the declared and measured order [95% CI], the finest error, the
reference's accuracy, and the share of the run's time spent in the network.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import odebench as ob
from odebench.audit.nominal import nominal
from odebench.models import tiny_unet2d
from odebench.testing import measure_order

#: The ODE's schedule per class: flow matching for SD3; for the VP classes (trained on the
#: DDPM table, fed its index) the continuous "linear" VP schedule, the table's limit
#: (beta 0.1 .. 20): a smooth ODE that adaptive references can solve to 1e-10, where the
#: table's interpolated alpha_bar has a kink at each of its 1000 knots (--schedule
#: ddpm-linear-1000 measures on the table itself, far slower).
SCHEDULES = {"SD3Transformer2DModel": "flow"}


class NetworkClock:
    """Adds up the wall time spent inside the network (synchronising a CUDA device)."""

    def __init__(self, net: torch.nn.Module, device: torch.device):
        self.seconds, self.device, self._start = 0.0, device, 0.0
        net.register_forward_pre_hook(self._before)
        net.register_forward_hook(self._after)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _before(self, *_):
        self._sync()
        self._start = time.perf_counter()

    def _after(self, *_):
        self._sync()
        self.seconds += time.perf_counter() - self._start


def tiny_unet(folder: Path) -> Path:
    """A random tiny UNet2DModel (1 channel, 8x8) saved in ``folder``: the recipe's CPU test,
    with its time embedding's two fastest sinusoids off (``ob.models.tiny_unet2d``)."""
    unet = tiny_unet2d(quiet_time=True)
    unet.save_pretrained(folder)
    return folder


def read_condition(path: Path | None, labels: str | None) -> dict:
    """``load_diffusers`` keywords from a safetensors file or DiT labels."""
    if labels:
        return {"condition": torch.tensor([int(v) for v in labels.split(",")])}
    if path is None:
        return {}
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    out: dict = {}
    for name in ("condition", "null_condition"):
        if name in tensors:
            out[name] = tensors[name]
        keyed = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(name + ".")}
        if keyed:
            out[name] = keyed
    if "condition" not in out:
        raise ValueError(f"{path}: no tensor 'condition' or 'condition.KEY'")
    return out


def _integers(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated integers, got {text!r}") from None
    if len(values) < 3 or min(values) < 1 or values != sorted(set(values)):
        raise ValueError(f"{option} needs at least 3 increasing positive counts, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, help="a saved diffusers model folder")
    parser.add_argument("--tiny", action="store_true", help="a random tiny UNet (a CPU test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--solvers", default="ddim,dpm-solver++-2m,heun")
    parser.add_argument("--scheduler", help="a diffusers scheduler class: add its family")
    parser.add_argument("--steps", default="25,50,100,200")
    parser.add_argument("--t-min", type=float, default=0.1, help="end time (0: to the data)")
    parser.add_argument("--n-samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", help="C,H,W of a sample (default: from the model config)")
    parser.add_argument("--condition", type=Path, help="safetensors file of condition tensors")
    parser.add_argument("--labels", help="class labels of a DiT, comma-separated")
    parser.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance")
    parser.add_argument("--schedule", help="odebench schedule of the ODE (default: see above)")
    parser.add_argument("--ref-tol", type=float, default=1e-10)
    parser.add_argument("--out", type=Path, help="write the table here as CSV")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (small models: 1 is fastest)"
    )
    args = parser.parse_args(argv)
    import diffusers

    diffusers.utils.logging.set_verbosity_error()  # not its advice to install accelerate
    try:
        return run(args)
    except (ValueError, KeyError) as err:
        print(f"measure_pipeline: error: {err}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    if args.tiny == (args.folder is not None):
        raise ValueError("give a model folder or --tiny, not both")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {args.device!r}, but torch sees no CUDA device")
    torch.set_num_threads(max(1, args.threads))
    steps = _integers(args.steps, "--steps")
    if args.n_samples < 1:
        raise ValueError(f"--n-samples must be at least 1, got {args.n_samples}")
    samplers = {name: name for name in args.solvers.split(",") if name}
    for name in samplers:
        ob.solvers.get(name)  # an unknown name: its one-line error before any work
    if args.scheduler:
        claim = nominal(args.scheduler, {})
        if claim.family is None:
            raise ValueError(f"no odebench family on record for {args.scheduler}")
        samplers[f"{args.scheduler} ~ {claim.family}"] = claim.family
    if not args.tiny:
        return measure(args, steps, samplers)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args.folder = tiny_unet(Path(tmp) / "tiny-unet")
        return measure(args, steps, samplers)


def measure(args: argparse.Namespace, steps: list[int], samplers: dict[str, str]) -> int:
    """Load the model, run every sampler's ladder against the reference, print the table."""
    if not (args.folder / "config.json").is_file():
        raise ValueError(f"{args.folder}: no config.json (save the model with save_pretrained)")
    config = json.loads((args.folder / "config.json").read_text())
    kind = config.get("_class_name", "UNet2DModel")
    device = torch.device(args.device)
    model = ob.models.load_diffusers(
        args.folder,
        device=device,
        dtype=torch.float64,
        guidance_scale=args.guidance,
        **read_condition(args.condition, args.labels),
    )
    clock = NetworkClock(model.net, device)
    if args.shape:
        shape = tuple(int(v) for v in args.shape.split(","))
    else:
        size = config.get("sample_size", 8)
        hw = tuple(size) if isinstance(size, list) else (size, size)
        shape = (config.get("in_channels", 4), *hw)
    schedule = ob.schedules.get(args.schedule or SCHEDULES.get(kind, "linear"))
    t_max = ob.grids.start_time(schedule, 1.0)
    gen = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(args.n_samples, *shape, generator=gen, dtype=torch.float64)
    x_T = (noise * schedule.sigma(torch.tensor(t_max, dtype=torch.float64))).to(device)
    print(
        f"{kind} from {args.folder} on {device}: {args.n_samples} samples of {shape}, "
        f"{schedule.name}, t = {t_max:.4g} -> {args.t_min:g}, steps {steps}"
    )
    print(
        f"{'sampler':<44} {'order':>5}  {'measured [95% CI]':<20} {'finest error':>12}  "
        f"{'network time':>12}"
    )
    rows = []
    for label, name in samplers.items():
        start, clock.seconds = time.perf_counter(), 0.0
        fit = measure_order(
            name,
            model=model,
            x_T=x_T,
            schedule=schedule.name,
            steps=steps,
            t_min=args.t_min,
            to_data=args.t_min == 0.0,
            ref_tol=args.ref_tol,
        )
        wall = time.perf_counter() - start
        share = clock.seconds / wall if wall > 0 else float("nan")
        declared = ob.solvers.get(name).order
        ci = f"{fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]"
        print(f"{label:<44} {declared!s:>5}  {ci:<20} {fit.err[-1]:>12.3e}  {100 * share:>11.0f}%")
        rows.append(
            {
                "sampler": label,
                "solver": name,
                "declared": declared,
                "measured": fit.slope,
                "ci_low": fit.ci_low,
                "ci_high": fit.ci_high,
                "finest_error": fit.err[-1],
                "seconds": wall,
                "network_share": share,
            }
        )
    if args.out is not None:
        import pandas as pd

        args.out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out, index=False)
        print(f"table: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
