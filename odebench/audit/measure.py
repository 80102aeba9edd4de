"""The measurements of an audit: one row per step count of the ladder, and the facts.

For each N of the ladder the scheduler runs twice through :func:`.adapters.drive`: on the
problem (default gaussian-lowrank, whose exact flow is the reference) from x_T, a sample of
the marginal at the first evaluated time t_start; and on a point mass, whose states reveal
their own times (:mod:`.probes`). The problem lives on the scheduler's path: the VP table
named by ``schedule``, or flow matching / EDM's VE for those classes (:mod:`.interfaces`).
Each row holds

- ``err_ode``: the output (mapped to VP) against the exact ODE solution from t_start to the
  *effective* end time t_end (the time the Dirac probe finds the output at);
- ``err_data``: the output as the pipeline returns it against the exact solution at t = 0
  (data): the ODE the sampler is meant to solve, from its first evaluated time;
- ``err_before_final``: the state entering the last step against the exact solution at its
  time, and ``final_defect``: what the last step adds (output against the exact flow of that
  state to t_end); ``err_first``: the state after the first step (a local error);
- ``family_err``: odebench's solver of the same family with the most steps whose NFE fits
  the scheduler's, between the same t_start and t_end, against the same reference.

The facts (once per audit, at one probe step count): determinism, float64 linearity, the
scheduler's tables and declared end time, its effective config.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .. import problems, schedules, solvers
from .._tensor import DTYPE, one_thread
from ..grids import timesteps
from ..metrics import rms_error
from ..models import from_prediction
from ..reference import reference
from . import probes, stochastic_ladder
from .adapters import (
    SET_TIMESTEPS_KEYS,
    STEP_KEYS,
    Trace,
    base_config,
    drive,
    make_factory,
    parse_config,
    resolve,
    step_kwargs,
)
from .interfaces import Interface, choose, family
from .nominal import Claim, nominal, nominal_weak

#: Step counts: divisors of T = 1000 and non-divisors, 10 to 700.
DEFAULT_STEPS = [10, 20, 25, 30, 40, 50, 60, 70, 100, 125, 150, 200, 250, 300, 500, 700]
PERTURBATION = 1e-9
DIRAC_SAMPLES = 4
MID = 0.1  # an interior time where the order is read before the last steps into t_end


def label(cls: type, config: dict[str, Any]) -> str:
    """``Name {json}`` (or just ``Name``): how a sampler and its config are written."""
    return cls.__name__ + (" " + json.dumps(config, sort_keys=True) if config else "")


def parse_label(text: str) -> tuple[str, dict[str, Any]]:
    """Inverse of :func:`label`: ``'DDIMScheduler {"set_alpha_to_one": false}'``."""
    name, _, rest = text.strip().partition(" ")
    return name, parse_config(rest.strip() or None)


class Setup:
    """The problem, schedule, start points and models shared by every run of an audit; the
    schedule and the model outputs are the scheduler's interface's (:mod:`.interfaces`)."""

    def __init__(
        self, problem: str, schedule: str, n_samples: int, seed: int, iface: Interface | None = None
    ):
        if iface is None:
            iface = Interface("vp", schedules.get(schedule), "epsilon", "eps")
        self.iface = iface
        self.sched = iface.schedule
        if iface.discrete and not getattr(self.sched, "T", None):
            raise ValueError(f"schedule {schedule!r} is not a discrete table")
        self.T = int(getattr(self.sched, "T", None) or iface.T)
        self.snap_T = self.T if iface.discrete else None
        self.prob = problems.get(problem, self.sched)
        self.dirac = problems.get("dirac", self.sched)
        self.model = iface.network(self.prob)
        self.dirac_model = iface.network(self.dirac)
        self.karras_t_min = 1.0 / self.T
        self.n_samples, self.seed = int(n_samples), int(seed)
        self.noise = torch.randn(
            DIRAC_SAMPLES, 2, generator=torch.Generator().manual_seed(seed + 1), dtype=DTYPE
        )
        self.exact = getattr(self.prob, "flow", None) is not None
        #: family errors already measured (:func:`_family_error`), shared by the copies the
        #: counterfactual reruns make: a probe that leaves the start, the end time, the NFE
        #: and the target as they were gets the same number without solving again
        self.family_errors: dict[tuple, tuple[float, int]] = {}

    def start(self, t: float) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        return self.prob.sample_marginal(self.n_samples, t, gen).to(DTYPE)

    def flow(self, x: torch.Tensor, s: float, t: float) -> torch.Tensor:
        return self.prob.flow(x, s, t)


def _ref_states(setup: Setup, x_T: torch.Tensor, t0: float, times: list[float]):
    """Exact states at ``times`` from x_T at t0 (exact flow, else a tight adaptive solve),
    with the reference's own accuracy at each."""
    grid = sorted({t for t in times if math.isfinite(t) and t < t0} | {t0}, reverse=True)
    ref = reference(setup.prob, setup.sched, x_T, torch.tensor(grid, dtype=DTYPE), tol=1e-11)
    return ref


def _tensor_key(x: torch.Tensor) -> tuple:
    """A tensor's exact identity: dtype, shape and a hash of its bytes."""
    data = x.detach().cpu().contiguous().numpy().tobytes()
    return str(x.dtype), tuple(x.shape), hashlib.blake2b(data, digest_size=16).hexdigest()


def _family_error(claim: Claim, setup: Setup, x_T, t0, t1, nfe, target) -> tuple[float, int]:
    """The error of odebench's solver of the claim's family (see the module docstring); a
    function of its arguments only, so measured once per distinct (claim, start, end time,
    NFE, target) of an audit and its reruns."""
    if claim.family is None or not math.isfinite(t1) or nfe < 1:
        return math.nan, 0
    key = (
        claim.family,
        json.dumps(claim.family_options, sort_keys=True, default=repr),
        claim.spacing,
        float(t0),
        float(t1),
        int(nfe),
        _tensor_key(x_T),
        _tensor_key(target),
    )
    if key not in setup.family_errors:
        setup.family_errors[key] = _solve_family(claim, setup, x_T, t0, t1, nfe, target)
    return setup.family_errors[key]


def _solve_family(claim: Claim, setup: Setup, x_T, t0, t1, nfe, target) -> tuple[float, int]:
    model = setup.prob.eps
    if float(setup.sched.alpha(t0)) == 0.0:  # only a model with its own x0 can start there
        model = from_prediction(setup.prob.prediction("velocity"), "velocity", setup.sched)
    try:
        solver = solvers.get(claim.family, **claim.family_options)
        n = solver.steps_for_nfe(nfe)
        if claim.spacing == "karras" and t1 == 0.0:
            if n < 2:
                return math.nan, 0
            ts = timesteps(n - 1, "karras", t0, setup.karras_t_min, schedule=setup.sched)
            ts = torch.cat([ts, torch.zeros(1, dtype=DTYPE)])
        else:
            ts = timesteps(n, claim.spacing, t0, t1, schedule=setup.sched)
        sol = solvers.solve(solver, model, setup.sched, x_T, ts)
        return rms_error(sol.x, target), sol.nfe
    except ValueError:
        return math.nan, 0


def _compact(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in values)


def measure_rung(
    factory, claim: Claim, setup: Setup, steps: int, *, keep_calls: bool = False
) -> dict[str, Any]:
    """One row of the ladder (see the module docstring)."""
    T = setup.T
    main = drive(factory, steps, setup.start, setup.model, T, interface=setup.iface)
    row: dict[str, Any] = {
        "steps": steps,
        "divides_T": T % steps == 0,
        "status": main.status,
        "nfe": main.nfe,
        "t_start": main.t_start,
        "repeats": sum(1 for a, b in zip(main.calls, main.calls[1:], strict=False) if a.t == b.t),
    }
    if keep_calls:
        row["call_timesteps"] = _compact([c.timestep for c in main.calls])
    probe = drive(
        factory,
        steps,
        probes.dirac_start(setup.dirac, setup.sched, setup.noise),
        setup.dirac_model,
        T,
        interface=setup.iface,
    )
    times = probes.state_times(probe, setup.dirac, setup.sched, setup.noise, setup.snap_T)
    row.update(
        t_end=times["t_end"],
        max_gap=times["max_gap"],
        calls_off=times["n_off"],
        worst_call=times["worst_call"],
        worst_t_call=times["worst_t_call"],
        worst_t_state=times["worst_t_state"],
    )
    keys = ("err_ode", "err_data", "err_before_final", "final_defect", "err_first", "ref_acc")
    row.update(dict.fromkeys(keys, math.nan))
    row.update(t_before_final=math.nan, family_err=math.nan, family_nfe=0)
    row.update(t_mid=math.nan, err_mid=math.nan)
    if not main.ok:
        return row
    t0, t_end = main.t_start, times["t_end"]
    same_calls = probe.ok and len(probe.calls) == len(main.calls)
    state_t = times["state_t"] if same_calls else []
    # the last state entering the final step (a time different from the end) and the first
    # state after the first step
    k_last = next(
        (
            k
            for k in range(len(state_t) - 1, -1, -1)
            if math.isfinite(state_t[k]) and abs(state_t[k] - t_end) * T > probes.SNAP
        ),
        None,
    )
    k_mid = nearest_state(state_t, MID, T)
    k_first = next(
        (
            k
            for k in range(1, len(state_t))
            if math.isfinite(state_t[k]) and abs(state_t[k] - t0) * T > probes.SNAP
        ),
        None,
    )
    t_last = state_t[k_last] if k_last is not None else math.nan
    t_first = state_t[k_first] if k_first is not None else math.nan
    t_mid = state_t[k_mid] if k_mid is not None else math.nan
    wanted = [t for t in (t_end, 0.0, t_last, t_first, t_mid) if math.isfinite(t)]
    ref = _ref_states(setup, main.x_start, t0, wanted)
    row["err_data"] = rms_error(main.x_raw, ref.at(0.0))
    if math.isfinite(t_end) and t_end < t0:
        target = ref.at(t_end)
        row["err_ode"] = rms_error(main.x_vp, target)
        row["ref_acc"] = ref.accuracy_at(t_end)
        row["family_err"], row["family_nfe"] = _family_error(
            claim, setup, main.x_start, t0, t_end, main.nfe, target
        )
    if k_last is not None and t_last < t0:
        row["t_before_final"] = t_last
        row["err_before_final"] = rms_error(main.inputs[k_last], ref.at(t_last))
        if setup.exact and math.isfinite(t_end):
            row["final_defect"] = rms_error(
                main.x_vp, setup.flow(main.inputs[k_last], t_last, t_end)
            )
    if k_mid is not None and t_end < t_mid < t0 and abs(t_mid - MID) < 0.05:
        row["t_mid"] = t_mid
        row["err_mid"] = rms_error(main.inputs[k_mid], ref.at(t_mid))
    if k_first is not None and t_first < t0:
        row["err_first"] = rms_error(main.inputs[k_first], ref.at(t_first))
    return row


def nearest_state(state_t: Sequence[float], target: float, T: int) -> int | None:
    """Index of the model input at the time nearest ``target``; of the inputs at that time
    (within ``probes.SNAP / T``), the last. A two-stage step (Heun) feeds the model its
    predictor and then, next step, the corrected state at the same time: the state is the
    later one. Picking the nearer of the two by the round-off in their estimated times made
    ``err_mid`` a coin toss between a stage's error and the state's. None without a finite
    time."""
    finite = [k for k, t in enumerate(state_t) if math.isfinite(t)]
    if not finite:
        return None
    t_near = state_t[min(finite, key=lambda k: abs(state_t[k] - target))]
    return max(k for k in finite if abs(state_t[k] - t_near) * T <= probes.SNAP)


def _init_scale(base: Trace, setup: Setup) -> float:
    """noise * init_noise_sigma over the start state's noise level (1 when the pipeline starts
    right): the VP state is taken as unit noise, as it always was; flow and VE states have
    noise level sigma(t_start) in the interpolant's x."""
    scale = base.init_noise_sigma * base.c_start
    if setup.iface.interpolant == "vp":
        return scale
    t0 = base.t_start
    return scale / (setup.iface.c_in(t0) * float(setup.sched.sigma(torch.tensor(t0, dtype=DTYPE))))


def measure_facts(
    factory, setup: Setup, steps: int, step_args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Per-audit facts at ``steps`` inference steps: determinism, float64, tables, config.
    A stochastic scheduler (two unseeded runs differ) is probed again with a seeded
    ``generator=`` (``seeded_diff``: 0 when that makes a run reproducible), and the float64
    probe uses those seeded runs."""
    T = setup.T
    seed: list[int | None] = [None]

    def run(start) -> Trace:
        return drive(
            factory,
            steps,
            start,
            setup.model,
            T,
            keep_inputs=False,
            interface=setup.iface,
            step_args=step_args,
            seed=seed[0],
        )

    with torch.random.fork_rng():  # the unseeded pair draws from torch's global generator:
        torch.manual_seed(setup.seed + 1)  # seeded here, so the reported difference repeats
        base, again = run(setup.start), run(setup.start)
    facts: dict[str, Any] = {"probe_steps": steps, "probe_status": base.status}
    facts["stochastic_diff"] = probes.difference(base, again)
    if math.isfinite(facts["stochastic_diff"]) and facts["stochastic_diff"] > 0:
        seed[0] = setup.seed + 3
        base, again = run(setup.start), run(setup.start)
        facts["seeded_diff"] = probes.difference(base, again)
    direction = torch.randn(
        setup.n_samples,
        *base.x_start.shape[1:] if base.x_start is not None else (1,),
        generator=torch.Generator().manual_seed(setup.seed + 7),
        dtype=DTYPE,
    )

    def shifted(scale: float):
        def start(t: float) -> torch.Tensor:
            x = setup.start(t)
            return x + scale * PERTURBATION * float(x.norm() / direction.norm()) * direction

        return start

    small, large = run(shifted(1.0)), run(shifted(2.0))
    facts["linearity_defect"] = probes.linearity_defect(base, small, large)
    facts["x_scale"] = rms_error(base.x_raw, torch.zeros_like(base.x_raw)) if base.ok else 1.0
    facts["out_dtype"] = str(base.x_raw.dtype).replace("torch.", "") if base.ok else ""
    facts["state_kind"] = base.state_kind or (
        "vp" if abs(base.c_start - 1.0) < 1e-12 else "sigma-scaled"
    )
    facts["init_scale"] = _init_scale(base, setup) if base.ok else math.nan
    facts["init_noise_sigma"] = base.init_noise_sigma
    sch = base.scheduler
    if sch is not None:
        facts.update(probes.table_facts(sch, setup.sched, setup.iface.t_of_sigma))
        config = getattr(sch, "config", None)
        facts["effective_config"] = json.dumps(
            {k: v for k, v in dict(config or {}).items() if not k.startswith("_")},
            sort_keys=True,
            default=str,
        )
    return facts


def instance_config(sch: Any) -> dict[str, Any]:
    """The entries of a scheduler instance's config that differ from its class's defaults
    (what a user config would have to say to build it)."""
    config = {k: v for k, v in dict(getattr(sch, "config", {}) or {}).items() if k[:1] != "_"}
    try:
        defaults = dict(make_factory(type(sch), {})().config)
    except Exception:  # a class that cannot be built bare: keep its whole config
        return config
    return {k: v for k, v in config.items() if defaults.get(k, config) != v}


def measure(
    sampler: Any,
    config: dict[str, Any] | str | None = None,
    *,
    problem: str = "gaussian-lowrank",
    schedule: str = "ddpm-linear-1000",
    steps: Sequence[int] = DEFAULT_STEPS,
    n_samples: int = 32,
    seed: int = 0,
    claim: Claim | None = None,
    probe_steps: int = 50,
    strong: bool | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of the ladder and the facts of ``sampler`` (a class, "diffusers:Name", or a
    scheduler instance, audited as its class with its config).
    A stochastic sampler gets the weak / strong ladder of :mod:`.stochastic_ladder`;
    ``strong=True`` makes a strong order required (ValueError with one line where the audit
    cannot drive its noise by a Brownian path), False skips it."""
    with one_thread():
        return _measure(
            sampler, config, problem, schedule, steps, n_samples, seed, claim, probe_steps, strong
        )


@dataclass
class Prepared:
    """What every run of one audit shares: the class, the user's config split into config /
    ``set_timesteps`` / ``step()`` arguments, a fresh-scheduler factory, the setup (problem,
    path, models) and the claim. :mod:`.counterfactual` reruns the ladder on it."""

    cls: type
    user: dict[str, Any]
    factory: Callable[[], Any]
    setup: Setup
    claim: Claim
    step_args: dict[str, Any]
    effective: dict[str, Any]


def prepare(sampler, config, problem, schedule, n_samples, seed, claim=None) -> Prepared:
    """The class, factory, setup and claim of an audit (see :func:`measure`)."""
    user = parse_config(config)
    if not isinstance(sampler, str | type) and hasattr(sampler, "set_timesteps"):
        sampler, user = type(sampler), {**instance_config(sampler), **user}
    cls = resolve(sampler)
    set_args = {k: user[k] for k in SET_TIMESTEPS_KEYS if k in user}
    step_args = step_kwargs(cls, user)
    scheduler_config = {
        k: v for k, v in user.items() if k not in SET_TIMESTEPS_KEYS and k not in STEP_KEYS
    }
    vp = family(cls, user) == "vp"
    base = base_config(schedule, schedules.get(schedule).T or 1000) if vp else {}
    full = {**base, **scheduler_config}
    factory = make_factory(cls, full)
    try:
        effective = dict(factory().config)
    except Exception:  # the failure shows in every row's status
        effective = full
    iface = choose(cls, {**effective, **set_args}, schedule)
    setup = Setup(problem, schedule, n_samples, seed, iface)
    if iface.interpolant == "ve":
        setup.karras_t_min = float(effective.get("sigma_min", 0.002)) / iface.schedule.sigma_max
    if claim is None:
        claim = nominal(cls.__name__, effective)
    return Prepared(cls, user, factory, setup, claim, step_args, effective)


def _measure(
    sampler, config, problem, schedule, steps, n_samples, seed, claim, probe_steps, strong
):
    steps = sorted({int(n) for n in steps})
    if len(steps) < 3 or steps[0] < 1:
        raise ValueError(f"need at least 3 distinct positive step counts, got {steps}")
    prep = prepare(sampler, config, problem, schedule, n_samples, seed, claim)
    cls, user, factory, setup = prep.cls, prep.user, prep.factory, prep.setup
    claim, step_args, effective, iface = prep.claim, prep.step_args, prep.effective, setup.iface
    facts = measure_facts(factory, setup, probe_steps, step_args)
    diff = facts["stochastic_diff"]
    stochastic = math.isfinite(diff) and diff > 0
    if strong and not stochastic:
        raise ValueError(f"{label(cls, user)} is deterministic: a strong order is for SDE samplers")
    if stochastic:
        facts.update(stochastic_ladder.noise_facts(cls, facts))
        claim = nominal_weak(cls.__name__, effective)
    path, output = iface.describe()
    facts.update(
        sampler=label(cls, user),
        scheduler_class=cls.__name__,
        user_config=json.dumps(user, sort_keys=True),
        problem=problem,
        schedule=schedule,
        odebench_schedule=iface.schedule.name
        + (f" (sigma_max {iface.schedule.sigma_max:g})" if iface.interpolant == "ve" else ""),
        interpolant=path,
        model_output=output,
        T=setup.T,
        n_samples=n_samples,
        seed=seed,
        nominal=claim.order if claim.order is not None else math.nan,
        nominal_source=claim.source,
        family=claim.family or "",
        family_spacing=claim.spacing,
    )
    if stochastic:
        rows = stochastic_ladder.ladder(factory, setup, steps, step_args, facts, strong)
        return rows, facts
    first_small = min(steps, key=lambda n: abs(n - 10))
    rows = [measure_rung(factory, claim, setup, n, keep_calls=(n == first_small)) for n in steps]
    return rows, facts


__all__ = [
    "DEFAULT_STEPS",
    "Prepared",
    "Setup",
    "Trace",
    "label",
    "measure",
    "measure_rung",
    "parse_label",
    "prepare",
]
