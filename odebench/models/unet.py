"""``DigitsUNet``: a small eps-prediction UNet for 8x8 one-channel images (sklearn's digits).

The network odebench ships so that samplers can be measured on a real trained model, not only
on analytic eps: small enough to train in minutes on a CPU and to sample 1000 steps (64 images)
in about 20 s on one core, large enough to make recognisable digits.

Layout (two resolutions, as in Ho et al.'s DDPM UNet, scaled down):

    conv_in 1 -> C0 (8x8)
    8x8: ``blocks`` residual blocks C0              --- skip connections --+
    downsample (3x3 conv, stride 2) to 4x4                                  |
    4x4: ``blocks`` residual blocks C0 -> C1                                |
    middle (4x4): residual block, self-attention over the 16 positions,    |
                  residual block                                           |
    4x4: ``blocks`` + 1 residual blocks on [h, skip]   <-------------------+
    upsample (nearest, 3x3 conv) to 8x8
    8x8: ``blocks`` + 1 residual blocks on [h, skip]
    GroupNorm, SiLU, conv_out C0 -> 1 (zero-initialised: the untrained network predicts 0)

Every residual block is GroupNorm, SiLU, conv, + a projection of the time embedding, GroupNorm,
SiLU, conv, plus a (1x1 when the width changes) shortcut. The time input is the DDPM training
index (real-valued: odebench calls it between integers), embedded sinusoidally as in the
Transformer and DDPM, then by a two-layer MLP. Constructor arguments are plain ints and bools so
that a card can store them as JSON.

With ``num_classes`` = K > 0 the network is class-conditional: a learned embedding of the label
(K + 1 rows; label K is the "null" label of classifier-free guidance, Ho & Salimans 2022) is
added to the time embedding. ``forward(x, index, labels)``; without labels every sample gets the
null label, so the unconditional model is the same network.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def sinusoidal_embedding(
    index: torch.Tensor, dim: int, max_period: float = 10000.0
) -> torch.Tensor:
    """(B,) real-valued times -> (B, dim) [cos(index w_k), sin(index w_k)], w_k geometric.

    Frequencies run from 1 down to 1 / max_period, so neighbouring training indices (and the
    real values between them) get distinct but smoothly varying embeddings.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=index.device) / half
    ).to(index.dtype)
    args = index[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, add the time embedding, GroupNorm-SiLU-conv, residual shortcut."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (stable start)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the spatial positions (16 at 4x4), residual."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, hgt * wid).unbind(1)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        )  # (b, hw, c)
        return x + self.proj(out.transpose(1, 2).reshape(b, c, hgt, wid))


class DigitsUNet(nn.Module):
    """eps network for (B, 1, 8, 8) images: ``forward(x, index) -> eps`` of x's shape.

    ``index`` (shape (B,)) is the DDPM training index, real-valued (the card declares
    ``"time_input": "index"``, so ``NetworkModel`` feeds i = t T - 1).
    """

    def __init__(
        self,
        channels: int = 32,
        channels_low: int = 64,
        blocks: int = 1,
        emb_dim: int = 128,
        groups: int = 8,
        attention: bool = True,
        in_channels: int = 1,
        num_classes: int = 0,
    ):
        super().__init__()
        c0, c1 = channels, channels_low
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.num_classes = num_classes
        if num_classes > 0:  # label num_classes is the null label (classifier-free guidance)
            self.class_emb = nn.Embedding(num_classes + 1, emb_dim)
        self.conv_in = nn.Conv2d(in_channels, c0, 3, padding=1)
        skip_channels = [c0]
        self.down_high = nn.ModuleList()
        for _ in range(blocks):
            self.down_high.append(ResBlock(c0, c0, emb_dim, groups))
            skip_channels.append(c0)
        self.downsample = nn.Conv2d(c0, c0, 3, stride=2, padding=1)
        skip_channels.append(c0)
        self.down_low = nn.ModuleList()
        c = c0
        for _ in range(blocks):
            self.down_low.append(ResBlock(c, c1, emb_dim, groups))
            c = c1
            skip_channels.append(c1)
        self.mid1 = ResBlock(c, c1, emb_dim, groups)
        self.mid_attn = SelfAttention(c1, groups) if attention else nn.Identity()
        self.mid2 = ResBlock(c1, c1, emb_dim, groups)
        c = c1
        self.up_low = nn.ModuleList()
        for _ in range(blocks + 1):
            self.up_low.append(ResBlock(c + skip_channels.pop(), c1, emb_dim, groups))
            c = c1
        self.upsample = nn.Conv2d(c1, c1, 3, padding=1)
        self.up_high = nn.ModuleList()
        for _ in range(blocks + 1):
            self.up_high.append(ResBlock(c + skip_channels.pop(), c0, emb_dim, groups))
            c = c0
        self.norm_out = nn.GroupNorm(groups, c0)
        self.conv_out = nn.Conv2d(c0, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(
        self, x: torch.Tensor, index: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict the noise in x at (real-valued) training index ``index``; a class-conditional
        network takes integer ``labels`` (shape (B,); num_classes or None: unconditional)."""
        index = torch.as_tensor(index, dtype=x.dtype, device=x.device)
        if index.ndim == 0:
            index = index.expand(x.shape[0])
        emb = self.time_mlp(sinusoidal_embedding(index, self.emb_dim))
        if self.num_classes > 0:
            if labels is None:
                labels = torch.full((x.shape[0],), self.num_classes, device=x.device)
            labels = torch.as_tensor(labels, device=x.device).long().reshape(-1)
            if labels.shape != (x.shape[0],) or bool(
                ((labels < 0) | (labels > self.num_classes)).any()
            ):
                raise ValueError(
                    f"labels must be {x.shape[0]} integers in 0..{self.num_classes} "
                    f"({self.num_classes} = unconditional)"
                )
            emb = emb + self.class_emb(labels)
        elif labels is not None:
            raise ValueError("this DigitsUNet is unconditional (num_classes = 0): no labels")
        h = self.conv_in(x)
        skips = [h]
        for block in self.down_high:
            h = block(h, emb)
            skips.append(h)
        h = self.downsample(h)
        skips.append(h)
        for block in self.down_low:
            h = block(h, emb)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for block in self.up_low:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        h = self.upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        for block in self.up_high:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))
