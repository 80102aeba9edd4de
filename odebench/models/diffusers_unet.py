"""diffusers' UNet2DModel from a local folder (optional extra ``odebench[diffusers]``).

No download ever: ``local_files_only=True`` and safetensors weights only. The UNet predicts
eps from (x, timestep) with the DDPM index convention, so it is wrapped with
``time_input="index"`` (index i at t = (i + 1) / T).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .network import NetworkModel


class _UNetEps(torch.nn.Module):
    """(x, index) -> eps for a UNet2DModel (its output's ``.sample``)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.unet(x, index).sample


def load_diffusers_unet(
    folder: str | Path,
    *,
    T: int = 1000,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int | None = None,
) -> NetworkModel:
    """A UNet2DModel saved with ``save_pretrained`` (safetensors) in ``folder``."""
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise ValueError(
            "loading a diffusers UNet needs the optional extra: pip install 'odebench[diffusers]'"
        ) from None
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder}: no config.json (not a saved UNet2DModel folder)")
    if not any(folder.glob("*.safetensors")):
        raise ValueError(f"{folder}: no .safetensors weights (other formats are refused)")
    try:
        unet = UNet2DModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{folder}: cannot load the UNet2DModel ({first})") from None
    return NetworkModel(
        _UNetEps(unet),
        time_input="index",
        T=T,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        name=f"diffusers:{folder.name}",
    )
