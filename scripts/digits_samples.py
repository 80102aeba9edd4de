"""Sample the shipped ``digits-unet`` with an odebench solver; draw the digits; score them.

    python scripts/digits_samples.py                              # 1000 DDIM steps, 64 digits
    python scripts/digits_samples.py --solver f-pndm --steps 50
    python scripts/digits_samples.py --solver ddim --steps 50

Why: the network is trained to be sampled; this script shows (figure) and measures (JSON)
what a sampler makes of it. Samples start from x_T ~ N(0, I) of shape (n, 1, 8, 8) in float64
(the solver state; the network itself runs in float32, ``NetworkModel`` converts), drawn from
``--seed``, so runs with different solvers or step counts start from the same x_T and their
grids are comparable tile by tile. The grid is the PNDM authors' integer grid
``odebench.timesteps(steps, "pndm")``: for 1000 steps every training index, then t = 0.

Writes into ``--out`` (default figures/networks):

- ``digits_<solver>_<steps>.png``: the samples, clipped to [-1, 1], as 8x8 tiles upscaled
  (nearest) in grey (ink dark, as scikit-learn draws the digits);
- ``digits_data.png``: real training digits drawn the same way, for reference;
- ``digits_<solver>_<steps>.json``: timing and the quality check below.

Quality check (``quality``), on samples clipped to [-1, 1], against three references drawn
in the same number: real digits held out from the classifier below, a Gaussian fitted to the
data (mean and covariance: digit-like blobs with the right first two moments, the baseline a
generative model must beat), and uniform noise on [-1, 1]:

- ``nn_rms``: RMS per-pixel distance (in data units, range 2) from each image to its nearest
  training digit (for the real digits: the nearest *other* digit), median and mean; a good
  model lands near the real digits' value, far below the Gaussian's and the noise's; a value
  near 0 would mean copies of training images (``copies``: fraction under 0.05);
- ``confidence``: mean top-class probability of a logistic-regression classifier (sklearn,
  trained on a fixed stratified 80% of the digits; ``heldout_accuracy`` on the other 20%),
  and ``classes``: how many of the ten digits the samples are classified as (diversity).
  A weaker signal than ``nn_rms``: a linear classifier is confident on much that is not a
  digit (about 0.6 on uniform noise).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import odebench as ob
from odebench.models import load
from odebench.solvers.base import Solution

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "figures" / "networks"
SCHEDULE = "ddpm-linear-1000"
COPY_RMS = 0.05


def digits_data() -> np.ndarray:
    """The 1797 digits, flattened to (1797, 64) float64 in [-1, 1] (pixel / 8 - 1)."""
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float64) / 8.0 - 1.0


def digits_labels() -> np.ndarray:
    """The class (0..9) of each digit, in the order of ``digits_data``."""
    from sklearn.datasets import load_digits

    return load_digits().target


def nn_rms(images: np.ndarray, data: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """RMS per-pixel distance from each image (n, 64) to its nearest row of ``data``.

    ``exclude_self``: ``images`` are rows of ``data`` (same order) and each skips itself.
    """
    d2 = (images**2).sum(1)[:, None] + (data**2).sum(1)[None, :] - 2.0 * images @ data.T
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0) / data.shape[1])


def classifier(seed: int = 0) -> tuple[Any, np.ndarray]:
    """Logistic regression on a fixed stratified 80% of the digits; (model, held-out indices)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    data, labels = digits_data(), digits_labels()
    train, test = train_test_split(
        np.arange(labels.size), test_size=0.2, random_state=seed, stratify=labels
    )
    return LogisticRegression(max_iter=5000).fit(data[train], labels[train]), test


def references(n: int, heldout: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Indices of n real held-out digits; n draws of the data's Gaussian fit; n noise images."""
    data = digits_data()
    rng = np.random.default_rng(seed)
    mean, cov = data.mean(0), np.cov(data, rowvar=False)
    return {
        "data": rng.choice(heldout, size=n, replace=n > heldout.size),
        "gaussian_fit": np.clip(rng.multivariate_normal(mean, cov, size=n), -1.0, 1.0),
        "noise": rng.uniform(-1.0, 1.0, size=(n, data.shape[1])),
    }


def quality(
    samples: np.ndarray, seed: int = 0, clf: tuple[Any, np.ndarray] | None = None
) -> dict[str, dict]:
    """The quality check of the module docstring for ``samples`` (n, 64), and its references.

    ``clf``: a (model, held-out indices) pair from ``classifier``, to reuse.
    """
    data, labels = digits_data(), digits_labels()
    model, heldout = clf if clf is not None else classifier(seed)
    sets = {
        "samples": np.clip(samples, -1.0, 1.0),
        **references(samples.shape[0], heldout, seed),
    }
    out: dict[str, dict] = {}
    for name, images in sets.items():
        if name == "data":  # real held-out digits, each against the other 1796
            dist = nn_rms(data, data, exclude_self=True)[images]
            images = data[images]
        else:
            dist = nn_rms(images, data)
        proba = model.predict_proba(images)
        out[name] = {
            "nn_rms_median": float(np.median(dist)),
            "nn_rms_mean": float(dist.mean()),
            "copies": float((dist < COPY_RMS).mean()),
            "confidence": float(proba.max(1).mean()),
            "classes": int(np.unique(proba.argmax(1)).size),
        }
    out["classifier"] = {
        "heldout_accuracy": float(model.score(data[heldout], labels[heldout])),
        "heldout_size": int(heldout.size),
    }
    return out


def sample(
    model, solver: str, steps: int, n: int, seed: int
) -> tuple[torch.Tensor, Solution, float]:
    """Run ``solver`` for ``steps`` pndm-grid steps from n float64 x_T; (x_T, solution, s)."""
    sched = ob.schedules.get(SCHEDULE)
    x_T = torch.randn(
        (n, 1, 8, 8), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    ts = ob.timesteps(steps, "pndm", schedule=sched)
    start = time.perf_counter()
    sol = ob.solve(solver, model, sched, x_T, ts)
    return x_T, sol, time.perf_counter() - start


def save_grid(images: np.ndarray, path: Path, scale: int = 8, gap: int = 8) -> None:
    """Write (n, 8, 8) images in [-1, 1] as a square-ish grid of tiles, upscaled nearest.

    Tiles are ``scale`` times their size, separated by ``gap`` pixels of background (-1,
    white): the digits fill their 8x8 frames to the edges, so tiles need a margin to read.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = images.shape[0]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    tile = 8 * scale
    canvas = np.full((rows * (tile + gap) + gap, cols * (tile + gap) + gap), -1.0)
    for k in range(n):
        r, c = divmod(k, cols)
        big = np.kron(np.clip(images[k], -1.0, 1.0), np.ones((scale, scale)))
        y, x = gap + r * (tile + gap), gap + c * (tile + gap)
        canvas[y : y + tile, x : x + tile] = big
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, canvas, cmap="gray_r", vmin=-1.0, vmax=1.0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="sampling steps (pndm grid)")
    parser.add_argument("--n", type=int, default=64, help="number of samples")
    parser.add_argument("--solver", default="ddim", help="odebench solver name")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of x_T and of the references")
    parser.add_argument("--network", default="digits-unet", help="shipped name or card path")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load(args.network)
    _, sol, seconds = sample(model, args.solver, args.steps, args.n, args.seed)
    x = sol.x.numpy().reshape(args.n, 64)
    stem = f"digits_{args.solver}_{args.steps}"
    save_grid(x.reshape(-1, 8, 8), args.out / f"{stem}.png")
    real = digits_data()[: args.n]
    save_grid(real.reshape(-1, 8, 8), args.out / "digits_data.png")
    report = {
        "network": model.card["name"],
        "solver": sol.solver,
        "steps": args.steps,
        "nfe": sol.nfe,
        "n": args.n,
        "seed": args.seed,
        "state_dtype": "float64 (network in float32)",
        "grid": "odebench.timesteps(steps, 'pndm'), then t = 0",
        "seconds": round(seconds, 2),
        "threads": torch.get_num_threads(),
        "diverged": sol.diverged is not None,
        "raw_range": [float(x.min()), float(x.max())],
        "outside_1.5": float((np.abs(x) > 1.5).mean()),
        "quality": quality(x, args.seed),
        "quality_note": (
            "samples clipped to [-1, 1]; nn_rms = RMS per-pixel distance to the nearest "
            "training digit (real digits: nearest other digit); confidence = mean top-class "
            "probability of a logistic regression trained on 80% of the digits"
        ),
    }
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    q = report["quality"]
    print(f"{stem}: {seconds:.1f} s, NFE {sol.nfe}, range {report['raw_range']}")
    for name in ("samples", "data", "gaussian_fit", "noise"):
        r = q[name]
        print(
            f"  {name:13s} nn_rms median {r['nn_rms_median']:.3f} mean {r['nn_rms_mean']:.3f}"
            f"  copies {r['copies']:.2f}  confidence {r['confidence']:.3f}  classes {r['classes']}"
        )
    print(f"  classifier held-out accuracy {q['classifier']['heldout_accuracy']:.3f}")
    return report


if __name__ == "__main__":
    main()
