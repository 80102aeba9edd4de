"""Network cards are checked before anything is built or hashed (issue 17).

Every bad card gets a ValueError with one line naming the card file and the field: badly typed
fields (weights null or 123, T "abc", input_shape 5), sizes that would allocate terabytes
(hidden 1000000), weights paths that leave the card's folder ("../x", "/etc/passwd", a
symlink), a file named .safetensors that is not one, a wrong sha256. The format is checked
before the file is hashed, and the hash reads the file in chunks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from odebench.models import cards, loading
from odebench.models.loading import ASSETS, load

NAME = "gmm-2d-mlp"


def _card() -> dict[str, Any]:
    return json.loads((ASSETS / f"{NAME}.json").read_text())


def _folder(tmp_path: Path, **changes: Any) -> Path:
    """A copy of the shipped card (and its weights) in ``tmp_path / "cards"``, edited."""
    folder = tmp_path / "cards"
    folder.mkdir(exist_ok=True)
    shutil.copy(ASSETS / f"{NAME}.safetensors", folder / f"{NAME}.safetensors")
    card = _card()
    for key, value in changes.items():
        if key == "kwargs":
            card["architecture"]["kwargs"].update(value)
        else:
            card[key] = value
    path = folder / f"{NAME}.json"
    path.write_text(json.dumps(card))
    return path


def _never_built(*_: Any) -> None:
    raise AssertionError("the module was built before the card was checked")


def _refused(path: Path, field: str, needle: str = "") -> str:
    with pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert str(path) in message and repr(field) in message, message
    assert needle in message, message
    return message


def test_the_copied_card_loads_as_the_shipped_one(tmp_path: Path) -> None:
    copied, shipped = load(_folder(tmp_path)), load(NAME)
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(copied(x, 0.5), shipped(x, 0.5))


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("weights", None, "non-empty string"),
        ("weights", 123, "non-empty string"),
        ("weights", "", "non-empty string"),
        ("T", "abc", "positive number"),
        ("T", -5, "positive number"),
        ("T", True, "positive number"),
        ("input_shape", 5, "list of 1 to 8 positive integers"),
        ("input_shape", [2, 0], "list of 1 to 8 positive integers"),
        ("input_shape", [4096, 4096, 4096], "at most"),
        ("time_scale", "1", "positive number"),
        ("time_input", 3, "non-empty string"),
        ("sha256", 42, "hex digits"),
        ("architecture", "eps-mlp", "object"),
    ],
)
def test_badly_typed_fields_are_named(tmp_path: Path, field: str, value: Any, needle: str) -> None:
    _refused(_folder(tmp_path, **{field: value}), field, needle)


@pytest.mark.parametrize(
    ("key", "value"),
    [("hidden", "128"), ("hidden", 0), ("hidden", 128.0), ("layers", -1), ("dim", True)],
)
def test_badly_typed_architecture_arguments_are_named(tmp_path: Path, key: str, value: Any) -> None:
    _refused(_folder(tmp_path, kwargs={key: value}), f"architecture.kwargs.{key}", "integer")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hidden": 1_000_000}, "architecture.kwargs.hidden"),  # 3e12 parameters, 12 TB
        ({"hidden": 20_000}, "architecture.kwargs.hidden"),  # 2.4e9 parameters, 9.6 GB
        ({"layers": 10**9}, "architecture.kwargs.layers"),  # a billion blocks: by range
        ({"hidden": 10**12}, "architecture.kwargs.hidden"),
    ],
)
def test_huge_architectures_are_refused_without_allocating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, int], field: str
) -> None:
    path = _folder(tmp_path, kwargs=kwargs)
    monkeypatch.setattr(loading, "build_architecture", _never_built)
    start = time.perf_counter()
    message = _refused(path, field)
    assert time.perf_counter() - start < 10.0  # on the meta device: no memory, no init
    assert "limit" in message or "integer in" in message


def test_the_size_bound_counts_what_the_architecture_holds() -> None:
    from odebench.models.mlp import EpsMLP

    spec = _card()["architecture"]["kwargs"]
    shapes = cards.size_on_meta(EpsMLP, spec, "c.json")
    real = EpsMLP(**spec).state_dict()
    assert shapes == {k: tuple(v.shape) for k, v in real.items()}
    assert sum(v.numel() for v in real.values()) <= cards.MAX_PARAMETERS


@pytest.mark.parametrize("value", ["../x.safetensors", "/etc/passwd", "sub/../../x"])
def test_weights_outside_the_cards_folder_are_refused(tmp_path: Path, value: str) -> None:
    shutil.copy(ASSETS / f"{NAME}.safetensors", tmp_path / "x.safetensors")  # "../x" exists
    _refused(_folder(tmp_path, weights=value), "weights", "inside the card's folder")


def test_a_symlink_out_of_the_cards_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.safetensors"
    shutil.copy(ASSETS / f"{NAME}.safetensors", outside)
    path = _folder(tmp_path, weights="link.safetensors")
    (path.parent / "link.safetensors").symlink_to(outside)
    _refused(path, "weights", "stay inside")
    inside = path.parent / "inner.safetensors"  # a link that stays inside is a file as any
    inside.symlink_to(path.parent / f"{NAME}.safetensors")
    card = json.loads(path.read_text())
    path.write_text(json.dumps(dict(card, weights="inner.safetensors")))
    load(path)


def test_missing_weights_are_named(tmp_path: Path) -> None:
    _refused(_folder(tmp_path, weights="none.safetensors"), "weights", "names no file")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a safetensors file at all, but the right name",
        (10**12).to_bytes(8, "little") + b"{}",
        (2).to_bytes(8, "little") + b"[]",
        (40).to_bytes(8, "little")
        + b'{"w": {"dtype": "F32", "shape": [9], "data_offsets": [0, 10**9]}}'[:40],
    ],
)
def test_a_file_that_is_not_safetensors_is_refused_before_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    path = _folder(tmp_path)
    (path.parent / f"{NAME}.safetensors").write_bytes(content)

    def no_hash(_: Any) -> str:
        raise AssertionError("hashed before the format was checked")

    monkeypatch.setattr(loading, "sha256", no_hash)
    message = _refused(path, "weights", "not a safetensors file")
    assert f"{NAME}.safetensors" in message


def test_tensors_outside_the_file_are_refused(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 10**9]}})
    data = len(header).to_bytes(8, "little") + header.encode() + bytes(16)
    path = _folder(tmp_path)
    (path.parent / f"{NAME}.safetensors").write_bytes(data)
    _refused(path, "weights", "lies outside the file")


def test_header_shapes_are_checked_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A narrower architecture than the weights: refused from the header alone."""
    path = _folder(tmp_path, kwargs={"hidden": 64}, sha256=None)
    monkeypatch.setattr(loading, "build_architecture", _never_built)
    with pytest.raises(ValueError, match="do not match the architecture"):
        load(path)


def test_a_wrong_sha256_is_refused(tmp_path: Path) -> None:
    path = _folder(tmp_path, sha256="0" * 64)
    with pytest.raises(ValueError, match="checksum differs from its card") as info:
        load(path)
    assert f"{NAME}.json" in str(info.value) and len(str(info.value).splitlines()) == 1


def test_the_hash_is_streamed_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 1000 + b"tail"
    path = tmp_path / "blob"
    path.write_bytes(data)
    monkeypatch.setattr(cards, "CHUNK", 1000)
    reads: list[int] = []
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        fh = real_open(self, *args, **kwargs)
        read = fh.read

        def chunked(n: int = -1) -> bytes:
            reads.append(n)
            return read(n)

        fh.read = chunked
        return fh

    monkeypatch.setattr(Path, "open", counting_open)
    assert cards.sha256(path) == hashlib.sha256(data).hexdigest()
    assert reads and max(reads) == 1000  # never the whole file at once


def test_a_bad_card_in_a_study_exits_2_in_one_line(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line, through the model option that names a network."""
    path = _folder(tmp_path, T="abc")
    monkeypatch.setattr(loading, "ASSETS", path.parent)
    out = tmp_path / "out"
    result = run_cli(
        "orders", "--model", NAME, "--problem", "gmm-2d", "--solver", "ddim",
        "--steps", "4,8,16", "--n-samples", "2", out=out,
    )  # fmt: skip
    result.failed_in_one_line("field 'T' must be a positive number")
