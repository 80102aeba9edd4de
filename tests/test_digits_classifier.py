"""The shipped digits-classifier: safe loading, its card, its accuracy, and its features.

The classifier's penultimate activations are the feature space of the digits Frechet distance
(the FID analogue for 8x8 digits), so besides accuracy these tests check that the features are
deterministic, agree between float32 and float64, move little under small pixel noise and
separate real digits from noise images by a wide margin.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from odebench.models import classifier as clf_module
from odebench.models.classifier import (
    FEATURE_DIM,
    DigitsClassifier,
    accuracy,
    digits_dataset,
    digits_features,
    digits_split,
    load_digits_classifier,
)
from odebench.models.loading import load_state_dict, sha256

pytest.importorskip("sklearn")

NAME = "digits-classifier"
CARD = clf_module.ASSETS / f"{NAME}.json"


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(CARD.read_text())


@pytest.fixture(scope="module")
def clf() -> DigitsClassifier:
    return load_digits_classifier()


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return digits_dataset()


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to feature sets a and b (rows are samples)."""
    mean = (a.mean(0) - b.mean(0)).pow(2).sum()
    s1, s2 = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(s1)
    r1 = (v * w.clamp(min=0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(r1 @ s2 @ r1).clamp(min=0).sqrt().sum()
    return float(mean + s1.trace() + s2.trace() - 2.0 * cross)


def test_card_and_weights_file(card, clf):
    weights = CARD.parent / card["weights"]
    assert card["name"] == NAME and card["architecture"] == "digits-classifier"
    assert card["sha256"] == sha256(weights)
    assert card["feature_dim"] == FEATURE_DIM == clf.feature_dim == 64
    assert card["data"] == "sklearn digits, pixel/8-1"
    assert card["split"]["seed"] == card["split_seed"]
    assert card["test_accuracy"] >= 0.95
    for key in ("epochs", "seed", "wall_seconds", "torch_version", "augmentation"):
        assert key in card["training"], key
    assert card["training"]["wall_seconds"] <= 120  # the training budget on 2 CPU cores
    assert card["parameters"] == sum(p.numel() for p in clf.parameters())
    assert weights.stat().st_size < 500 * 1024
    state = load_state_dict(weights)
    assert set(state) == set(DigitsClassifier(**card["kwargs"]).state_dict())
    assert all(v.dtype == torch.float32 for v in state.values())


def test_loaded_in_eval_mode_without_grad(clf):
    assert not clf.training
    assert all(not p.requires_grad for p in clf.parameters())
    assert all(p.dtype == torch.float64 for p in clf.parameters())
    c32 = load_digits_classifier(dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in c32.parameters())


def test_accuracy_on_all_digits(clf, data):
    x, y = data
    assert x.shape == (1797, 64) and x.min() >= -1.0 and x.max() <= 1.0
    assert accuracy(clf, x, y) >= 0.97
    # The check means something: an untrained network is near chance.
    torch.manual_seed(0)
    assert accuracy(DigitsClassifier().double(), x, y) < 0.5


def test_held_out_accuracy_matches_card(clf, data, card):
    x, y = data
    train, test = digits_split(y, card["split"]["seed"], card["split"]["test_fraction"])
    assert test.numel() == card["n_test"] and train.numel() == card["n_train"]
    assert abs(accuracy(clf, x[test], y[test]) - card["test_accuracy"]) <= 1e-9
    assert accuracy(clf, x[test], y[test]) >= 0.95


def test_split_is_stratified_and_deterministic(data):
    _, y = data
    train, test = digits_split(y, 0, 0.2)
    assert torch.equal(torch.sort(torch.cat([train, test])).values, torch.arange(y.numel()))
    again = digits_split(y, 0, 0.2)
    assert torch.equal(train, again[0]) and torch.equal(test, again[1])
    assert not torch.equal(test, digits_split(y, 1, 0.2)[1])
    for c in range(10):
        n_c = int((y == c).sum())
        assert int((y[test] == c).sum()) == round(0.2 * n_c)
    with pytest.raises(ValueError, match="test_fraction"):
        digits_split(y, 0, 1.0)


def test_features_shape_layouts_and_determinism(clf, data):
    x = data[0][:100]
    f = digits_features(x, clf)
    assert f.shape == (100, FEATURE_DIM) and f.dtype == torch.float64
    assert torch.equal(f, digits_features(x, clf))
    assert torch.equal(f, digits_features(x))  # the default is the shipped float64 classifier
    torch.testing.assert_close(digits_features(x.reshape(-1, 1, 8, 8), clf), f)
    torch.testing.assert_close(digits_features(x.reshape(-1, 8, 8), clf), f)
    torch.testing.assert_close(digits_features(x, clf, batch_size=7), f, rtol=0, atol=1e-12)
    torch.testing.assert_close(clf.features(x), f)
    assert clf(x).shape == (100, 10)
    assert bool((f >= 0).all())  # post-ReLU
    assert digits_features(x[:0], clf).shape == (0, FEATURE_DIM)
    with pytest.raises(ValueError, match="input must be"):
        digits_features(torch.zeros(3, 63), clf)


def test_float32_and_float64_features_agree(clf, data):
    x = data[0]
    f64 = digits_features(x, clf)
    f32 = digits_features(x.float(), load_digits_classifier(dtype=torch.float32))
    assert f32.dtype == torch.float64
    torch.testing.assert_close(f32, f64, rtol=0, atol=1e-4)


def test_features_separate_digits_from_noise(clf, data):
    x, _ = data
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(x.shape[0], generator=gen)
    a, b = x[perm[:898]], x[perm[898:1796]]
    noise = torch.randn(898, 64, generator=gen, dtype=torch.float64)
    noisy = b + 0.1 * torch.randn(b.shape, generator=gen, dtype=torch.float64)
    fa, fb = digits_features(a, clf), digits_features(b, clf)
    within = frechet(fa, fb)  # two halves of the real digits
    between = frechet(fa, digits_features(noise, clf))
    assert between > 20.0 * within
    # Robust to sampler-like imperfections: pixel noise of std 0.1 hardly moves the distance.
    assert frechet(fa, digits_features(noisy, clf)) < 1.5 * within
    # Their centroids: the noise centroid is far from the real one, the two halves' are close.
    gap_real = (fa.mean(0) - fb.mean(0)).norm()
    gap_noise = (fa.mean(0) - digits_features(noise, clf).mean(0)).norm()
    assert gap_noise > 5.0 * gap_real


def test_missing_or_bad_files_name_the_file(tmp_path, monkeypatch, card):
    monkeypatch.setattr(clf_module, "ASSETS", tmp_path)
    with pytest.raises(ValueError, match=f"{NAME}.json: no such card"):
        load_digits_classifier()
    (tmp_path / f"{NAME}.json").write_text("{not json")
    with pytest.raises(ValueError, match=f"{NAME}.json: not a JSON card"):
        load_digits_classifier()
    (tmp_path / f"{NAME}.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=f"{NAME}.safetensors: no such file"):
        load_digits_classifier()
    weights = tmp_path / card["weights"]
    weights.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=f"{NAME}.safetensors: checksum differs"):
        load_digits_classifier()
    no_sum = {k: v for k, v in card.items() if k != "sha256"}
    (tmp_path / f"{NAME}.json").write_text(json.dumps(no_sum))
    with pytest.raises(ValueError, match=f"{NAME}.safetensors: cannot read weights"):
        load_digits_classifier()
    shutil.copy(CARD.parent / card["weights"], weights)
    wider = dict(no_sum, kwargs={"channels": [8, 32], "feature_dim": 64})
    (tmp_path / f"{NAME}.json").write_text(json.dumps(wider))
    with pytest.raises(ValueError, match=f"{NAME}.safetensors: weights do not match"):
        load_digits_classifier()
    (tmp_path / f"{NAME}.json").write_text(json.dumps(dict(card, architecture="digits-unet")))
    with pytest.raises(ValueError, match=f"{NAME}.json: architecture"):
        load_digits_classifier()
    (tmp_path / f"{NAME}.json").write_text(json.dumps(card))
    assert load_digits_classifier().feature_dim == FEATURE_DIM  # the copy loads
