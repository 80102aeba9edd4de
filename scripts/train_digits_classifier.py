"""Train the shipped ``digits-classifier``, the feature network of the digits Frechet distance.

    python scripts/train_digits_classifier.py              # into odebench/assets/classifiers
    python scripts/train_digits_classifier.py --epochs 5 --out /tmp/clf   # a quick trial

Why: a sample-quality study of samplers on the digits UNet needs an FID analogue for 8x8
images: a Frechet distance between Gaussians fitted to classifier features of real and sampled
digits. Inception features make no sense at 8x8, so odebench ships a small CNN
(``odebench.models.classifier.DigitsClassifier``) trained here on scikit-learn's digits, and
its 64-wide penultimate layer is the feature space.

Recipe:

- data: ``sklearn.datasets.load_digits``, 1797 images 8x8, x = pixel / 8 - 1 in [-1, 1];
  a stratified split (``odebench.models.classifier.digits_split``, seed 0) holds out 20% as a
  test set that is never trained on;
- augmentation, so that features are robust to sampler-like imperfections: every training
  image gets Gaussian pixel noise of std 0.1, and with probability 1/2 a random shift by one
  pixel (dy, dx in {-1, 0, 1}, not both 0), the uncovered border filled with background -1;
  no flips or rotations (a mirrored digit is not a digit);
- cross-entropy, Adam (lr 1e-3, cosine decay to 0 over the run), batch 64, reshuffled each
  epoch, 60 epochs; float32; ``torch.manual_seed`` and seeded generators; PyTorch's default
  initialisation except the feature layer's bias, set to 0.1 so that fewer of its ReLU units
  are dead on every digit (the card records how many of the 64 are active on the data).

The card records the train / test / all-data accuracies of the shipped weights, *recomputed
after writing* by loading them back in float64 with ``load_digits_classifier`` (the way users
and tests load them), the training wall time, the torch version and the weights' sha256.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.nn import functional as F

from odebench.models.classifier import (
    ARCHITECTURE,
    DATA,
    FEATURE_DIM,
    NAME,
    SPLIT_SEED,
    TEST_FRACTION,
    DigitsClassifier,
    accuracy,
    digits_dataset,
    digits_features,
    digits_split,
    load_digits_classifier,
)
from odebench.models.loading import sha256

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "odebench" / "assets" / "classifiers"

#: Architecture arguments (stored in the card) and training settings.
KWARGS: dict = {"channels": [16, 32], "feature_dim": FEATURE_DIM}
SETTINGS: dict = {
    "epochs": 60,
    "batch_size": 64,
    "lr": 1e-3,
    "fc_bias_init": 0.1,
    "seed": 0,
    "noise_std": 0.1,
    "shift_prob": 0.5,
}


def augment(
    x: torch.Tensor, generator: torch.Generator, noise_std: float, shift_prob: float
) -> torch.Tensor:
    """Random 1-pixel shifts (with probability ``shift_prob``) and Gaussian pixel noise.

    x is (B, 1, 8, 8); a shifted image is read from the image padded by one pixel of
    background (-1), so nothing wraps around.
    """
    b = x.shape[0]
    padded = F.pad(x[:, 0], (1, 1, 1, 1), value=-1.0)  # (B, 10, 10)
    # dy, dx uniform on {-1, 0, 1}^2 minus (0, 0): one of 8 neighbours, for shifted images.
    code = torch.randint(0, 8, (b,), generator=generator)
    code = code + (code >= 4).long()  # skip 4 = (0, 0)
    shifted = torch.rand(b, generator=generator) < shift_prob
    dy = torch.where(shifted, code // 3 - 1, 0)
    dx = torch.where(shifted, code % 3 - 1, 0)
    grid = torch.arange(8)
    rows = (grid[None, :] + 1 + dy[:, None])[:, :, None]  # (B, 8, 1)
    cols = (grid[None, :] + 1 + dx[:, None])[:, None, :]  # (B, 1, 8)
    out = padded[torch.arange(b)[:, None, None], rows, cols][:, None]
    return out + noise_std * torch.randn(out.shape, generator=generator)


def train(epochs: int, seed: int, log_every: int = 10) -> tuple[DigitsClassifier, dict]:
    """Train the classifier on the training split; returns the network and its record."""
    start, cpu_start = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = digits_dataset(torch.float32)
    train_idx, _ = digits_split(labels, SPLIT_SEED, TEST_FRACTION)
    x = images[train_idx].reshape(-1, 1, 8, 8)
    y = labels[train_idx]
    net = DigitsClassifier(**KWARGS)
    # A small positive bias on the feature layer: fewer of its ReLU units start (and stay)
    # dead on every digit, so more of the 64 features carry information.
    torch.nn.init.constant_(net.fc.bias, SETTINGS["fc_bias_init"])
    batch, lr = SETTINGS["batch_size"], SETTINGS["lr"]
    steps_per_epoch = math.ceil(x.shape[0] / batch)
    total = epochs * steps_per_epoch
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k, total) / total))
    )
    epoch_losses: list[float] = []
    for epoch in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        running = 0.0
        for k in range(steps_per_epoch):
            idx = perm[k * batch : (k + 1) * batch]
            xb = augment(x[idx], gen, SETTINGS["noise_std"], SETTINGS["shift_prob"])
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * idx.numel()
        epoch_losses.append(running / x.shape[0])
        if log_every and (epoch + 1) % log_every == 0:
            print(
                f"{NAME}: epoch {epoch + 1}/{epochs} loss {epoch_losses[-1]:.4f} "
                f"({time.perf_counter() - start:.1f} s)",
                flush=True,
            )
    wall = time.perf_counter() - start
    record = {
        "epochs": epochs,
        "batch_size": batch,
        "steps": total,
        "lr": lr,
        "lr_schedule": "cosine decay from lr to 0 over all steps",
        "optimizer": "Adam",
        "init": f"PyTorch defaults, feature-layer bias set to {SETTINGS['fc_bias_init']}",
        "loss": "cross-entropy",
        "seed": seed,
        "dtype": "float32",
        "augmentation": (
            f"Gaussian pixel noise std {SETTINGS['noise_std']} on every image; with probability "
            f"{SETTINGS['shift_prob']} a shift by one pixel to one of the 8 neighbours "
            "(border filled with -1)"
        ),
        "final_loss": round(epoch_losses[-1], 5),
        "final_loss_over": "last epoch, augmented training images",
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
    return net, record


def write(net: DigitsClassifier, record: dict, out: Path) -> Path:
    """Write digits-classifier.safetensors (float32) and its card; return the card's path.

    The accuracies in the card are those of the written weights, loaded back in float64.
    """
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{NAME}.safetensors"
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(weights), metadata={"name": NAME})
    card: dict = {
        "name": NAME,
        "description": (
            "DigitsClassifier: small CNN (conv 1->16->32, max-pool, linear 512->64, ReLU, "
            "linear 64->10) on sklearn's 8x8 digits; features(x) = the 64 post-ReLU "
            "activations of the penultimate layer, the feature space of the digits Frechet "
            "distance (scripts/train_digits_classifier.py)"
        ),
        "architecture": ARCHITECTURE,
        "kwargs": dict(KWARGS),
        "feature_dim": FEATURE_DIM,
        "feature_layer": "post-ReLU activations of the 64-wide penultimate linear layer",
        "weights": weights.name,
        "sha256": sha256(weights),
        "parameters": sum(p.numel() for p in net.parameters()),
        "data": DATA,
        "data_range": [-1.0, 1.0],
        "input_shape": [64],
        "split": {
            "function": "odebench.models.classifier.digits_split",
            "seed": SPLIT_SEED,
            "test_fraction": TEST_FRACTION,
            "stratified": True,
        },
        "split_seed": SPLIT_SEED,
        "training": record,
    }
    path = out / f"{NAME}.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    # Accuracies of the shipped weights as users load them (float64), then the final card.
    clf = load_digits_classifier(card=path)
    images, labels = digits_dataset(torch.float64)
    train_idx, test_idx = digits_split(labels, SPLIT_SEED, TEST_FRACTION)
    feats = digits_features(images, clf)
    card.update(
        {
            "n_train": int(train_idx.numel()),
            "n_test": int(test_idx.numel()),
            "train_accuracy": accuracy(clf, images[train_idx], labels[train_idx]),
            "test_accuracy": accuracy(clf, images[test_idx], labels[test_idx]),
            "all_accuracy": accuracy(clf, images, labels),
            "accuracy_dtype": "float64",
            "features_active": int((feats > 0).any(dim=0).sum()),
            "features_active_over": "feature units positive on at least one of the 1797 digits",
        }
    )
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=SETTINGS["epochs"], help="epochs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=SETTINGS["seed"], help="random seed")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be positive")
    torch.set_num_threads(args.threads)
    net, record = train(args.epochs, args.seed)
    path = write(net, record, args.out)
    card = json.loads(path.read_text())
    print(
        f"{NAME}: train accuracy {card['train_accuracy']:.4f}, "
        f"test accuracy {card['test_accuracy']:.4f} ({card['n_test']} held out), "
        f"{card['features_active']}/{FEATURE_DIM} active features, "
        f"{record['wall_seconds']:.1f} s -> {path} "
        f"({(path.parent / card['weights']).stat().st_size / 1024:.0f} KB)"
    )


if __name__ == "__main__":
    main()
