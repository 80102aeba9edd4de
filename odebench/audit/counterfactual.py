"""Counterfactual probes: the same scheduler with exactly one suspected cause removed.

A finding of the audit (an error floor, an order below the nominal one) is a question until
something names its cause. Each :class:`Probe` here removes one cause from outside the
scheduler: it subclasses the scheduler's class at run time (the installed package is never
edited) and returns a scheduler that differs only in that cause, or None where the cause
cannot be present in that class. :mod:`.causes` reruns the audit's ladder with each probe
and says which one made a finding go away.

- ``float64-tables``: the tables (alphas_cumprod, sigmas, lambdas; torch or numpy) built in
  float64. The class is constructed and ``set_timesteps`` runs under a *float64 view* of its
  modules: the names ``torch.float32`` / ``np.float32`` (and the 16-bit ones) in the modules
  that define the class and its bases mean float64 for the duration of the call.
- ``float64-state``: ``step()`` runs under the same view, so ``sample.to(torch.float32)``
  keeps the float64 state (the tables stay as built).
- ``exact-call-times``: the model is evaluated at the time its input state is at (the time
  the Dirac probe of :mod:`.probes` reads off the state), not at the timestep passed.
- ``next-grid-time``: each step but the last targets the next timestep of the grid instead
  of the class's previous-timestep rule (``previous_timestep()``, or DDIM's
  ``t - T // N``: its config is seen with ``num_train_timesteps = gap * N``).
- ``no-clipping``: ``clip_sample`` / ``thresholding`` switched off (they change x0, so the
  scheduler solves another equation than the ODE).
- ``solver-order-final``: ``lower_order_final`` / ``euler_at_final`` switched off.
- ``exact-warm-up``: the first ``order - 1`` steps (where a multistep method runs at lower
  order) replaced by the exact flow; the scheduler still records its model outputs.
- ``exact-quadrature``: LMS's coefficients (``get_lms_coefficient``, scipy.integrate.quad
  with epsrel 1e-4 on a float32 integrand in diffusers) integrated exactly in float64 (the
  Lagrange basis polynomial's antiderivative).
- ``exact-final-step``: the last step replaced by the exact flow from the state entering it
  to the end time the audit measured (a k-diffusion port, whose state sits at its own sigma:
  from that sigma's time to its last sigma's; a flow-matching or EDM class: from its sigma's
  time, sigma or sigma / sigma_max, to its last sigma's; a two-stage class such as Heun: only
  where the last call starts a step, ``state_in_first_order``, as its final Euler step to
  sigma = 0 does, or, for a class without that attribute (PNDM), where the last call is at
  another timestep than the one before); ``exact-last-steps``: every step from a state at
  t <= 0.1 (where the audit reads the interior order), so the run's error is the error at
  t = 0.1 carried exactly to the end. A singlestep solver's states inside a group of
  sub-steps (``order_list`` above 1) are intermediates of lower order, not its solution: the
  exact steps start at a group's first sub-step.
- ``taylor-3m``: DPM-Solver(++) 3M's third-order term counted twice (see :func:`_taylor_3m`).

Probes that need the problem (the exact flow, the measured end times, the state's times)
read them from a :class:`Context`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._tensor import DTYPE
from .probes import _float32_names, times_of_sigma_tilde

_LOW_TORCH = ("float32", "float", "float16", "half", "bfloat16")
_LOW_NUMPY = ("float32", "single", "float16", "half")


class _Float64Names:
    """A module seen with its low-precision float dtype names meaning float64."""

    def __init__(self, module: Any, names: tuple[str, ...], wide: Any):
        self._module, self._names, self._wide = module, names, wide

    def __getattr__(self, name: str) -> Any:
        return self._wide if name in self._names else getattr(self._module, name)


@contextmanager
def float64_view(cls: type) -> Iterator[None]:
    """Within the block, the modules defining ``cls`` and its bases see ``torch.float32``,
    ``np.float32`` (and the 16-bit names) as float64: tables built, and states converted, in
    those modules stay float64. The modules' globals are restored on exit."""
    views = {
        id(torch): _Float64Names(torch, _LOW_TORCH, torch.float64),
        id(np): _Float64Names(np, _LOW_NUMPY, np.float64),
    }
    patched: list[tuple[dict[str, Any], str, Any]] = []
    modules = {k.__module__ for k in cls.__mro__} - {"builtins", __name__}
    try:
        for name in modules:
            module = sys.modules.get(name)
            if module is None:
                continue
            space = vars(module)
            for key, value in list(space.items()):
                if id(value) in views and (value is torch or value is np):
                    patched.append((space, key, value))
                    space[key] = views[id(value)]
        yield
    finally:
        for space, key, value in reversed(patched):
            space[key] = value


def _viewed(method: Callable) -> Callable:
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with float64_view(type(self)):
            return method(self, *args, **kwargs)

    return run


@dataclass
class Context:
    """What probes that touch the ODE need: the audit's setup (problem, path, exact flow),
    the nominal order, the state variable ("vp" or "sigma-scaled"), the end time the audit
    measured at each N, and (for ``exact-call-times``) each call's state time per N."""

    setup: Any
    nominal: float | None = None
    state_kind: str = "vp"
    ends: dict[int, float] = field(default_factory=dict)
    gaps: bool = False
    multistage: bool = False
    set_kwargs: dict[str, Any] = field(default_factory=dict)
    flow: Callable | None = None  # the exact flow of the problem the current run is on

    def exact_flow(self, x: torch.Tensor, s: float, t: float) -> torch.Tensor:
        """The exact flow of the current run's problem (the audit's problem by default)."""
        flow = self.flow if self.flow is not None else self.setup.flow
        return flow(x, s, t)

    @property
    def exact(self) -> bool:
        """Whether the exact flow is known and the state is a VP one (x or x / alpha)."""
        return bool(getattr(self.setup, "exact", False)) and self.state_kind in (
            "vp",
            "sigma-scaled",
            "flow",
            "ve",
        )

    def c(self, t: float) -> float:
        """VP state = c(t) * scheduler state (alpha(t) for the x / alpha of k-diffusion)."""
        if self.state_kind != "sigma-scaled":
            return 1.0
        return float(self.setup.sched.alpha(torch.tensor(t, dtype=DTYPE)))


@dataclass(frozen=True)
class Probe:
    """One counterfactual: ``name``, what it changes (``change``, used as "with ..."), the
    cause it removes (``cause``, one line), and ``make(scheduler, context)``: a modified
    scheduler, or None when the cause cannot be present in that class. ``retime`` marks the
    probe that changes the model's call times, ``uses_flow`` those that step by the exact
    flow of the run's problem (both handled by :mod:`.causes`)."""

    name: str
    change: str
    cause: str
    make: Callable[[Any, Context | None], Any]
    retime: bool = False
    uses_flow: bool = False

    def apply(self, scheduler: Any, context: Context | None = None) -> Any:
        """The scheduler with this cause removed (None: it does not apply)."""
        return self.make(scheduler, context)


def _signed(base: type, methods: dict[str, Any]) -> dict[str, Any]:
    """``methods``, each override (one not made by ``functools.wraps``, whose signature is
    already its base's) declaring the signature of the method of ``base`` it overrides. The
    pipeline loop passes ``generator=`` only to a ``step()`` whose signature names it; an
    override taking ``*args, **kwargs`` lost the seeded noise, and a stochastic card's facts
    then drew from torch's global generator and moved with what the process had run."""
    out = dict(methods)
    for name, method in out.items():
        own = getattr(base, name, None)
        if callable(method) and callable(own) and not hasattr(method, "__wrapped__"):
            # a builtin without a signature keeps the override's own
            with contextlib.suppress(TypeError, ValueError):
                method.__signature__ = inspect.signature(own)
    return out


def subclass(sch: Any, tag: str, methods: dict[str, Any]) -> Any:
    """``sch`` re-typed as a run-time subclass of its class overriding ``methods``."""
    base = type(sch)
    sch.__class__ = type(f"{base.__name__}+{tag}", (base,), _signed(base, methods))
    return sch


def rebuild(sch: Any, config: dict[str, Any], tag: str, methods: dict[str, Any], view=False):
    """A fresh instance of a run-time subclass of ``sch``'s class built from ``config``."""
    base = type(sch)
    cls = type(f"{base.__name__}+{tag}", (base,), _signed(base, methods))
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    view = view or getattr(cls, "_cf_float64", False)  # a float64-tables class stays one
    with float64_view(cls) if view else _nothing():
        return cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _config(sch: Any) -> dict[str, Any]:
    return dict(getattr(sch, "config", {}) or {})


def _low_precision(sch: Any, context: Context | None) -> bool:
    if _float32_names(sch):
        return True
    trial = copy.deepcopy(sch)
    try:
        trial.set_timesteps(10, **(context.set_kwargs if context else {}))
    except Exception:
        return False
    return bool(_float32_names(trial))


# --- the probes ---------------------------------------------------------------------------


def _float64_tables(sch, context):
    if not _low_precision(sch, context):
        return None
    return rebuild(
        sch,
        _config(sch),
        "float64-tables",
        {"set_timesteps": _viewed(type(sch).set_timesteps), "_cf_float64": True},
        view=True,
    )


def _float64_state(sch, context):
    return subclass(sch, "float64-state", {"step": _viewed(type(sch).step)})


def _exact_call_times(sch, context):
    if context is None or not context.gaps:
        return None
    return sch  # the model's times change, not the scheduler: see causes.retimed


def _counting(base: type, replace: Callable, tag: str) -> dict[str, Any]:
    """set_timesteps / step overrides that count steps and let ``replace(self, times, k, n,
    out, sample)`` rewrite the k-th step's output (n: the N of set_timesteps). The count is kept
    under ``tag``, so probes of this kind stack."""
    key = f"_cf_{tag}"

    def set_timesteps(self, n, *args, **kwargs):
        base.set_timesteps(self, n, *args, **kwargs)
        self.__dict__[key] = [int(n), 0, list(self.timesteps), False]  # [3]: replaced yet

    def step(self, model_output, timestep, sample, *args, **kwargs):
        # a two-stage class (Heun, KDPM2) whose next call starts a step: its sample is a state
        first = getattr(self, "state_in_first_order", None)
        self.__dict__[f"{key}_first"] = None if first is None else bool(first)
        out = base.step(self, model_output, timestep, sample, *args, **kwargs)
        state = self.__dict__[key]
        k = state[1]
        state[1] += 1
        return replace(self, state[2], k, state[0], out, sample)

    return {"set_timesteps": set_timesteps, "step": step}


def _with_prev_sample(out: Any, x: torch.Tensor) -> Any:
    if hasattr(out, "prev_sample"):
        try:
            out.prev_sample = x
        except (AttributeError, TypeError):
            out = type(out)(**{**dict(vars(out)), "prev_sample": x})
        return out
    if isinstance(out, tuple):
        return (x, *out[1:])
    return x


def _flow_step(context: Context, sample, t_now: float, t_next: float) -> torch.Tensor:
    x_vp = sample.to(DTYPE) * context.c(t_now)
    return context.exact_flow(x_vp, t_now, t_next) / context.c(t_next)


def _exact_steps(sch, context, which: Callable[[int, int, float], bool], tag: str):
    """``sch`` with the steps ``which(k, n_steps, t_k)`` selects replaced by the exact flow
    from the state's time t_k to the next call's time (the measured end time after the last
    call); the scheduler still sees its model outputs."""
    iface = context.setup.iface

    def replace(self, times, k, n, out, sample):
        sigmas = getattr(self, "sigmas", None)
        k_sel = k
        if context.state_kind == "sigma-scaled" and sigmas is not None and len(sigmas) > k + 1:
            # a k-diffusion port: its state is at its own sigma (the timestep passed to the
            # model is interpolated from it), and the last step goes to its last sigma
            t_now, t_next = times_of_sigma_tilde(context.setup.sched, [sigmas[k], sigmas[k + 1]])
        elif context.state_kind in ("flow", "ve") and sigmas is not None and len(sigmas) > k + 1:
            # flow matching (t = sigma, or 1 - sigma inverted) and EDM (t = sigma / sigma_max):
            # the state is at its sigma, and each step goes to the next one (FlowMatchEuler's
            # fixed last step to sigma = 0 or shift_terminal included)
            t_now, t_next = (_t_of_sigma(iface, float(v)) for v in (sigmas[k], sigmas[k + 1]))
        else:
            calls, _ = _grid(self, iface.time)  # the call times, once per set_timesteps
            t_now, end = calls[k], context.ends.get(n, math.nan)
            rest = calls[k + 1 :]
            # the calls after it sit at the end time (PNDM's last call, from t = 0.001 to
            # t = 0.001 with set_alpha_to_one false, does not move): this is the last step
            at_end = bool(rest) and all(abs(r - end) * context.setup.T <= 0.5 for r in rest)
            last = not rest or at_end
            t_next = end if last else rest[0]
            k_sel = len(times) - 1 if at_end else k
        if not which(k_sel, len(times), t_now):
            return out
        if context.multistage and not _starts_a_step(
            self.__dict__.get(f"_cf_{tag}_first"), times, k
        ):
            return out  # a second stage: its sample is a predictor, not the state
        counted = self.__dict__[f"_cf_{tag}"]
        orders = getattr(self, "order_list", None)  # a singlestep solver's sub-step orders
        if not counted[3] and orders is not None and k < len(orders) and orders[k] != 1:
            return out  # inside a group: its sample is an intermediate, not the state
        if not (math.isfinite(t_next) and t_next < t_now):
            return out
        counted[3] = True
        return _with_prev_sample(out, _flow_step(context, sample, t_now, t_next))

    return subclass(sch, tag, _counting(type(sch), replace, tag))


def _starts_a_step(first: bool | None, times, k: int) -> bool:
    """Whether the k-th call of a multistage class starts a step (its sample is the state):
    the class's ``state_in_first_order`` where it has one (Heun, KDPM2), else a call at
    another timestep than the call before (PNDM's repeated calls are its stages)."""
    if first is not None:
        return first
    return k == 0 or float(times[k]) != float(times[k - 1])


def _t_of_sigma(iface: Any, sigma: float) -> float:
    """odebench time of a flow-matching or EDM scheduler's own sigma."""
    of = iface.t_of_sigma
    return of(sigma) if of is not None else sigma / float(iface.schedule.sigma_max)


def _solver_order(sch, context) -> int:
    config = _config(sch)
    for key in ("solver_order", "order"):
        if isinstance(config.get(key), int):
            return int(config[key])
    nominal = context.nominal if context is not None else None
    return math.ceil(nominal) if nominal is not None and math.isfinite(nominal) else 1


def _exact_warm_up(sch, context):
    if context is None or not context.exact or context.multistage:
        return None
    warm = _solver_order(sch, context) - 1
    if warm < 1:
        return None
    return _exact_steps(sch, context, lambda k, n, t: k < min(warm, n - 1), "exact-warm-up")


def _exact_final_step(sch, context):
    if context is None or not context.exact:
        return None
    return _exact_steps(sch, context, lambda k, n, t: k == n - 1, "exact-final-step")


TAIL = 0.1  # the audit reads the order at t = 0.1 (measure.MID): the tail is what follows


def _exact_last_steps(sch, context):
    if context is None or not context.exact or context.multistage:
        return None
    return _exact_steps(sch, context, lambda k, n, t: t <= TAIL, "exact-last-steps")


def _solver_order_final(sch, context):
    config = _config(sch)
    flips = {k: False for k in ("lower_order_final", "euler_at_final") if config.get(k) is True}
    if not flips:
        return None
    return rebuild(sch, {**config, **flips}, "solver-order-final", {})


def _no_clipping(sch, context):
    config = _config(sch)
    flips = {k: False for k in ("clip_sample", "thresholding") if config.get(k) is True}
    if not flips:
        return None
    return rebuild(sch, {**config, **flips}, "no-clipping", {})


DDIM_RULE = "num_train_timesteps // self.num_inference_steps"


def _grid(sch, convert: Callable) -> tuple[list, dict]:
    """``sch.timesteps`` converted by ``convert``, and the first index of each value; kept
    until set_timesteps makes a new timesteps tensor (a step looks its timestep up in O(1))."""
    cached = sch.__dict__.get("_cf_grid", {}).get(convert)
    if cached is None or cached[0] is not sch.timesteps:
        times = [convert(t) for t in sch.timesteps]
        first: dict = {}
        for k, value in enumerate(times):
            first.setdefault(value, k)
        cached = (sch.timesteps, times, first)
        sch.__dict__.setdefault("_cf_grid", {})[convert] = cached
    return cached[1], cached[2]


def _next_grid_time(sch, context):
    base = type(sch)
    if callable(getattr(base, "previous_timestep", None)):

        def previous_timestep(self, timestep):
            times, first = _grid(self, float)
            k = first.get(float(timestep))
            if k is None:
                k = min(range(len(times)), key=lambda j: abs(times[j] - float(timestep)))
            if k + 1 >= len(times):
                return base.previous_timestep(self, timestep)
            if isinstance(timestep, torch.Tensor):
                return torch.as_tensor(times[k + 1], dtype=timestep.dtype)
            return type(timestep)(times[k + 1])

        return subclass(sch, "next-grid-time", {"previous_timestep": previous_timestep})
    try:
        source = inspect.getsource(base.step)
    except (OSError, TypeError):
        return None
    if DDIM_RULE not in source or not hasattr(sch, "_internal_dict"):
        return None

    def step(self, model_output, timestep, *args, **kwargs):
        times, first = _grid(self, int)
        k = first.get(int(timestep), -1)
        if k < 0 or k + 1 >= len(times):
            return base.step(self, model_output, timestep, *args, **kwargs)
        gap = times[k] - times[k + 1]
        saved = self._internal_dict
        view = dict(saved)
        view["num_train_timesteps"] = gap * int(self.num_inference_steps)
        self._internal_dict = type(saved)(view)
        try:
            return base.step(self, model_output, timestep, *args, **kwargs)
        finally:
            self._internal_dict = saved

    return subclass(sch, "next-grid-time", {"step": step})


def exact_lms_coefficient(sigmas, order: int, t: int, current_order: int) -> float:
    """The integral from sigmas[t] to sigmas[t + 1] of the Lagrange basis polynomial of node
    sigmas[t - current_order] on the nodes sigmas[t - k], k < order (k-diffusion's
    ``linear_multistep_coeff``), in float64 and exactly (the polynomial's antiderivative)."""
    s = [float(sigmas[t - k]) for k in range(order)]
    poly = np.polynomial.Polynomial([1.0])
    for k in range(order):
        if k != current_order:
            poly = poly * np.polynomial.Polynomial([-s[k], 1.0]) / (s[current_order] - s[k])
    anti = poly.integ()
    return float(anti(float(sigmas[t + 1])) - anti(float(sigmas[t])))


def _exact_quadrature(sch, context):
    if not callable(getattr(type(sch), "get_lms_coefficient", None)):
        return None

    def get_lms_coefficient(self, order, t, current_order):
        return exact_lms_coefficient(self.sigmas, order, t, current_order)

    return subclass(sch, "exact-quadrature", {"get_lms_coefficient": get_lms_coefficient})


THIRD = "multistep_dpm_solver_third_order_update"


def _taylor_3m(sch, context):
    """DPM-Solver(++) 3M with its third-order term weighted as Taylor's expansion needs.

    With m the model output (x0 for dpmsolver++, eps for dpmsolver) as a function of lambda,
    D2 = (D1_0 - D1_1) / (r0 + r1) is h^2 m'' / 2 (r0 = r1 = 1: (m0 - 2 m1 + m2) / 2), and
    the exact integral's term is alpha_t (h^2 / 2 - h + 1 - e^-h) m'' = 2 alpha_t phi_3 D2
    with phi_3 = 1/2 - (e^-h - 1 + h) / h^2 (Lu et al. 2022, DPM-Solver++, eq. of the
    exponential integrator expanded to second order in lambda). diffusers (as DPM-Solver's
    reference code and k-diffusion's 3M) adds phi_3 D2 once: a local error O(h^3), order 2.
    This probe adds the missing phi_3 D2 (dpmsolver: sigma_t ((e^h - 1 - h) / h^2 - 1/2) D2).
    """
    base = type(sch)
    if not callable(getattr(base, THIRD, None)) or _config(sch).get("solver_order") != 3:
        return None
    if _config(sch).get("algorithm_type", "dpmsolver++") not in ("dpmsolver++", "dpmsolver"):
        return None

    def third(self, model_output_list, *args, **kwargs):
        out = getattr(base, THIRD)(self, model_output_list, *args, **kwargs)
        i = self.step_index
        pairs = [self._sigma_to_alpha_sigma_t(self.sigmas[i + 1 - k]) for k in range(4)]
        lam = [torch.log(a) - torch.log(s) for a, s in pairs]
        h, h0, h1 = lam[0] - lam[1], lam[1] - lam[2], lam[2] - lam[3]
        m0, m1, m2 = model_output_list[-1], model_output_list[-2], model_output_list[-3]
        r0, r1 = h0 / h, h1 / h
        d2 = ((m0 - m1) / r0 - (m1 - m2) / r1) / (r0 + r1)
        alpha_t, sigma_t = pairs[0]
        if self.config.algorithm_type == "dpmsolver++":
            extra = -(alpha_t * ((torch.exp(-h) - 1.0 + h) / h**2 - 0.5)) * d2
        else:
            extra = -(sigma_t * ((torch.exp(h) - 1.0 - h) / h**2 - 0.5)) * d2
        return out + extra.to(out.dtype)

    return subclass(sch, "taylor-3m", {THIRD: third})


#: Specific causes first, then the probes that only localise a defect (call times, warm-up,
#: final step): the first probe that removes a finding is the cause the card names.
PROBES: tuple[Probe, ...] = (
    Probe(
        "float64-tables",
        "float64 tables",
        "float32 tables (alphas_cumprod, sigmas, lambdas)",
        _float64_tables,
    ),
    Probe("float64-state", "a float64 state", "float32 rounding inside step()", _float64_state),
    Probe(
        "next-grid-time",
        "steps to the grid's next time",
        "the previous-timestep rule",
        _next_grid_time,
    ),
    Probe(
        "no-clipping",
        "clip_sample / thresholding off",
        "the x0 prediction clipped (clip_sample) or thresholded: not the model's own ODE or SDE",
        _no_clipping,
    ),
    Probe(
        "solver-order-final",
        "a final step of the solver's own order",
        "a lower-order final step (lower_order_final / euler_at_final)",
        _solver_order_final,
    ),
    Probe(
        "exact-quadrature",
        "exact LMS coefficients",
        "the numerical quadrature of the LMS coefficients",
        _exact_quadrature,
    ),
    Probe(
        "taylor-3m",
        "the 3M step's D2 term weighted as Taylor's expansion needs (twice)",
        "DPM-Solver++(3M)'s third-order term is half of what order 3 needs (D2 = h^2 m''/2 "
        "weighted by phi_3 as if it were h^2 m''): the 3M step is of order 2",
        _taylor_3m,
    ),
    Probe(
        "exact-call-times",
        "model outputs at the states' own times",
        "model calls at times the states are not at",
        _exact_call_times,
        retime=True,
    ),
    Probe(
        "exact-warm-up",
        "exact warm-up steps",
        "the lower-order warm-up steps of a multistep method",
        _exact_warm_up,
        uses_flow=True,
    ),
    Probe(
        "exact-final-step",
        "the last step by the exact flow",
        "the last step into the end time",
        _exact_final_step,
        uses_flow=True,
    ),
    Probe(
        "exact-last-steps",
        f"every step below t = {TAIL:g} by the exact flow",
        f"the last steps into the end time (below t = {TAIL:g})",
        _exact_last_steps,
        uses_flow=True,
    ),
)
BY_NAME = {p.name: p for p in PROBES}


def get(name: str) -> Probe:
    """The probe called ``name`` (ValueError naming the known ones otherwise)."""
    if name not in BY_NAME:
        raise ValueError(f"unknown counterfactual {name!r} (known: {', '.join(BY_NAME)})")
    return BY_NAME[name]


def applicable(probes, scheduler_factory, context: Context | None) -> list[Probe]:
    """The probes that apply to the scheduler ``scheduler_factory()`` builds."""
    out = []
    for probe in probes:
        try:
            if probe.apply(scheduler_factory(), context) is not None:
                out.append(probe)
        except Exception:  # a probe that cannot wrap this class does not apply
            continue
    return out


def combine(probes, factory, context: Context | None) -> Callable[[], Any]:
    """A factory of schedulers with every probe of ``probes`` applied (in order)."""

    def make():
        sch = factory()
        for probe in probes:
            out = probe.apply(sch, context)
            sch = sch if out is None else out
        return sch

    return make


__all__ = [
    "BY_NAME",
    "PROBES",
    "Context",
    "Probe",
    "applicable",
    "combine",
    "exact_lms_coefficient",
    "float64_view",
    "get",
    "rebuild",
    "subclass",
]
