"""Any eps network as an odebench model: ``model(x, t) -> eps`` with a declared time input.

Solvers call a model with a batch x and a 0-d float64 time t in odebench's convention
(t in [0, 1], t = 0 data). A network was trained with its own time input; ``NetworkModel``
declares it and converts:

- ``time_input="t"``: the network takes t itself (continuous-time training), optionally
  scaled (``time_scale``, e.g. 999 for networks fed t * 999);
- ``time_input="index"``: the network takes the training index of a T-step table. odebench
  places index i at t = (i + 1) / T (see ``odebench.schedules.discrete``), so it is fed
  i = t T - 1, a real number between the knots;
- ``time_input="index-authors"``: the PNDM authors' code calls the network at index t while it
  reads abar at index t + 1 of the table, i.e. the network sees i = t T - 2 for the abar of
  t (a one-index shift, kept as a named variant so its effect can be measured).

With ``input_shape`` the states may be flat vectors (as analytic problems use) for a network
that takes images: they are reshaped on the way in and back on the way out. The wrapper
moves x to the network's device and dtype, evaluates in batches of at most
``batch_size`` under ``torch.inference_mode`` (unless told otherwise), returns eps in x's
dtype and device, and counts evaluations (``calls``: one per solver call; ``samples``: rows).
"""

from __future__ import annotations

import torch

TIME_INPUTS = ("t", "index", "index-authors")


class NetworkModel:
    """Wraps ``net(x, time) -> eps`` (time of shape (B,)) into the solver convention."""

    def __init__(
        self,
        net: torch.nn.Module,
        *,
        time_input: str = "t",
        T: int | None = None,
        time_scale: float = 1.0,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int | None = None,
        inference_mode: bool = True,
        name: str = "network",
        input_shape: tuple[int, ...] | None = None,
    ):
        if time_input not in TIME_INPUTS:
            raise ValueError(f"time_input must be one of {TIME_INPUTS}, got {time_input!r}")
        if time_input != "t" and (T is None or T < 1):
            raise ValueError(f"time_input {time_input!r} needs the number of training steps T")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        params = next(iter(net.parameters()), None)
        self.device = (
            torch.device(device)
            if device is not None
            else (params.device if params is not None else torch.device("cpu"))
        )
        self.dtype = (
            dtype if dtype is not None else (params.dtype if params is not None else torch.float32)
        )
        self.net = net.to(device=self.device, dtype=self.dtype).eval()
        self.time_input, self.T, self.time_scale = time_input, T, float(time_scale)
        self.batch_size, self.inference_mode, self.name = batch_size, inference_mode, name
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.calls = 0
        self.samples = 0

    def network_time(self, t: torch.Tensor) -> torch.Tensor:
        """The time input the network was trained with, for odebench time t."""
        if self.time_input == "t":
            return t * self.time_scale
        shift = 1.0 if self.time_input == "index" else 2.0
        return t * self.T - shift

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or ({x.shape[0]},), got {tuple(t.shape)}")
        self.calls += 1
        self.samples += x.shape[0]
        xin = x.to(device=self.device, dtype=self.dtype)
        if self.input_shape is not None:  # e.g. flat (B, 64) states for an 8x8 image network
            xin = xin.reshape(x.shape[0], *self.input_shape)
        tin = self.network_time(t).to(device=self.device, dtype=self.dtype)
        step = self.batch_size or x.shape[0]
        context = torch.inference_mode() if self.inference_mode else torch.enable_grad()
        with context:
            outs = [
                self.net(xin[i : i + step], tin[i : i + step]) for i in range(0, x.shape[0], step)
            ]
        eps = torch.cat(outs) if len(outs) > 1 else outs[0]
        if self.input_shape is not None and eps.shape == xin.shape:
            eps = eps.reshape(x.shape)
        if eps.shape != x.shape:
            raise ValueError(
                f"{self.name}: network returned shape {tuple(eps.shape)} for x "
                f"of shape {tuple(x.shape)}"
            )
        eps = eps.to(device=x.device, dtype=x.dtype)
        return eps.clone() if eps.is_inference() else eps  # usable outside inference mode

    def __repr__(self) -> str:
        return (
            f"<NetworkModel {self.name!r} time_input={self.time_input!r} "
            f"device={self.device} dtype={self.dtype}>"
        )
