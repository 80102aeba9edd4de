"""diffusers' UNets and diffusion transformers from a local folder (optional extra
``odebench[diffusers]``).

No download ever: ``local_files_only=True`` and safetensors weights only. Each class is wrapped
with the time input, prediction and conditioning its pipelines use:

- ``UNet2DModel``: eps from (x, timestep) with the DDPM index convention, ``time_input="index"``
  (index i at t = (i + 1) / T);
- ``UNet2DConditionModel`` (Stable Diffusion's): the same, conditioned on text embeddings
  (``encoder_hidden_states``);
- ``DiTTransformer2DModel`` (Peebles & Xie 2023): eps on the index convention, conditioned on
  class labels; a DiT that learns its variance returns 2C channels, of which the first C are
  eps (as DiTPipeline splits them). Its null label is ``num_embeds_ada_norm``;
- ``SD3Transformer2DModel`` (Esser et al. 2024): flow matching, x_t = (1 - t) x0 + t eps, with
  the velocity eps - x0 as output and timestep 1000 t; conditioned on a dict of
  ``encoder_hidden_states`` and ``pooled_projections``.

``load_diffusers`` reads the class from ``config.json``; every failure is one line naming the
folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


class _DiTEps(torch.nn.Module):
    """(x, index, labels) -> eps for a DiT: the first C output channels (a DiT that learns its
    variance also returns C variance channels)."""

    def __init__(self, dit: torch.nn.Module):
        super().__init__()
        self.dit = dit

    def forward(self, x: torch.Tensor, index: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.dit(x, timestep=index, class_labels=labels).sample
        return out[:, : x.shape[1]]


class _SD3Velocity(torch.nn.Module):
    """(x, 1000 t, encoder_hidden_states=, pooled_projections=) -> velocity for SD3."""

    def __init__(self, transformer: torch.nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
    ) -> torch.Tensor:
        return self.transformer(
            hidden_states=x,
            encoder_hidden_states=encoder_hidden_states,
            pooled_projections=pooled_projections,
            timestep=timestep,
        ).sample


CLASSES = (
    "UNet2DModel",
    "UNet2DConditionModel",
    "DiTTransformer2DModel",
    "SD3Transformer2DModel",
)
#: What each class is conditioned on (None: unconditional).
CONDITIONS = {
    "UNet2DModel": None,
    "UNet2DConditionModel": "text embeddings (1 or B, tokens, dim)",
    "DiTTransformer2DModel": "class labels (1 or B,)",
    "SD3Transformer2DModel": "a dict of encoder_hidden_states and pooled_projections",
}


def load_diffusers(
    folder: str | Path,
    *,
    T: int = 1000,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int | None = None,
    condition: Any = None,
    null_condition: Any = None,
    guidance_scale: float = 1.0,
    input_shape: tuple[int, ...] | None = None,
) -> NetworkModel:
    """A diffusers UNet or diffusion transformer saved with ``save_pretrained`` (safetensors)
    in ``folder`` (see the module docstring for the classes), as an eps ``NetworkModel``.

    A conditional one takes ``condition`` and, for classifier-free guidance,
    ``null_condition`` and ``guidance_scale``; a DiT's null label defaults to its
    ``num_embeds_ada_norm``. ``T`` is the training table's length of the index-time classes.
    """
    try:
        import diffusers
    except ImportError:
        raise ValueError(
            "loading a diffusers model needs the optional extra: pip install 'odebench[diffusers]'"
        ) from None
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder}: no config.json (not a saved diffusers model folder)")
    if not any(folder.glob("*.safetensors")):
        raise ValueError(f"{folder}: no .safetensors weights (other formats are refused)")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{folder}: config.json is not JSON ({err})") from None
    name = config.get("_class_name", "UNet2DModel") if isinstance(config, dict) else None
    if name not in CLASSES:
        raise ValueError(f"{folder}: a {name}, not one of {', '.join(CLASSES)}")
    needs = CONDITIONS[name]
    if needs is not None and condition is None:
        raise ValueError(f"{folder}: a {name} needs condition= ({needs})")
    if needs is None and condition is not None:
        raise ValueError(f"{folder}: a {name} takes no condition")
    try:
        net = getattr(diffusers, name).from_pretrained(
            folder, local_files_only=True, use_safetensors=True
        )
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{folder}: cannot load the {name} ({first})") from None
    common = {
        "device": device,
        "dtype": dtype,
        "batch_size": batch_size,
        "name": f"diffusers:{folder.name}",
        "condition": condition,
        "null_condition": null_condition,
        "guidance_scale": guidance_scale,
        "input_shape": input_shape,
    }
    if name == "SD3Transformer2DModel":
        return NetworkModel(
            _SD3Velocity(net),
            time_input="t",
            time_scale=1000.0,
            prediction="velocity",
            schedule="flow",
            **common,
        )
    if name == "DiTTransformer2DModel":
        if null_condition is None and guidance_scale != 1.0:
            common["null_condition"] = torch.tensor([int(config.get("num_embeds_ada_norm", 1000))])
        return NetworkModel(_DiTEps(net), time_input="index", T=T, **common)
    return NetworkModel(_UNetEps(net), time_input="index", T=T, **common)


#: The name of the first version, which loaded UNets only; kept so that code using it runs.
load_diffusers_unet = load_diffusers


def tiny_unet2d(in_channels: int = 1, *, seed: int = 0, quiet_time: bool = False):
    """A random two-level diffusers ``UNet2DModel`` on 8x8 images (about 40k parameters): what
    the tests, ``scripts/measure_pipeline.py --tiny`` and examples load through
    :func:`load_diffusers` without downloading a model.

    ``quiet_time=True`` switches off its time embedding's two fastest sinusoids (1 and 0.1
    radian per DDPM index): a random network passes them straight into eps, whose ODE then
    oscillates with a period of about 6 indices, and an adaptive reference needs ten times
    the evaluations (3685 instead of 331 at tol 1e-6 from t = 1 to 0.1, measured). A trained
    network learns how much of them to use.
    """
    import diffusers

    torch.manual_seed(seed)
    unet = diffusers.UNet2DModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=in_channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    if quiet_time:
        weight = unet.time_embedding.linear_1.weight  # columns: cos then sin of each frequency
        half = weight.shape[1] // 2
        with torch.no_grad():
            weight[:, [0, 1, half, half + 1]] = 0.0
    return unet
