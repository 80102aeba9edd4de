"""What a scheduler expects from its model: the interpolant, the time input, the output.

A diffusers scheduler is written for one kind of network. :func:`choose` reads the class and
its effective config and returns the :class:`Interface` the audit feeds it through:

- **VP tables** (DDIM, PNDM, DPM-Solver, UniPC, DEIS, Euler, Heun, LMS, KDPM2): x = alpha x0 +
  sigma z on the discrete table the config names, training index i at t = (i + 1) / T; the
  model output is the exact prediction of the config's ``prediction_type``: "epsilon" (eps),
  "sample" (x0), "v_prediction" (v = alpha eps - sigma x0, Salimans & Ho 2022).
- **Flow matching** (the FlowMatch* classes, and any class with ``use_flow_sigmas``):
  x = (1 - sigma) x0 + sigma z with diffusers' sigma = odebench's flow time t and timestep =
  sigma * num_train_timesteps; the model output is the velocity z - x0 (Lipman et al. 2023;
  Esser et al. 2024). ``use_dynamic_shifting`` needs ``mu`` in set_timesteps: the audit passes
  the config's "mu" if given, else Flux's at 1024x1024 (4096 tokens, ``grids.flux_shift``).
- **EDM** (EDMEuler, EDMDPMSolverMultistep): x = x0 + sigma z, odebench's "ve" schedule with
  the config's sigma_max (t = sigma / sigma_max). The network is preconditioned as in Karras
  et al. 2022, Table 1: its input is c_in x with c_in = 1 / sqrt(sigma^2 + sigma_data^2), its
  time input c_noise = log(sigma) / 4, and the scheduler builds the denoiser
  D = c_skip x + c_out F from the raw output F (c_skip = sigma_data^2 / (sigma^2 +
  sigma_data^2), c_out = +-sigma sigma_data / sqrt(sigma^2 + sigma_data^2), minus for
  "v_prediction"). The audit feeds the F that makes D the exact x0.

Every interface decodes the model input as a network would: odebench state = input / c_in(t)
at the time t its timestep names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import schedules
from .._tensor import DTYPE, as_time, per_sample
from ..grids import flux_shift
from ..schedules import Schedule

#: diffusers' prediction_type -> odebench's prediction kind, for VP-table schedulers.
VP_KINDS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
EDM_TYPES = ("epsilon", "v_prediction")
#: Classes whose network convention no interface here describes.
UNMAPPED = {
    "CosineDPMSolverMultistepScheduler": "Stable Audio's preconditioning (c_noise = "
    "atan(sigma) / (pi / 2), sigma_data = 1)",
}
#: Flux at 1024 x 1024: 64 x 64 latent patches of 2 x 2 (diffusers' FluxPipeline).
FLUX_TOKENS = 4096

KIND_TEXT = {
    "eps": "eps (the noise)",
    "x0": "x0 (the data)",
    "v": "v = alpha eps - sigma x0",
    "velocity": "velocity dx/dsigma (z - x0)",
    "edm": "raw EDM network F, with c_skip x + c_out F = x0",
}


@dataclass
class Interface:
    """How the audit talks to one scheduler (see the module docstring)."""

    interpolant: str  # "vp", "flow" or "ve"
    schedule: Schedule  # odebench's schedule of that interpolant
    prediction_type: str  # the scheduler's name for what it expects
    kind: str  # what odebench feeds: "eps", "x0", "v", "velocity" or "edm"
    T: int = 1000  # num_train_timesteps (the unit of time gaps)
    discrete: bool = True  # VP table: call times are knots (i + 1) / T
    sigma_data: float = 0.5  # EDM only
    reverse: bool = False  # invert_sigmas (Mochi): the scheduler's sigma is 1 - t
    set_kwargs: dict[str, Any] = field(default_factory=dict)  # extra set_timesteps arguments
    notes: list[str] = field(default_factory=list)

    def time(self, timestep: Any) -> float:
        """odebench time of a scheduler timestep (what the network is told)."""
        ts = float(timestep)
        if self.interpolant == "vp":
            return (ts + 1.0) / self.T
        if self.interpolant == "flow":
            t = 1.0 - ts / self.T if self.reverse else ts / self.T
        else:
            t = math.exp(4.0 * ts) / self.schedule.sigma_max
        # float32 timesteps round sigma_max (or sigma = 1) up by a few ulps
        return min(t, 1.0) if t < 1.0 + 1e-5 else t

    @property
    def t_of_sigma(self) -> Callable[[float], float] | None:
        """odebench time of the scheduler's own sigma where it is not a VE noise level."""
        if self.interpolant != "flow":
            return None
        return (lambda s: 1.0 - s) if self.reverse else (lambda s: s)

    def c_in(self, t: float) -> float:
        """Network input = c_in * odebench state (1 except EDM's preconditioning)."""
        if self.kind != "edm":
            return 1.0
        sigma = self.schedule.sigma_max * t
        return 1.0 / math.sqrt(sigma * sigma + self.sigma_data**2)

    def network(self, problem) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The exact model output fn(x, t) this scheduler expects, x the odebench state."""
        if self.kind != "edm":
            fn = problem.prediction(self.kind)
            if not self.reverse:
                return fn
            return lambda x, t: -fn(x, t)  # dx/d(1 - t) = -(z - x0)
        x0_fn, sd, sign = problem.prediction("x0"), self.sigma_data, self.sign

        def raw(x: torch.Tensor, t) -> torch.Tensor:
            t = as_time(t, like=x)
            s = per_sample(self.schedule.sigma(t).to(x.dtype), x)
            c_skip = sd * sd / (s * s + sd * sd)
            c_out = sign * s * sd / torch.sqrt(s * s + sd * sd)
            return (x0_fn(x, t) - c_skip * x) / c_out

        return raw

    @property
    def sign(self) -> float:
        return -1.0 if self.prediction_type == "v_prediction" else 1.0

    def describe(self) -> tuple[str, str]:
        """(interpolant, model output) as the card writes them."""
        if self.interpolant == "vp":
            path = f"VP table {self.schedule.name}: x = alpha x0 + sigma z"
        elif self.interpolant == "flow" and self.reverse:
            path = (
                f"flow matching, inverted sigmas: x = sigma x0 + (1 - sigma) z, t = 1 - sigma = "
                f"1 - timestep / {self.T}"
            )
        elif self.interpolant == "flow":
            path = f"flow matching: x = (1 - sigma) x0 + sigma z, t = sigma = timestep / {self.T}"
        else:
            path = (
                f"VE / EDM: x = x0 + sigma z, t = sigma / {self.schedule.sigma_max:g}, "
                f"c_in = 1/sqrt(sigma^2 + {self.sigma_data:g}^2), c_noise = log(sigma)/4"
            )
        source = (
            "FlowMatch* steps take it"
            if self.prediction_type == "velocity"
            else f"prediction_type {self.prediction_type}"
        )
        out = f"{KIND_TEXT[self.kind]} ({source})"
        return path + ("; " + "; ".join(self.notes) if self.notes else ""), out


def family(cls: type, user: dict[str, Any]) -> str:
    """The interpolant a class is written for, from its name and the user's config."""
    name = cls.__name__
    if name.startswith("FlowMatch") or user.get("use_flow_sigmas"):
        return "flow"
    if name.startswith("EDM"):
        return "ve"
    return "vp"


def choose(cls: type, config: dict[str, Any], table: str) -> Interface:
    """The interface of ``cls`` with its effective ``config`` (``table``: the VP table).
    Raises ValueError with one line for a prediction_type the audit cannot feed."""
    name = cls.__name__
    if name in UNMAPPED:
        raise ValueError(f"{name}: {UNMAPPED[name]}; the audit does not map it yet")
    kind = family(cls, config)
    T = int(config.get("num_train_timesteps", 1000) or 1000)
    pt = str(config.get("prediction_type", "epsilon" if kind != "flow" else "flow_prediction"))
    if kind == "flow":
        if not name.startswith("FlowMatch") and pt != "flow_prediction":
            pt_kind = VP_KINDS.get(pt)
            if pt_kind is None:
                raise _unsupported(name, pt, [*VP_KINDS, "flow_prediction"])
        else:
            pt, pt_kind = ("velocity" if name.startswith("FlowMatch") else pt), "velocity"
        iface = Interface("flow", schedules.get("flow"), pt, pt_kind, T, discrete=False)
        iface.reverse = bool(config.get("invert_sigmas", False))
        if config.get("use_dynamic_shifting"):
            mu = config.get("mu")
            if mu is None:
                mu = math.log(flux_shift(FLUX_TOKENS))
                iface.notes.append(f"mu = {mu:.4g} (Flux, {FLUX_TOKENS} tokens)")
            else:
                iface.notes.append(f"mu = {float(mu):.4g}")
            iface.set_kwargs["mu"] = float(mu)
        return iface
    if kind == "ve":
        if pt not in EDM_TYPES:
            raise _unsupported(name, pt, EDM_TYPES)
        sched = schedules.get("ve", sigma_max=float(config.get("sigma_max", 80.0)))
        return Interface(
            "ve", sched, pt, "edm", discrete=False, sigma_data=float(config["sigma_data"])
        )
    if pt == "flow_prediction":
        raise ValueError(
            f"{name}: prediction_type 'flow_prediction' needs use_flow_sigmas=true (a velocity "
            "model on the flow-matching path); on a VP table the audit feeds " + ", ".join(VP_KINDS)
        )
    if pt not in VP_KINDS:
        raise _unsupported(name, pt, [*VP_KINDS, "flow_prediction (with use_flow_sigmas)"])
    return Interface("vp", schedules.get(table), pt, VP_KINDS[pt], T)


def _unsupported(name: str, pt: str, supported) -> ValueError:
    return ValueError(
        f"{name}: the audit cannot feed prediction_type {pt!r} (supported here: "
        f"{', '.join(supported)})"
    )


def legacy(T: int = 1000) -> Interface:
    """The interface of the original audit: eps on the ddpm-linear-1000 table."""
    return Interface("vp", schedules.get("ddpm-linear-1000"), "epsilon", "eps", T)


def decode(iface: Interface, inp: torch.Tensor, t: float) -> torch.Tensor:
    """The odebench state a network reads from its input at time t."""
    c = iface.c_in(t)
    return inp.to(DTYPE) if c == 1.0 else inp.to(DTYPE) / c


__all__ = ["Interface", "choose", "decode", "family", "legacy"]
