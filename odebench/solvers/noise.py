"""Where a stochastic sampler's noise comes from: a seeded generator or one Brownian path.

A stochastic step from t to s draws one standard normal xi of x's shape. A noise source is
any callable ``noise(x, t, s) -> xi``:

- ``GaussianNoise(generator)``: independent draws from a ``torch.Generator``, so a run is
  reproducible (the same seed gives the same samples);
- ``BrownianNoise(path)``: xi = (W(s) - W(t)) / sqrt(t - s) along one Brownian path W in
  sampling time, sampled once on a fine grid. A coarse run and a fine reference on a
  refinement of its grid then see the same path, which is what a strong error needs
  (Kloeden & Platen 1992, Sec. 9.3).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._tensor import DTYPE

NoiseSource = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class GaussianNoise:
    """Independent standard normal draws from ``generator`` (torch's global one if None)."""

    def __init__(self, generator: torch.Generator | None = None):
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.generator = generator

    def __call__(self, x: torch.Tensor, t, s) -> torch.Tensor:
        g = self.generator
        if g is not None and g.device.type != x.device.type:
            raise ValueError(
                f"the generator is on {g.device}, the samples on {x.device}: "
                "create it with torch.Generator(device=x.device)"
            )
        return torch.randn(x.shape, generator=g, dtype=x.dtype, device=x.device)


class BrownianPath:
    """One Brownian path W of shape ``shape`` in sampling time, sampled on the decreasing grid
    ``times``: W at times[0] is 0 and each increment W(times[k+1]) - W(times[k]) is an
    independent N(0, (times[k] - times[k+1]) I). Every coarser grid whose times are among
    ``times`` sees increments that are sums of these."""

    def __init__(self, times, shape: tuple[int, ...], generator: torch.Generator | None = None):
        times = torch.as_tensor(times, dtype=DTYPE)
        if times.ndim != 1 or len(times) < 2 or not bool((times[1:] < times[:-1]).all()):
            raise ValueError("a Brownian path needs a strictly decreasing grid of times")
        self.times = times
        dt = (times[:-1] - times[1:]).reshape(-1, *([1] * len(shape)))
        steps = torch.randn((len(times) - 1, *shape), generator=generator, dtype=DTYPE)
        self.W = torch.cat(
            [torch.zeros((1, *shape), dtype=DTYPE), torch.cumsum(steps * dt.sqrt(), 0)]
        )

    def index(self, t: float) -> int:
        hits = torch.nonzero((self.times - float(t)).abs() <= 1e-13 * max(1.0, abs(float(t))))
        if len(hits) == 0:
            raise ValueError(
                f"time {float(t)!r} is not a node of the Brownian path's grid: a coarse grid "
                "must be a subset of the path's grid (nested grids)"
            )
        return int(hits[0])

    def increment(self, t: float, s: float) -> torch.Tensor:
        """W(s) - W(t) for path nodes t > s."""
        return self.W[self.index(s)] - self.W[self.index(t)]


class BrownianNoise:
    """xi = (W(s) - W(t)) / sqrt(t - s) from one ``BrownianPath``."""

    def __init__(self, path: BrownianPath):
        self.path = path

    def __call__(self, x: torch.Tensor, t, s) -> torch.Tensor:
        t, s = float(t), float(s)
        inc = self.path.increment(t, s)
        if inc.shape != x.shape:
            raise ValueError(f"the Brownian path has shape {tuple(inc.shape)}, x {tuple(x.shape)}")
        return (inc / math.sqrt(t - s)).to(dtype=x.dtype, device=x.device)
