"""diffusers' UNet2DModel and UNet2DConditionModel from a local folder (optional extra
``odebench[diffusers]``).

No download ever: ``local_files_only=True`` and safetensors weights only. The UNet predicts
eps from (x, timestep) with the DDPM index convention, so it is wrapped with
``time_input="index"`` (index i at t = (i + 1) / T).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .network import NetworkModel


class _UNetEps(torch.nn.Module):
    """(x, index[, condition]) -> eps for a diffusers UNet (its output's ``.sample``); a
    UNet2DConditionModel takes the condition as its text embeddings
    (``encoder_hidden_states``)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, index: torch.Tensor, condition=None) -> torch.Tensor:
        if condition is None:
            return self.unet(x, index).sample
        return self.unet(x, index, encoder_hidden_states=condition).sample


CLASSES = ("UNet2DModel", "UNet2DConditionModel")


def load_diffusers_unet(
    folder: str | Path,
    *,
    T: int = 1000,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int | None = None,
    condition: torch.Tensor | None = None,
    null_condition: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    input_shape: tuple[int, ...] | None = None,
) -> NetworkModel:
    """A UNet2DModel or UNet2DConditionModel saved with ``save_pretrained`` (safetensors) in
    ``folder``; a conditional one takes ``condition`` (text embeddings, (1 or B, tokens, dim))
    and, for classifier-free guidance, ``null_condition`` and ``guidance_scale``."""
    try:
        import diffusers
    except ImportError:
        raise ValueError(
            "loading a diffusers UNet needs the optional extra: pip install 'odebench[diffusers]'"
        ) from None
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder}: no config.json (not a saved UNet2DModel folder)")
    if not any(folder.glob("*.safetensors")):
        raise ValueError(f"{folder}: no .safetensors weights (other formats are refused)")
    name = json.loads((folder / "config.json").read_text()).get("_class_name", "UNet2DModel")
    if name not in CLASSES:
        raise ValueError(f"{folder}: a {name}, not one of {', '.join(CLASSES)}")
    conditional = name == "UNet2DConditionModel"
    if conditional and condition is None:
        raise ValueError(f"{folder}: a UNet2DConditionModel needs condition= (text embeddings)")
    if not conditional and condition is not None:
        raise ValueError(f"{folder}: a UNet2DModel takes no condition")
    try:
        unet = getattr(diffusers, name).from_pretrained(
            folder, local_files_only=True, use_safetensors=True
        )
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{folder}: cannot load the {name} ({first})") from None
    return NetworkModel(
        _UNetEps(unet),
        time_input="index",
        T=T,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        name=f"diffusers:{folder.name}",
        condition=condition,
        null_condition=null_condition,
        guidance_scale=guidance_scale,
        input_shape=input_shape,
    )
