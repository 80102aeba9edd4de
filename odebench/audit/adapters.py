"""Drive a third-party scheduler exactly as a diffusers pipeline does, on odebench's problems.

A diffusers scheduler is driven by this loop (``StableDiffusionPipeline`` and friends)::

    sch = Cls.from_config(config); sch.set_timesteps(N)
    x = noise * sch.init_noise_sigma
    for t in sch.timesteps:
        out = net(sch.scale_model_input(x, t), t)
        x = sch.step(out, t, x).prev_sample

:func:`drive` runs that loop unchanged, with odebench's exact model output in place of the
UNet: what the scheduler expects on the path it is written for (:mod:`.interfaces`: eps, x0
or v on a VP table, the velocity under flow matching, EDM's preconditioned raw output). The
model is *instrumented*: every call records the timestep the scheduler passed, the odebench
time it means (VP: training index i sits at t = (i + 1) / T, odebench's discrete convention;
flow matching: t = timestep / T; EDM: t = exp(4 timestep) / sigma_max) and the input scaling
(model input = c * state). The network reads its input as c_in(t) times the interpolant's x
(c_in = 1 except EDM's 1 / sqrt(sigma^2 + sigma_data^2)). On a VP table schedulers in the VP
variable (DDIM, PNDM, DPM-Solver, UniPC, DEIS) have c = 1; the k-diffusion ports (Euler,
Heun, LMS, KDPM2) keep x / alpha and scale by c = 1 / sqrt(sigma^2 + 1). The loop starts
from odebench's sample x_T at the first evaluated time, mapped into the scheduler's state
by c_in / c; the final state is mapped back by the c of the final sigma (1 where the
scheduler's state is the interpolant's x). Flow-matching schedulers have no
``scale_model_input``: their pipelines pass the state as it is.

Nothing in the scheduler is changed: its own (float32) tables, its own rounding. An exception
inside ``from_config``, ``set_timesteps`` or ``step``, or a non-finite state, ends the run
with a status line instead of an exception.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import math
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from .._tensor import DTYPE
from .interfaces import Interface, decode, legacy

#: How odebench's discrete tables are written in a diffusers config.
DIFFUSERS_SCHEDULES: dict[str, dict[str, Any]] = {
    "ddpm-linear-1000": {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02},
    "scaled-linear-1000": {
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
    },
    "cosine-1000": {"beta_schedule": "squaredcos_cap_v2"},
}


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve(spec: str | type) -> type:
    """The scheduler class named by ``spec`` ("diffusers:DDIMScheduler", "DDIMScheduler") or
    ``spec`` itself when it is a class. Raises ValueError with one line when it cannot."""
    if isinstance(spec, type):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"expected a scheduler class or a name like diffusers:DDIMScheduler, got {spec!r}"
        )
    package, _, name = spec.strip().rpartition(":")
    package = package or "diffusers"
    if package != "diffusers":
        raise ValueError(f"unknown sampler package {package!r} (supported: diffusers)")
    try:
        module = importlib.import_module("diffusers")
    except ImportError:
        raise ValueError(
            "the audit of diffusers schedulers needs diffusers: pip install 'odebench[dev]' "
            "or pip install diffusers"
        ) from None
    try:
        cls = getattr(module, name, None)
        usable = hasattr(cls, "step") and hasattr(cls, "set_timesteps")
    except ImportError as exc:  # a class behind a missing optional backend (e.g. torchsde)
        raise ValueError(
            f"diffusers:{name} cannot be loaded: {' '.join(str(exc).split())}"
        ) from None
    if not isinstance(cls, type) or not usable:
        known = sorted(n for n in dir(module) if n.endswith("Scheduler"))
        raise ValueError(f"diffusers has no scheduler class {name!r} (e.g. {', '.join(known[:6])})")
    return cls


def parse_config(text: str | dict | None) -> dict[str, Any]:
    """A user config: a dict, or its JSON text. Raises ValueError with one line if bad."""
    if text is None or text == "":
        return {}
    if isinstance(text, dict):
        return dict(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"--config is not valid JSON ({exc.msg} at char {exc.pos}): {text!r}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"--config must be a JSON object, got {type(value).__name__}")
    return value


#: Keys of a user config that are set_timesteps arguments, not config entries.
SET_TIMESTEPS_KEYS = ("mu",)
#: Keys of a user config that are ``step()`` arguments (DDIM's eta), not config entries.
STEP_KEYS = ("eta",)


def step_parameters(cls: type) -> set[str]:
    """The names ``cls.step`` accepts (empty when it cannot be inspected)."""
    try:
        return set(inspect.signature(cls.step).parameters)
    except (TypeError, ValueError):
        return set()


def step_kwargs(cls: type, user: dict[str, Any]) -> dict[str, Any]:
    """The ``step()`` arguments a user config names (:data:`STEP_KEYS`), checked against the
    class's ``step`` signature. Raises ValueError with one line when bad."""
    out = {k: user[k] for k in STEP_KEYS if k in user}
    accepted = step_parameters(cls)
    for key, value in out.items():
        if key not in accepted:
            raise ValueError(f"{cls.__name__}.step() takes no {key!r} argument")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key} must be a number >= 0, got {value!r}")
    return {k: float(v) for k, v in out.items()}


def base_config(schedule: str, T: int = 1000) -> dict[str, Any]:
    """The config odebench gives every VP-table scheduler: the table of ``schedule``, eps
    prediction (flow-matching and EDM classes keep their own defaults)."""
    if schedule not in DIFFUSERS_SCHEDULES:
        raise ValueError(
            f"the audit runs on a discrete table diffusers also knows: "
            f"{', '.join(DIFFUSERS_SCHEDULES)} (got {schedule!r})"
        )
    return {"num_train_timesteps": T, **DIFFUSERS_SCHEDULES[schedule], "prediction_type": "epsilon"}


def make_factory(cls: type, config: dict[str, Any]) -> Callable[[], Any]:
    """A fresh scheduler per call: ``Cls.from_config(config)`` (or ``Cls(**config)``)."""

    def factory():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if hasattr(cls, "from_config"):
                return cls.from_config(dict(config))
            return cls(**config)

    return factory


@dataclass
class Call:
    """One model evaluation: the scheduler's timestep, odebench's t, the input scaling."""

    timestep: float
    t: float
    c_in: float


@dataclass
class Trace:
    """What one run of the pipeline loop did. ``inputs[k]`` is the k-th model input (a VP
    state); ``x_vp`` the final state mapped to VP, ``x_raw`` the final state as the pipeline
    returns it; ``status`` is "ok", "error: ..." or "nan at step k"."""

    steps: int
    status: str = "ok"
    calls: list[Call] = field(default_factory=list)
    inputs: list[torch.Tensor] = field(default_factory=list)
    x_start: torch.Tensor | None = None
    x_vp: torch.Tensor | None = None
    x_raw: torch.Tensor | None = None
    t_start: float = math.nan
    c_start: float = math.nan
    c_end: float = math.nan
    init_noise_sigma: float = math.nan
    state_kind: str = ""
    scheduler: Any = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def nfe(self) -> int:
        return len(self.calls)


def _scale(inp: torch.Tensor, x: torch.Tensor) -> float:
    """c with inp = c x (least squares), nan when inp is not a scalar multiple of x."""
    inp, x = inp.to(DTYPE), x.to(DTYPE)
    den = float((x * x).sum())
    if den == 0.0:
        return math.nan
    c = float((inp * x).sum()) / den
    off = float((inp - c * x).norm()) / max(float(inp.norm()), 1e-300)
    return c if off < 1e-5 else math.nan


def _prev_sample(out: Any) -> torch.Tensor:
    if hasattr(out, "prev_sample"):
        return out.prev_sample
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def scale_input(sch: Any, x: torch.Tensor, timestep: Any) -> torch.Tensor:
    """The network input: ``sch.scale_model_input(x, t)``, or x for the schedulers without one
    (the flow-matching classes: their pipelines pass the state as it is)."""
    scale = getattr(sch, "scale_model_input", None)
    return x if scale is None else scale(x, timestep)


def final_scale(sch: Any, state_kind: str, last_timestep: Any) -> float:
    """c_in of the final state: 1 when the state is the interpolant's x; 1 / sqrt(sigma_end^2
    + 1) for the k-diffusion ports' sigma-scaled VP states."""
    if state_kind != "sigma-scaled":
        return 1.0
    sigmas = getattr(sch, "sigmas", None)
    if sigmas is not None and len(sigmas):
        s = float(sigmas[-1])
        return 1.0 / math.sqrt(s * s + 1.0)
    probe = torch.ones(1, dtype=DTYPE)
    return _scale(sch.scale_model_input(probe, last_timestep), probe)


def state_kind(iface: Interface, c_start: float, t_start: float) -> str:
    """ "vp" (VP state), "sigma-scaled" (x / alpha), or the interpolant's name ("flow", "ve")
    when the scheduler's state is the interpolant's x; "unknown" otherwise."""
    native = abs(c_start / iface.c_in(t_start) - 1.0) < 1e-6
    if iface.interpolant == "vp":
        return "vp" if abs(c_start - 1.0) < 1e-12 else "sigma-scaled"
    return iface.interpolant if native else "unknown"


def drive(
    factory: Callable[[], Any],
    steps: int,
    start: Callable[[float], torch.Tensor],
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    T: int = 1000,
    *,
    keep_inputs: bool = True,
    interface: Interface | None = None,
    step_args: dict[str, Any] | None = None,
    seed: int | None = None,
    noise: Any = None,
) -> Trace:
    """Run the pipeline loop for ``steps`` inference steps; never raises for the scheduler.

    ``start(t)`` returns the start state (the interpolant's x) at odebench time t (the first
    evaluated time); ``model(x, t)`` is the network's output for state x at odebench time t
    (eps on the VP table by default; what ``interface`` expects otherwise). ``inputs`` keep the
    states the network reads (its input divided by the interface's c_in). ``step_args`` are
    passed to every ``step()`` (e.g. eta); ``seed`` gives ``step()`` a fresh
    ``torch.Generator`` seeded with it (where ``step`` takes ``generator=``); ``noise`` (a
    :class:`.stochastic.NoiseSource`) replaces the noise ``step()`` draws.
    """
    iface = interface if interface is not None else legacy(T)
    trace = Trace(steps=steps)
    stage = "from_config"
    try:
        sch = factory()
        trace.scheduler = sch
        stage = "set_timesteps"
        sch.set_timesteps(steps, **iface.set_kwargs)
        timesteps = list(sch.timesteps)
        if not timesteps:
            trace.status = "error: set_timesteps gave no timesteps"
            return trace
        t0 = timesteps[0]
        trace.t_start = iface.time(t0)
        if not 0.0 <= trace.t_start <= 1.0:
            trace.status = (
                f"error: first timestep {float(t0):g} is t={trace.t_start:g}, outside [0, 1]"
            )
            return trace
        x_T = start(trace.t_start)
        stage = "scale_model_input"
        trace.c_start = _scale(scale_input(copy.deepcopy(sch), x_T.clone(), t0), x_T)
        if not math.isfinite(trace.c_start) or trace.c_start <= 0:
            trace.status = "error: scale_model_input is not a positive scaling of the state"
            return trace
        kind = state_kind(iface, trace.c_start, trace.t_start)
        trace.state_kind = kind
        if kind == "unknown":
            trace.status = "error: scale_model_input is not the network's input scaling"
            return trace
        trace.init_noise_sigma = float(getattr(sch, "init_noise_sigma", 1.0))
        trace.x_start = x_T
        x = x_T / (trace.c_start / iface.c_in(trace.t_start))
        kwargs = dict(step_args or {})
        if seed is not None and "generator" in step_parameters(type(sch)):
            kwargs["generator"] = torch.Generator().manual_seed(int(seed))
        with noise.patch(sch) if noise is not None else nullcontext():
            for k, ts in enumerate(timesteps, start=1):
                stage = f"step {k}"
                inp = scale_input(sch, x, ts)
                t = iface.time(ts)
                trace.calls.append(Call(float(ts), t, _scale(inp, x)))
                state = decode(iface, inp, t)
                if keep_inputs:
                    trace.inputs.append(state.detach().clone())
                out = model(state, torch.tensor(t, dtype=DTYPE))
                if noise is not None:
                    noise.begin_step(k - 1)
                x = _prev_sample(sch.step(out, ts, x, **kwargs))
                if not isinstance(x, torch.Tensor) or not bool(torch.isfinite(x).all()):
                    trace.status = f"nan at step {k}"
                    return trace
        stage = "final scaling"
        trace.c_end = final_scale(sch, kind, timesteps[-1])
        trace.x_raw = x.detach().to(DTYPE)
        trace.x_vp = trace.x_raw * trace.c_end
    except Exception as exc:  # a third-party failure is a result, not a crash
        trace.status = f"error in {stage}: {_one_line(exc)}"
    return trace
