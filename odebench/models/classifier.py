"""``DigitsClassifier``: a small CNN on 8x8 digits whose features define a Frechet distance.

The FID analogue for 8x8 digits: a Frechet distance between Gaussians fitted to the
*features* of real and sampled images, where the features are the penultimate activations of
a small classifier trained on the digits (``scripts/train_digits_classifier.py``; the weights
ship as ``odebench/assets/classifiers/digits-classifier.safetensors`` with their card
``digits-classifier.json``). Nothing is downloaded.

Layout (input (B, 64) flat or (B, 1, 8, 8), values in [-1, 1] as pixel / 8 - 1):

    conv 3x3 (padding 1) 1 -> 16, ReLU                    8x8
    conv 3x3 (padding 1) 16 -> 32, ReLU, max-pool 2x2     8x8 -> 4x4
    flatten 32 * 4 * 4 = 512
    linear 512 -> FEATURE_DIM = 64, ReLU                  <- ``features(x)``: the FID features
    linear 64 -> 10                                       <- ``forward(x)``: the logits

The features are the post-ReLU activations of the 64-wide layer (as Inception's pool3
features in FID are post-ReLU), so they are non-negative and a unit that no input activates is
identically 0; a Frechet distance must then use a matrix square root that accepts a singular
(positive semi-definite) covariance. The network is trained with small Gaussian pixel noise and
random 1-pixel shifts, so that sampler-like imperfections do not move the features far.

Inputs outside [-1, 1] are accepted as they are (no clipping); non-finite inputs give
non-finite features. The network has no batch norm or dropout: features do not depend on the
batch, and train and eval modes compute the same function.

``digits_dataset`` and ``digits_split`` are the data and the stratified, seeded train/test
split the training script uses, so that tests can recompute the held-out accuracy it records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._digits import digits_arrays
from .loading import apply_state_dict, load_state_dict, read_card, sha256

#: Folder of the shipped classifier (read at call time, so tests can point it elsewhere).
ASSETS = Path(__file__).resolve().parent.parent / "assets" / "classifiers"
NAME = "digits-classifier"
ARCHITECTURE = "digits-classifier"
#: Width of the feature (penultimate) layer.
FEATURE_DIM = 64
NUM_CLASSES = 10
DATA = "sklearn digits, pixel/8-1"
#: Default seed and held-out fraction of the stratified split (the shipped card records both).
SPLIT_SEED = 0
TEST_FRACTION = 0.2


class DigitsClassifier(nn.Module):
    """Small CNN classifier of 8x8 digits; ``features`` gives its penultimate activations.

    Args:
        channels: widths of the two 3x3 convolutions.
        feature_dim: width of the feature layer (the dimension of ``features(x)``).
        num_classes: number of logits.
    """

    def __init__(
        self,
        channels: tuple[int, int] | list[int] = (16, 32),
        feature_dim: int = FEATURE_DIM,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        c1, c2 = (int(c) for c in channels)
        self.feature_dim = int(feature_dim)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = nn.Linear(c2 * 4 * 4, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, int(num_classes))

    @staticmethod
    def as_images(x: torch.Tensor) -> torch.Tensor:
        """(B, 64), (B, 8, 8) or (B, 1, 8, 8) -> (B, 1, 8, 8); other shapes raise ValueError."""
        if x.dim() == 2 and x.shape[1] == 64:
            return x.reshape(-1, 1, 8, 8)
        if x.dim() == 3 and tuple(x.shape[1:]) == (8, 8):
            return x[:, None]
        if x.dim() == 4 and tuple(x.shape[1:]) == (1, 8, 8):
            return x
        raise ValueError(
            f"digits classifier input must be (B, 64), (B, 8, 8) or (B, 1, 8, 8); "
            f"got {tuple(x.shape)}"
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) post-ReLU activations of the feature layer (the FID features)."""
        h = F.relu(self.conv1(self.as_images(x)))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 10) class logits."""
        return self.head(self.features(x))


def digits_dataset(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 1797 digits: images (1797, 64) as pixel / 8 - 1 in [-1, 1], labels (1797,).

    Needs scikit-learn (the data ship with it; nothing is downloaded).
    """
    pixels, target = digits_arrays()
    images = torch.tensor(pixels, dtype=torch.float64) / 8.0 - 1.0
    labels = torch.tensor(target, dtype=torch.int64)
    return images.to(dtype), labels


def digits_split(
    labels: torch.Tensor | np.ndarray,
    seed: int = SPLIT_SEED,
    test_fraction: float = TEST_FRACTION,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified train/test split: sorted index tensors (train, test).

    For each class in increasing order, its indices are permuted by one shared
    ``numpy.random.RandomState(seed)`` (the legacy generator, whose stream numpy keeps fixed
    across versions) and the first round(test_fraction * count) go to the test set.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    rng = np.random.RandomState(int(seed))
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        perm = idx[rng.permutation(idx.size)]
        k = round(test_fraction * idx.size)
        test.append(perm[:k])
        train.append(perm[k:])
    return (
        torch.as_tensor(np.sort(np.concatenate(train)), dtype=torch.int64),
        torch.as_tensor(np.sort(np.concatenate(test)), dtype=torch.int64),
    )


def _param(classifier: nn.Module) -> torch.Tensor:
    return next(classifier.parameters())


@torch.no_grad()
def predict(classifier: DigitsClassifier, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted labels (B,) (argmax of the logits), computed in the classifier's dtype."""
    p = _param(classifier)
    out = [
        classifier(chunk.to(device=p.device, dtype=p.dtype)).argmax(dim=1).cpu()
        for chunk in x.split(batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def accuracy(
    classifier: DigitsClassifier, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024
) -> float:
    """Fraction of ``x`` whose predicted label equals ``labels`` (correct / count, a float)."""
    if x.shape[0] == 0:
        raise ValueError("accuracy of an empty set")
    correct = int((predict(classifier, x, batch_size) == labels.cpu()).sum())
    return correct / x.shape[0]


def _read_card(path: Path) -> dict[str, Any]:
    card = read_card(path, keys=("name", "architecture", "weights", "feature_dim"))
    if card["architecture"] != ARCHITECTURE:
        raise ValueError(f"{path}: architecture {card['architecture']!r} is not {ARCHITECTURE!r}")
    return card


def load_digits_classifier(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    *,
    card: str | Path | None = None,
) -> DigitsClassifier:
    """The shipped digits classifier, in eval mode with ``requires_grad`` off.

    Reads the card ``ASSETS / "digits-classifier.json"`` (or ``card``), checks its
    architecture and the sha256 of the weights file it names, and loads the weights (a
    safetensors file) strictly. Any missing, corrupt or mismatched file raises ValueError
    naming that file.
    """
    card_path = Path(card) if card is not None else ASSETS / f"{NAME}.json"
    meta = _read_card(card_path)
    weights = card_path.parent / str(meta["weights"])
    if not weights.is_file():
        raise ValueError(f"{weights}: no such file (named by {card_path.name})")
    if Path(weights).suffix != ".safetensors":
        raise ValueError(f"{weights}: the classifier weights must be a .safetensors file")
    if "sha256" in meta and sha256(weights) != meta["sha256"]:
        raise ValueError(f"{weights}: checksum differs from its card {card_path.name}")
    kwargs = meta.get("kwargs", {})
    try:
        net = DigitsClassifier(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{card_path}: bad architecture arguments ({err})") from None
    if net.feature_dim != meta["feature_dim"]:
        raise ValueError(
            f"{card_path}: feature_dim {meta['feature_dim']} does not match the architecture "
            f"({net.feature_dim})"
        )
    apply_state_dict(net, load_state_dict(weights), weights)
    net = net.to(device=device, dtype=dtype).eval().requires_grad_(False)
    net.card = meta
    return net


@torch.no_grad()
def digits_features(
    x: torch.Tensor, classifier: DigitsClassifier | None = None, batch_size: int = 1024
) -> torch.Tensor:
    """Classifier features (B, feature_dim) of images x, as float64 on x's device.

    x is (B, 64), (B, 8, 8) or (B, 1, 8, 8) in the data scale pixel / 8 - 1. The classifier
    defaults to the shipped one in float64 on the CPU (``load_digits_classifier()``); a given
    classifier computes in its own dtype and device. Batched by ``batch_size``, without grad.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if classifier is None:
        classifier = load_digits_classifier()
    images = DigitsClassifier.as_images(x)
    p = _param(classifier)
    out = [
        classifier.features(chunk.to(device=p.device, dtype=p.dtype)).to(torch.float64)
        for chunk in images.split(batch_size)
    ]
    if not out:
        return torch.zeros(0, classifier.feature_dim, dtype=torch.float64, device=x.device)
    return torch.cat(out).to(x.device)
