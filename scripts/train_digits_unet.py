"""Train the shipped eps-network ``digits-unet`` on scikit-learn's 8x8 handwritten digits.

    python scripts/train_digits_unet.py                          # into odebench/assets/networks
    python scripts/train_digits_unet.py --steps 300 --out /tmp/nets   # a quick trial
    python scripts/train_digits_unet.py --conditional            # the class-conditional one

Why: odebench measures samplers on analytic problems whose eps is exact; this network is the
small *trained* counterpart, an image model that trains in minutes on a CPU, so that solver
behaviour on a learned eps (and the visual effect of a sampler) can be shown without
downloads. The data set ships inside scikit-learn.

Training is the standard DDPM recipe (Ho et al. 2020) on the "ddpm-linear-1000" table:

- data: ``sklearn.datasets.load_digits``, 1797 images 8x8, pixel values 0..16 mapped to
  [-1, 1] by x0 = pixel / 8 - 1; batches drawn with replacement; no augmentation (horizontal
  flips would make mirrored digits, which are not digits);
- index i uniform in {0, ..., 999}; x_i = sqrt(abar_i) x0 + sqrt(1 - abar_i) n, abar_i =
  ``schedules.get("ddpm-linear-1000").alphas_cumprod[i]``; loss = mean over batch and pixels
  of (net(x_i, i) - n)^2;
- Adam, linear warm-up over 5% of the steps then cosine decay to 5% of the learning rate,
  gradient norm clipped at 1; an exponential moving average (EMA) of the weights, whose
  weights are the ones shipped; float32; a fixed seed.

The card records ``final_loss`` (mean training loss of the last 5% of steps, raw weights) and
``eval_loss`` (the same loss of the shipped EMA weights on a fixed set of 8192 (x0, i, n)
triples), with the wall time of the whole run and the torch version.

``--conditional`` trains ``digits-cond-unet``, the same network with a class embedding
(``num_classes=10``) and the same recipe, for classifier-free guidance (Ho & Salimans 2022):
each training label is replaced by the null label 10 with probability 0.1, so one network
learns both the conditional and the unconditional eps. Its card declares the condition
(``"condition": {"kind": "class-labels", "classes": 10, "null": 10}``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

import odebench as ob
from odebench.models.loading import sha256
from odebench.models.unet import DigitsUNet

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "odebench" / "assets" / "networks"
NAME = "digits-unet"
COND_NAME = "digits-cond-unet"
#: Probability that a training label is replaced by the null label (classifier-free guidance).
P_UNCOND = 0.1
SCHEDULE = "ddpm-linear-1000"
T = 1000
DATA = "sklearn load_digits, 1797 8x8 images, pixel/8 - 1"

#: Architecture arguments (stored in the card) and training settings.
KWARGS: dict = {"channels": 32, "channels_low": 64, "blocks": 1, "emb_dim": 128, "groups": 8}
SETTINGS: dict = {"steps": 2500, "batch_size": 128, "lr": 2e-3, "ema": 0.998, "seed": 0}


def digits_data() -> torch.Tensor:
    """The 1797 digits as a float32 tensor (1797, 1, 8, 8) in [-1, 1] (pixel / 8 - 1)."""
    from sklearn.datasets import load_digits

    images = load_digits().images  # (1797, 8, 8), values 0 .. 16
    return torch.as_tensor(images, dtype=torch.float32)[:, None] / 8.0 - 1.0


def digits_labels() -> torch.Tensor:
    """The 1797 digits' classes 0..9 (int64), in the order of ``digits_data``."""
    from sklearn.datasets import load_digits

    return torch.as_tensor(load_digits().target, dtype=torch.int64)


def lr_factor(step: int, steps: int) -> float:
    """Linear warm-up over 5% of the steps, then cosine decay from 1 to 0.05."""
    warm = max(1, steps // 20)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


def noisy_batch(
    x0: torch.Tensor, abar: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_i, i, n) for clean x0: i uniform on the table, n standard normal."""
    i = torch.randint(0, abar.numel(), (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    a = abar[i][:, None, None, None]
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise, i, noise


@torch.no_grad()
def eval_loss(
    net: torch.nn.Module,
    data: torch.Tensor,
    abar: torch.Tensor,
    n: int = 8192,
    labels: torch.Tensor | None = None,
) -> float:
    """The training loss of ``net`` on a fixed set of n (x0, i, noise) triples (seed 1); a
    conditional network is given the true labels.

    n is rounded down to whole chunks of 1024.
    """
    gen = torch.Generator().manual_seed(1)
    chunks = max(1, n // 1024)
    total = 0.0
    for _ in range(chunks):
        pick = torch.randint(0, data.shape[0], (1024,), generator=gen)
        xi, i, noise = noisy_batch(data[pick], abar, gen)
        extra = () if labels is None else (labels[pick],)
        total += float(torch.mean((net(xi, i.to(torch.float32), *extra) - noise) ** 2)) * 1024
    return total / (chunks * 1024)


def train(
    steps: int, seed: int, log_every: int = 100, conditional: bool = False
) -> tuple[DigitsUNet, dict]:
    """Train the network; returns the EMA network and its training record."""
    start, cpu_start = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = digits_data()
    classes = digits_labels() if conditional else None
    abar = ob.schedules.get(SCHEDULE).alphas_cumprod.to(torch.float32)
    net = DigitsUNet(**KWARGS, **({"num_classes": 10} if conditional else {}))
    name = COND_NAME if conditional else NAME
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    batch, lr, decay = SETTINGS["batch_size"], SETTINGS["lr"], SETTINGS["ema"]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched_lr = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_factor(k, steps))
    losses: list[float] = []
    for step in range(steps):
        pick = torch.randint(0, data.shape[0], (batch,), generator=gen)
        xi, i, noise = noisy_batch(data[pick], abar, gen)
        extra: tuple = ()
        if classes is not None:  # the null label 10 with probability P_UNCOND
            drop = torch.rand(batch, generator=gen) < P_UNCOND
            extra = (torch.where(drop, torch.full_like(classes[pick], 10), classes[pick]),)
        loss = torch.mean((net(xi, i.to(torch.float32), *extra) - noise) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched_lr.step()
        # EMA with the usual warm-up (decay (1 + k) / (10 + k) early on), so that the average
        # does not keep the random initialisation when the run is short.
        d = min(decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
                pe.lerp_(p, 1.0 - d)
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            recent = sum(losses[-log_every:]) / log_every
            print(
                f"{name}: step {step + 1}/{steps} loss {recent:.4f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    tail = losses[-max(1, steps // 20) :]
    ema_loss = eval_loss(ema, data, abar, labels=classes)
    wall = time.perf_counter() - start
    record = {
        "steps": steps,
        "batch_size": batch,
        "lr": lr,
        "lr_schedule": "linear warm-up over 5% of steps, then cosine decay to 5% of lr",
        "optimizer": "Adam, gradient norm clipped at 1",
        "ema": decay,
        "ema_warmup": "decay min(ema, (1 + k) / (10 + k)) at step k",
        "seed": seed,
        "dtype": "float32",
        "augmentation": "none",
        "index_sampling": "uniform on {0, ..., 999}",
        "loss": "mean over batch and pixels of (net(x_i, i) - n)^2",
        **(
            {
                "labels": f"the digit's class 0..9, replaced by the null label 10 with "
                f"probability {P_UNCOND} (classifier-free guidance)",
            }
            if conditional
            else {}
        ),
        "final_loss": round(sum(tail) / len(tail), 5),
        "final_loss_over": f"last {len(tail)} steps, raw (not EMA) weights",
        "eval_loss": round(ema_loss, 5),
        "eval_loss_over": "EMA weights, 8192 fixed (x0, i, n) triples, seed 1"
        + (", true labels" if conditional else ""),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
    return ema, record


def write(net: DigitsUNet, record: dict, out: Path) -> Path:
    """Write NAME.safetensors (float32) and its card NAME.json; return the card.

    NAME is digits-unet, or digits-cond-unet for a class-conditional network.
    """
    conditional = net.num_classes > 0
    name = COND_NAME if conditional else NAME
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.safetensors"
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(weights), metadata={"name": name})
    kwargs = dict(KWARGS, **({"num_classes": net.num_classes} if conditional else {}))
    what = "class-conditional (classifier-free guidance) " if conditional else ""
    card = {
        "name": name,
        "description": (
            f"DigitsUNet {what}eps-network (two resolutions, 8x8 and 4x4) trained with the "
            "DDPM loss on sklearn's 8x8 digits under the ddpm-linear-1000 table "
            "(scripts/train_digits_unet.py); sample with scripts/digits_samples.py"
        ),
        "architecture": {"class": "digits-unet", "kwargs": kwargs},
        "weights": weights.name,
        "sha256": sha256(weights),
        "parameters": sum(p.numel() for p in net.parameters()),
        "data": DATA,
        "data_range": [-1.0, 1.0],
        "shape": [1, 8, 8],
        "schedule": SCHEDULE,
        "parametrization": "eps",
        "time_input": "index",
        "T": T,
        "problem": "digits-data",
        "input_shape": [1, 8, 8],
        **(
            {"condition": {"kind": "class-labels", "classes": net.num_classes, "null": 10}}
            if conditional
            else {}
        ),
        "training": record,
    }
    path = out / f"{name}.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=SETTINGS["steps"], help="training steps")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=SETTINGS["seed"], help="random seed")
    parser.add_argument(
        "--conditional", action="store_true", help="train the class-conditional digits-cond-unet"
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be positive")
    torch.set_num_threads(args.threads)
    net, record = train(args.steps, args.seed, conditional=args.conditional)
    path = write(net, record, args.out)
    print(
        f"{path.stem}: final loss {record['final_loss']:.4f}, "
        f"EMA eval loss {record['eval_loss']:.4f}, {record['wall_seconds']:.0f} s -> {path}"
    )


if __name__ == "__main__":
    main()
