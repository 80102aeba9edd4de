"""Any network as an odebench eps model: ``model(x, t) -> eps``, with a declared time input
and prediction.

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
  t (a one-index shift, kept as a named variant so its effect can be measured);
- ``time_input="sigma"``: the network takes the noise level sigma(t) of its schedule
  (times ``time_scale``). Under flow matching sigma = t, so this is flow time; SD3 and
  diffusers' FlowMatch* schedulers feed 1000 t (``time_input="t"``, ``time_scale=1000``);
- ``time_input="sigma-tilde"``: the network takes sigma(t) / alpha(t) = exp(-lambda), the
  noise level of the variance-exploding variable x / alpha: EDM's sigma (Karras et al. 2022;
  the time k-diffusion denoisers are called with).

A network may predict something else than eps (``prediction=``: "x0", "v", "velocity",
"denoiser", see :mod:`odebench.schedules.prediction`); it then needs the ``schedule=`` it was
trained with, and its output is converted to eps exactly by ``to_eps`` (in x's dtype, after the
network's output is cast back). A "denoiser" is fed x / alpha (EDM's y). ``.native(x, t)`` is
the network's own output, ``.x0(x, t)`` the data prediction straight from it (exact where
alpha = 0, as ``PredictionModel.x0``). An eps network (the default) is called as before,
with no conversion at all.

A conditioned network takes ``condition=`` (class labels or embeddings, one shared row or one
per sample), passed as the third argument or as ``condition_keyword=`` (e.g.
``"encoder_hidden_states"`` or ``"class_labels"`` for diffusers models, whose ``.sample`` is
read off their output); a dict of tensors passes each as its keyword (SD3 takes
``encoder_hidden_states`` and ``pooled_projections``). With ``guidance_scale`` w != 1 and a
``null_condition`` (the unconditional label or embedding) the model is classifier-free
guided (Ho & Salimans 2022): both are evaluated in one batch and the solver sees
out_null + w (out_cond - out_null), in the network's own prediction, before the conversion
to eps.

With ``input_shape`` the states may be flat vectors (as analytic problems use) for a network
that takes images: they are reshaped on the way in and back on the way out. The wrapper
moves x to the network's device and dtype, evaluates in batches of at most
``batch_size`` under ``torch.inference_mode`` (unless told otherwise), returns eps in x's
dtype and device, and counts evaluations (``calls``: one per solver call; ``samples``: rows).
"""

from __future__ import annotations

import torch

from .._tensor import per_sample
from ..schedules import Schedule
from ..schedules import get as get_schedule
from ..schedules.prediction import check_kind, to_eps, to_x0

TIME_INPUTS = ("t", "index", "index-authors", "sigma", "sigma-tilde")


class NetworkModel:
    """Wraps ``net(x, time)`` (time of shape (B,)) predicting ``prediction`` into the solver
    convention ``model(x, t) -> eps``."""

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
        prediction: str = "eps",
        schedule: Schedule | str | None = None,
        condition: torch.Tensor | dict[str, torch.Tensor] | None = None,
        null_condition: torch.Tensor | dict[str, torch.Tensor] | None = None,
        guidance_scale: float = 1.0,
        condition_keyword: str | None = None,
    ):
        if time_input not in TIME_INPUTS:
            raise ValueError(
                f"time_input must be one of {', '.join(TIME_INPUTS)}, got {time_input!r}"
            )
        if time_input.startswith("index") and (T is None or T < 1):
            raise ValueError(f"time_input {time_input!r} needs the number of training steps T")
        self.prediction = check_kind(prediction)
        if schedule is None and (prediction != "eps" or time_input.startswith("sigma")):
            why = (
                f"prediction {prediction!r}"
                if prediction != "eps"
                else f"time_input {time_input!r}"
            )
            raise ValueError(f"{why} needs schedule= (the schedule the network was trained on)")
        self.schedule = get_schedule(schedule) if schedule is not None else None
        self._set_conditioning(condition, null_condition, guidance_scale, condition_keyword)
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
        if self.time_input == "sigma":
            return self.schedule.sigma(t) * self.time_scale
        if self.time_input == "sigma-tilde":
            return self.schedule.sigma_tilde(t) * self.time_scale
        shift = 1.0 if self.time_input == "index" else 2.0
        return t * self.T - shift

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        """eps at (x, t): the network's output, converted by ``to_eps`` unless it is eps."""
        out, t = self._evaluate(x, t)
        return (
            out if self.prediction == "eps" else to_eps(self.prediction, out, x, t, self.schedule)
        )

    def native(self, x: torch.Tensor, t) -> torch.Tensor:
        """The network's own output (its prediction kind) at (x, t), in x's dtype."""
        return self._evaluate(x, t)[0]

    def x0(self, x: torch.Tensor, t) -> torch.Tensor:
        """The data prediction E[x0 | x_t = x] from the network's output (needs the schedule)."""
        if self.schedule is None:
            raise ValueError(f"{self.name}: x0 needs the network's schedule= (none was given)")
        out, t = self._evaluate(x, t)
        return to_x0(self.prediction, out, x, t, self.schedule)

    def _evaluate(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(the network's output in x's dtype and device, t as a float64 batch of times)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or ({x.shape[0]},), got {tuple(t.shape)}")
        self.calls += 1
        self.samples += x.shape[0]
        if self.prediction == "denoiser":  # EDM's D(x / alpha; sigma / alpha)
            alpha = self.schedule.alpha(t).to(device=x.device, dtype=x.dtype)
            xin = (x / per_sample(alpha, x)).to(device=self.device, dtype=self.dtype)
        else:
            xin = x.to(device=self.device, dtype=self.dtype)
        if self.input_shape is not None:  # e.g. flat (B, 64) states for an 8x8 image network
            xin = xin.reshape(x.shape[0], *self.input_shape)
        tin = self.network_time(t).to(device=self.device, dtype=self.dtype)
        step = self.batch_size or x.shape[0]
        context = torch.inference_mode() if self.inference_mode else torch.enable_grad()
        with context:
            if self.condition is None:
                outs = [
                    self.net(xin[i : i + step], tin[i : i + step])
                    for i in range(0, x.shape[0], step)
                ]
            else:
                outs = [
                    self._conditioned(xin[i : i + step], tin[i : i + step], i)
                    for i in range(0, x.shape[0], step)
                ]
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        if self.input_shape is not None and out.shape == xin.shape:
            out = out.reshape(x.shape)
        if out.shape != x.shape:
            raise ValueError(
                f"{self.name}: network returned shape {tuple(out.shape)} for x "
                f"of shape {tuple(x.shape)}"
            )
        if not out.is_floating_point():
            raise ValueError(
                f"{self.name}: network returned dtype {out.dtype}; a floating-point dtype is "
                "required"
            )
        out = out.to(device=x.device, dtype=x.dtype)
        return (out.clone() if out.is_inference() else out), t  # usable outside inference mode

    # -- conditioning and classifier-free guidance ------------------------------------------
    def _set_conditioning(self, condition, null_condition, scale, keyword) -> None:
        for name, c in (("condition", condition), ("null_condition", null_condition)):
            if isinstance(c, dict):  # several inputs, passed as keywords (e.g. SD3's two)
                if not c or not all(
                    isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in c.items()
                ):
                    raise ValueError(f"{name} as a dict maps keyword names to tensors")
            elif c is not None and not isinstance(c, torch.Tensor):
                raise ValueError(f"{name} must be a tensor (labels or embeddings), got {c!r}")
        if null_condition is not None and isinstance(condition, dict) != isinstance(
            null_condition, dict
        ):
            raise ValueError("condition and null_condition must both be tensors or both dicts")
        if isinstance(condition, dict) and keyword is not None:
            raise ValueError("a dict condition names its own keywords: no condition_keyword")
        if (
            isinstance(condition, dict)
            and isinstance(null_condition, dict)
            and (set(condition) != set(null_condition))
        ):
            raise ValueError("condition and null_condition must have the same keywords")
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale >= 0:
            raise ValueError(f"guidance_scale must be a number >= 0, got {scale!r}")
        if scale != 1.0 and (condition is None or null_condition is None):
            raise ValueError("guidance_scale != 1 needs a condition and a null_condition")
        if null_condition is not None and condition is None:
            raise ValueError("null_condition needs a condition")
        self.condition, self.null_condition = condition, null_condition
        self.guidance_scale, self.condition_keyword = float(scale), keyword

    def _rows(self, c, start: int, n: int):
        """Rows start..start+n of a condition: one shared (leading size 1) or one per sample
        (of each tensor of a dict condition)."""
        if isinstance(c, dict):
            return {k: self._rows(v, start, n) for k, v in c.items()}
        c = c.to(device=self.device)
        if c.is_floating_point():
            c = c.to(dtype=self.dtype)
        if c.shape[0] == 1:
            return c.expand(n, *c.shape[1:])
        if c.shape[0] < start + n:
            raise ValueError(
                f"{self.name}: a condition has {c.shape[0]} rows; give 1 (shared) or one per sample"
            )
        return c[start : start + n]

    def _call(self, x, t, c):
        if isinstance(c, dict):
            out = self.net(x, t, **c)
        elif self.condition_keyword:
            out = self.net(x, t, **{self.condition_keyword: c})
        else:
            out = self.net(x, t, c)
        return out if isinstance(out, torch.Tensor) else out.sample  # diffusers' output objects

    def _conditioned(self, x, t, start: int) -> torch.Tensor:
        """The network's output with the condition; with guidance w != 1 the classifier-free
        combination out_null + w (out_cond - out_null) (Ho & Salimans 2022) of one batch."""
        n = x.shape[0]
        cond = self._rows(self.condition, start, n)
        if self.guidance_scale == 1.0:
            return self._call(x, t, cond)
        null = self._rows(self.null_condition, start, n)
        both = self._call(torch.cat([x, x]), torch.cat([t, t]), _stack(cond, null))
        self.samples += n
        out_c, out_u = both[:n], both[n:]
        return out_u + self.guidance_scale * (out_c - out_u)

    def __repr__(self) -> str:
        predicts = "" if self.prediction == "eps" else f" prediction={self.prediction!r}"
        return (
            f"<NetworkModel {self.name!r}{predicts} time_input={self.time_input!r} "
            f"device={self.device} dtype={self.dtype}>"
        )


def _stack(cond, null):
    """The conditional rows, then the null rows (tensors, or dicts of tensors key by key)."""
    if isinstance(cond, dict):
        return {k: torch.cat([cond[k], null[k]]) for k in cond}
    return torch.cat([cond, null])
