"""A network card checked before anything is built or read in full.

A card is untrusted input: a typo (``"hidden": 1000000``) would have the loader allocate
terabytes, a badly typed field (``"T": "abc"``, ``"weights": null``) would fail deep inside
torch without naming the card, and a weights path (``"../x"``, ``"/etc/passwd"``, a symlink)
could leave the card's folder. So, in this order and before the module is built or the weights
file is hashed:

1. every field the loader reads is checked by type and range (:func:`check_fields`);
2. the architecture is built on torch's ``meta`` device (shapes, no memory) and its size
   bounded by :data:`MAX_PARAMETERS` (:func:`size_on_meta`);
3. the weights path must name a file inside the card's folder (:func:`weights_file`);
4. its format is checked from its first bytes: a safetensors header (JSON, read alone, its
   tensors' offsets inside the file) whose keys and shapes match the architecture
   (:func:`weights_shapes`);
5. only then is the file hashed, in chunks (:func:`sha256`).

Every failure is a ``ValueError`` with one line naming the card (or the weights file) and the
field.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path, PurePath
from typing import Any

import torch

__all__ = [
    "MAX_PARAMETERS",
    "check_fields",
    "mismatch",
    "sha256",
    "size_on_meta",
    "weights_file",
    "weights_shapes",
]

#: Most parameters (and stored buffers) a card may declare: 10^8 is 0.8 GB in float64, over a
#: hundred times the largest shipped network (0.66 M).
MAX_PARAMETERS = 100_000_000
#: Largest value of any integer architecture argument (a width, a count, a dimension).
MAX_SIZE = 1 << 20
#: Largest number of repeated blocks (each one a Python object even on the meta device).
MAX_DEPTH = 1000
#: Architecture arguments that repeat blocks.
DEPTH = ("layers", "blocks")
#: Architecture arguments that must be positive (widths and dimensions).
POSITIVE = ("dim", "hidden", "channels", "channels_low", "emb_dim", "groups", "in_channels")
#: Most numbers of one input (``input_shape``).
MAX_INPUT_NUMBERS = 1 << 24
#: Largest safetensors header (the safetensors library's own limit).
MAX_HEADER = 100_000_000
#: Bytes read at a time when hashing.
CHUNK = 1 << 20
#: Fields that, when present, must be non-empty strings.
STRINGS = ("name", "weights", "schedule", "parametrization", "time_input", "data", "problem")


def _bad(path: str | Path, field: str, what: str, value: Any) -> ValueError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ValueError(f"{path}: field {field!r} must be {what}, got {shown}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_fields(card: dict[str, Any], path: str | Path) -> None:
    """Check the type and range of every field of a network card the loader reads."""
    for key in STRINGS:
        if key in card and not (isinstance(card[key], str) and card[key]):
            raise _bad(path, key, "a non-empty string", card[key])
    if card.get("T") is not None and not (_is_number(card["T"]) and card["T"] > 0):
        raise _bad(path, "T", "a positive number (or null)", card["T"])
    if "time_scale" in card and not (_is_number(card["time_scale"]) and card["time_scale"] > 0):
        raise _bad(path, "time_scale", "a positive number", card["time_scale"])
    shape = card.get("input_shape")
    if shape is not None:
        if not (
            isinstance(shape, list)
            and 1 <= len(shape) <= 8
            and all(_is_int(s) and s >= 1 for s in shape)
        ):
            raise _bad(path, "input_shape", "a list of 1 to 8 positive integers", shape)
        if math.prod(shape) > MAX_INPUT_NUMBERS:
            raise _bad(path, "input_shape", f"at most {MAX_INPUT_NUMBERS} numbers", shape)
    digest = card.get("sha256")
    if digest is not None and not (
        isinstance(digest, str)
        and len(digest) == 64
        and all(c in "0123456789abcdef" for c in digest)
    ):
        raise _bad(path, "sha256", "64 lower-case hex digits", digest)
    _check_architecture(card.get("architecture"), path)


def _check_architecture(spec: Any, path: str | Path) -> None:
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise _bad(path, "architecture", 'an object {"class": NAME, "kwargs": {...}}', spec)
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise _bad(path, "architecture.kwargs", "an object", kwargs)
    for key, value in kwargs.items():
        field = f"architecture.kwargs.{key}"
        low = 1 if key in POSITIVE else 0
        high = MAX_DEPTH if key in DEPTH else MAX_SIZE
        if key in POSITIVE or key in DEPTH:
            if not (_is_int(value) and low <= value <= high):
                raise _bad(path, field, f"an integer in {low}..{high}", value)
        elif _is_int(value) and not 0 <= value <= high:
            raise _bad(path, field, f"an integer in 0..{high}", value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise _bad(path, field, "a finite number", value)


def size_on_meta(
    cls: type[torch.nn.Module], kwargs: dict[str, Any], path: str | Path
) -> dict[str, tuple[int, ...]]:
    """The state dict's shapes of ``cls(**kwargs)`` built on the meta device (no memory);
    above :data:`MAX_PARAMETERS` numbers a ValueError names the card and its largest size."""
    try:
        with torch.device("meta"):
            net = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: bad architecture arguments ({err})") from None
    shapes = {key: tuple(value.shape) for key, value in net.state_dict().items()}
    count = sum(math.prod(shape) for shape in shapes.values())
    if count > MAX_PARAMETERS:
        sizes = {k: v for k, v in kwargs.items() if _is_int(v)}
        largest = max(sizes, key=sizes.get) if sizes else None
        field = f"architecture.kwargs.{largest}" if largest else "architecture"
        shown = f" = {sizes[largest]}" if largest else ""
        raise ValueError(
            f"{path}: field {field!r}{shown} gives {count:.3g} parameters "
            f"({count * 4 / 1e9:.3g} GB in float32), above the limit of {MAX_PARAMETERS:.3g}"
        )
    return shapes


def weights_file(card: dict[str, Any], path: str | Path) -> Path:
    """The card's ``weights``: a relative path to a file inside the card's folder."""
    value = card["weights"]
    if not isinstance(value, str) or not value:
        raise _bad(path, "weights", "a file name relative to the card's folder", value)
    pure = PurePath(value)
    if pure.is_absolute() or pure.anchor or ".." in pure.parts:
        raise _bad(path, "weights", "a path inside the card's folder", value)
    folder = Path(path).parent
    weights = folder / value
    resolved, inside = weights.resolve(), folder.resolve()
    if not resolved.is_relative_to(inside):
        raise ValueError(
            f"{path}: field 'weights' must stay inside the card's folder, but {value!r} "
            f"leads to {resolved}"
        )
    if not resolved.is_file():
        raise ValueError(f"{path}: field 'weights' names no file ({weights})")
    return weights


def weights_shapes(weights: Path, path: str | Path) -> dict[str, tuple[int, ...]] | None:
    """Tensor shapes from a safetensors file's header, checked against the file's size
    before any tensor is read; None for a torch file (.pt / .pth, its magic checked)."""
    suffix = weights.suffix.lower()
    size = weights.stat().st_size
    with weights.open("rb") as fh:
        head = fh.read(8)
        if suffix in (".pt", ".pth"):
            if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
                raise ValueError(f"{weights}: not a torch file (field 'weights' of {path})")
            return None
        if suffix != ".safetensors":
            raise ValueError(
                f"{path}: field 'weights' must name a .safetensors (or .pt/.pth) file, "
                f"not {weights.name!r}"
            )
        why = _safetensors_problem(fh, head, size)
    if isinstance(why, str):
        raise ValueError(f"{weights}: not a safetensors file ({why}; field 'weights' of {path})")
    return why


def _safetensors_problem(fh: Any, head: bytes, size: int) -> str | dict[str, tuple[int, ...]]:
    """What is wrong with a safetensors file (a string), else its shapes."""
    if len(head) < 8:
        return "shorter than its 8-byte header length"
    (length,) = struct.unpack("<Q", head)
    if not 2 <= length <= min(MAX_HEADER, size - 8):
        return f"header length {length} does not fit a file of {size} bytes"
    try:
        header = json.loads(fh.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "its header is not JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    data, shapes = size - 8 - length, {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("dtype"), str)
            and isinstance(entry.get("shape"), list)
            and all(_is_int(s) and s >= 0 for s in entry["shape"])
            and isinstance(entry.get("data_offsets"), list)
            and len(entry["data_offsets"]) == 2
            and all(_is_int(o) for o in entry["data_offsets"])
        )
        if not ok:
            return f"bad header entry {key!r}"
        start, end = entry["data_offsets"]
        if not 0 <= start <= end <= data:
            return f"tensor {key!r} lies outside the file"
        shapes[key] = tuple(entry["shape"])
    return shapes


def mismatch(
    expected: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...]], path: str | Path
) -> ValueError | None:
    """The error (naming ``path`` and the first bad key) if ``got`` is not exactly the keys
    and shapes of ``expected``; None if it is."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing or unexpected:
        what = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        return ValueError(
            f"{path}: weights do not match the architecture ({what}; "
            f"{len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for key, shape in got.items():
        if tuple(shape) != tuple(expected[key]):
            return ValueError(
                f"{path}: weights do not match the architecture ({key!r} has shape "
                f"{tuple(shape)}, expected {tuple(expected[key])})"
            )
    return None


def sha256(path: str | Path) -> str:
    """The file's sha256 (hex), read in chunks of :data:`CHUNK` bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
