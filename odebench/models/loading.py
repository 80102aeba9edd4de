"""Loading networks safely: safetensors, or torch files with ``weights_only=True``, nothing else.

A shipped network is a pair ``NAME.safetensors`` + ``NAME.json`` (its card: architecture and
its arguments, data, schedule, parametrisation, time input, training record). The card's
``parametrization`` is the network's prediction kind ("eps", "x0", "v", "velocity",
"denoiser"), converted to eps under the card's ``schedule``. The card names
the architecture from an allowlist (``ARCHITECTURES``), never an arbitrary import path. Every
failure names the file: a wrong extension, a corrupt file, a state dict that does not match
the architecture (first missing / unexpected / mis-shaped key). A card is checked before
anything is built or hashed (:mod:`.cards`): typed fields, a bounded size (built on the meta
device first), a weights file inside the card's folder whose format and shapes are checked
from its header, then a streamed sha256.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch

from .cards import check_fields, mismatch, sha256, size_on_meta, weights_file, weights_shapes
from .network import NetworkModel

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "networks"

#: Architectures a card may name: "name" -> "module:Class" (imported on use).
ARCHITECTURES = {
    "eps-mlp": "odebench.models.mlp:EpsMLP",
    "prediction-mlp": "odebench.models.mlp:PredictionMLP",
    "digits-unet": "odebench.models.unet:DigitsUNet",
}

CARD_KEYS = ("name", "architecture", "weights", "data", "schedule", "parametrization", "time_input")


def shipped() -> list[str]:
    """Names of the networks that ship with odebench."""
    return sorted(p.stem for p in ASSETS.glob("*.json"))


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or a .pt / .pth file loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif suffix in (".pt", ".pth"):
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise ValueError(
                f"{path}: refusing to load {suffix or 'a file without extension'}"
                "; only .safetensors, or .pt/.pth loaded with weights_only=True"
            )
    except ValueError:
        raise
    except Exception as err:  # corrupt or truncated file: name it
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: cannot read weights ({first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return state


def apply_state_dict(
    net: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path
) -> None:
    """Load ``state`` into ``net`` strictly; a mismatch names the file and the first key."""
    shapes = {key: tuple(value.shape) for key, value in net.state_dict().items()}
    err = mismatch(shapes, {key: tuple(value.shape) for key, value in state.items()}, path)
    if err is not None:
        raise err
    net.load_state_dict(state, strict=True)


def architecture_class(spec: dict[str, Any], card_path: str | Path) -> type[torch.nn.Module]:
    """The allowlisted class a card's ``architecture`` names (``ARCHITECTURES``)."""
    name = spec.get("class") if isinstance(spec, dict) else None
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise ValueError(
            f"{card_path}: unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})"
        )
    module, cls = ARCHITECTURES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_architecture(spec: dict[str, Any], card_path: str | Path) -> torch.nn.Module:
    """The card's architecture, built with its ``kwargs``; bad arguments name the card."""
    cls = architecture_class(spec, card_path)
    try:
        return cls(**spec.get("kwargs", {}))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{card_path}: bad architecture arguments ({err})") from None


def read_card(path: str | Path, keys: tuple[str, ...] = CARD_KEYS) -> dict[str, Any]:
    """A JSON card with every key of ``keys``; any failure is a ValueError naming the file."""
    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such card") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a JSON card ({err})") from None
    if not isinstance(card, dict):
        raise ValueError(f"{path}: not a JSON card (not an object)")
    missing = [k for k in keys if k not in card]
    if missing:
        raise ValueError(f"{path}: card lacks {', '.join(missing)}")
    return card


def card_schedule(card: dict[str, Any], card_path: str | Path) -> Any:
    """The card's schedule; None for an eps network fed t or an index whose schedule odebench
    does not know (it needs none), a ValueError naming the card for any other network."""
    from ..schedules import get as get_schedule

    try:
        return get_schedule(card["schedule"])
    except ValueError as err:
        if card["parametrization"] == "eps" and not card["time_input"].startswith("sigma"):
            return None
        raise ValueError(f"{card_path}: {err}") from None


def load(
    name_or_card: str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int | None = None,
    condition: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
) -> NetworkModel:
    """A shipped network by name (``shipped()``), or any card path, as a ``NetworkModel``.

    The card is checked first (:mod:`.cards`: fields by type and range, the size of the
    architecture built on the meta device, a weights file inside the card's folder, its
    header's keys and shapes), then its ``sha256`` (when present) against the weights file,
    read in chunks; every failure is a ValueError naming the card and the field. A conditional
    network's card declares its ``condition`` (``{"kind": "class-labels", "classes": K,
    "null": K}``); it takes ``condition=`` (labels, one shared or one per sample; none: the
    null label, i.e. the unconditional model) and ``guidance_scale`` (classifier-free
    guidance against the card's null label).
    """
    card_path = Path(name_or_card)
    if card_path.suffix != ".json":
        if str(name_or_card) not in shipped():
            raise ValueError(
                f"unknown network {str(name_or_card)!r} "
                f"(shipped: {', '.join(shipped()) or 'none'}; or give a card path)"
            )
        card_path = ASSETS / f"{name_or_card}.json"
    card = read_card(card_path)
    check_fields(card, card_path)
    cls = architecture_class(card["architecture"], card_path)
    shapes = size_on_meta(cls, card["architecture"].get("kwargs", {}), card_path)
    weights = weights_file(card, card_path)
    stored = weights_shapes(weights, card_path)
    if stored is not None and (err := mismatch(shapes, stored, weights)) is not None:
        raise err
    if "sha256" in card and sha256(weights) != card["sha256"]:
        raise ValueError(f"{weights}: checksum differs from its card {card_path.name}")
    net = build_architecture(card["architecture"], card_path)
    apply_state_dict(net, load_state_dict(weights), weights)
    conditioning = card_conditioning(card, card_path, condition, guidance_scale)
    model = NetworkModel(
        net,
        prediction=card["parametrization"],
        schedule=card_schedule(card, card_path),
        time_input=card["time_input"],
        T=card.get("T"),
        time_scale=card.get("time_scale", 1.0),
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        name=card["name"],
        input_shape=card.get("input_shape"),
        **conditioning,
    )
    model.card = card
    return model


def card_conditioning(
    card: dict[str, Any], card_path: str | Path, condition: Any, guidance_scale: float
) -> dict[str, Any]:
    """``NetworkModel`` arguments for the card's declared condition (class labels only)."""
    spec = card.get("condition")
    if spec is None:
        if condition is not None or guidance_scale != 1.0:
            raise ValueError(f"{card_path}: network {card['name']!r} is not conditional")
        return {}
    if not isinstance(spec, dict) or spec.get("kind") != "class-labels":
        raise ValueError(f"{card_path}: unknown condition {spec!r} (known: class-labels)")
    classes, null = spec.get("classes"), spec.get("null")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (classes, null)):
        raise ValueError(f"{card_path}: condition needs integer 'classes' and 'null'")
    null_label = torch.tensor([null])
    if condition is None:
        if guidance_scale != 1.0:
            raise ValueError("guidance_scale != 1 needs condition= (the class labels)")
        return {"condition": null_label}
    if guidance_scale == 0.0:  # out_null + 0 (out_c - out_null): the unconditional model
        return {"condition": null_label}
    labels = torch.as_tensor(condition)
    if labels.is_floating_point() or labels.ndim != 1:
        raise ValueError(f"condition of {card['name']!r}: a 1-d tensor of integer class labels")
    if bool(((labels < 0) | (labels > classes)).any()):
        raise ValueError(
            f"condition of {card['name']!r}: labels in 0..{classes - 1} ({null} = unconditional)"
        )
    return {"condition": labels, "null_condition": null_label, "guidance_scale": guidance_scale}
