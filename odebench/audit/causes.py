"""Causes on the card: rerun an audit's ladder once per counterfactual probe
(:mod:`.counterfactual`) and name, for each finding, the probe that removed it and by how
much.

A finding is *removed* by a probe when the probe's own report card no longer has a finding of
that kind (the same rules: :func:`.report.build_report`) and its number moved the right way:
for an order, the rerun converges at the nominal order (or above), or reaches it before a
floor 10x lower than the original's (float32 round-off, say); any other number (an
error floor or a growing error, a final step's defect, a time gap, a nonlinearity, a
table's deviation) is at least ``REMOVED`` times smaller, or, for a floor, the order is as
declared; never when the run's error at the finest N got 3 times worse. A floor whose
error drops ``REMOVED`` times is removed even where a lower floor (another cause: float32
round-off) shows then. A probe that steps by the exact flow, and so moves the state
entering the last step where the states were off the scheduler's times, only localises a
final step's defect (:func:`moved_last_step`). Where no single probe removes a finding, all
applicable probes are tried together; the card then names the combination, or says that
none of them removes it, each with its numbers.

    report = audit_explained("diffusers:LMSDiscreteScheduler")   # findings annotated
    report = explain(report, prep, steps)   # the same, for a measured report
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._tensor import DTYPE
from . import probes as state_probes
from .adapters import drive
from .card import AuditReport, _finest, _finite, _ok
from .counterfactual import PROBES, TAIL, Context, Probe, applicable, combine
from .measure import Prepared, measure_facts, measure_rung
from .report import GAP, build_report
from .stochastic_ladder import ladder as weak_ladder
from .stochastic_ladder import noise_facts

REMOVED = 10.0  # an error this many times smaller is a floor removed
UNKNOWN = "cause not identified by the probes"


@dataclass(frozen=True)
class Kind:
    """A kind of finding: how to recognise it, the number that measures it, its label."""

    name: str
    match: Callable[[str], bool]
    value: Callable[[AuditReport], float]
    label: str


def _max_gap(rep: AuditReport) -> float:
    gaps = [r["max_gap"] for r in _ok(rep.rows) if _finite(r.get("max_gap"))]
    return max(gaps) if gaps else math.nan


def _slope(key: str) -> Callable[[AuditReport], float]:
    def value(rep: AuditReport) -> float:
        fit = rep.fits.get(key)
        return float(fit.slope) if fit is not None and fit.ok else math.nan

    return value


def _finest_error(rep: AuditReport) -> float:
    return _finest(rep.rows, "err_ode")


def _floor(rep: AuditReport) -> float:
    """The median error of the rungs the order fit calls a floor (as the card's "error
    floor" says), else the error at the finest N."""
    fit = rep.fits.get("ode")
    if fit is not None and fit.ok:
        floors = [e for e, f in zip(fit.err, fit.flags, strict=True) if f == "floor"]
        if floors:
            return float(np.median(floors))
    return _finest_error(rep)


KINDS: tuple[Kind, ...] = (
    Kind(  # a stochastic sampler's weak error (stochastic_card): before the ODE floors
        "weak floor",
        lambda f: f.startswith(("does not converge weakly", "weak error does not converge")),
        lambda r: _finest(r.rows, "weak_w2"),
        "W2 at the finest N",
    ),
    Kind(
        "float32 state",
        lambda f: f.startswith("float32 state"),
        lambda r: float(r.facts.get("linearity_defect", math.nan)),
        "nonlinearity",
    ),
    Kind(
        "float32 table",
        lambda f: f.startswith("float32 table"),
        lambda r: float(r.facts.get("table_rel_dev", math.nan)),
        "table deviation",
    ),
    Kind("time gap", lambda f: f.startswith("time gap"), _max_gap, "gap (steps)"),
    Kind(
        "floor",
        lambda f: f.startswith(("error floor", "does not converge: error floor")),
        _floor,
        "error floor",
    ),
    Kind(
        "floor",
        lambda f: f.startswith("does not converge"),
        _finest_error,
        "error at the finest N",
    ),
    Kind(
        "order",
        lambda f: f.startswith("order inconclusive") or ("below nominal" in f),
        _slope("ode"),
        "order",
    ),
    Kind(
        "final step",
        lambda f: f.startswith("final step:"),
        lambda r: _finest(r.rows, "final_defect"),
        "final step's defect at the finest N",
    ),
)


def kind_of(finding: str) -> Kind | None:
    """The :class:`Kind` of a finding (None: not one the probes address)."""
    return next((k for k in KINDS if k.match(finding)), None)


@dataclass
class Attempt:
    """One counterfactual run: the probes applied and the report it gave (or its error)."""

    probes: tuple[Probe, ...]
    report: AuditReport | None
    error: str = ""

    @property
    def name(self) -> str:
        return " + ".join(p.name for p in self.probes)


@dataclass
class Cause:
    """What the probes say about one finding: the attempts that removed it, and every
    attempt's number (before, after)."""

    finding: str
    kind: Kind
    before: float
    removed_by: list[Attempt] = field(default_factory=list)
    numbers: list[tuple[Attempt, float]] = field(default_factory=list)
    tail: dict[str, str] = field(default_factory=dict)  # what the exact-step probes mean here
    #: attempts that lowered a final step's defect only by moving the state entering the
    #: last step: name -> (its time before, after) (:func:`moved_last_step`)
    moved: dict[str, tuple[float, float]] = field(default_factory=dict)

    def text(self) -> str:
        """'removed by ...: label a -> b' or 'none of the probes removes it: ...'."""
        k = self.kind
        if self.removed_by:
            best = min(self.removed_by, key=lambda a: len(a.probes))  # singles in probe order
            values = dict((a.name, v) for a, v in self.numbers)
            change = f"{k.label} {_num(self.before)} -> {_num(values[best.name])}"
            if len(best.probes) > 1:
                what = " + ".join(p.change for p in best.probes)
                alone = ", ".join(
                    f"{p.name} {_num(values.get(p.name, math.nan))}" for p in best.probes
                )
                return (
                    f"{change} with {what} together ({best.name}; no single probe removes it: "
                    f"{alone} alone)"
                )
            also = [a.name for a in self.removed_by[1:] if len(a.probes) == 1]
            tail = f"; also removed by {', '.join(also)}" if also else ""
            probe = best.probes[0]
            return f"{change} with {probe.change}: {self.tail.get(probe.name, probe.cause)}{tail}"
        tried = ", ".join(f"{a.name} {_num(v)}" for a, v in self.numbers)
        out = f"none of the probes removes it ({k.label} {_num(self.before)}; {tried})"
        vanished = [a for a, v in self.numbers if a.name == "float64-state" and v == math.inf]
        if k.name == "float32 state" and vanished:
            out += (
                "; with a float64 state the response to the 1e-9 change vanishes entirely "
                "(inf): the output does not depend on x_T at this precision (the sampler "
                "forgets its start), so this test cannot judge the state's precision"
            )
        singles = [(n, m) for n, m in self.moved.items() if " + " not in n]
        if singles:
            name, (t0, t1) = singles[0]
            out += (
                f"; {name} lowers it only by moving the state entering the last step from "
                f"t = {t0:.3g} to t = {t1:.3g}: it localises the defect to those steps, where "
                "the states are off the times the scheduler steps between"
            )
        return out


def _num(v: float) -> str:
    if v == math.inf:
        return "inf"
    if not _finite(v):
        return "-"
    return f"{v:.2f}" if 0.1 <= abs(v) < 100 else f"{v:.1e}"


def moved_last_step(before: AuditReport, after: AuditReport) -> tuple[float, float] | None:
    """(t, t') where a rerun moved the state entering the last step, at the finest N, from t
    to t' by more than half the original last step; None where it stays. A probe that steps
    by the exact flow between the scheduler's own times puts the states there: where the
    run's states were off those times (time gaps), its last step is then another step, and
    its defect is that step's, measured against itself."""
    t0, t1 = _finest(before.rows, "t_before_final"), _finest(before.rows, "t_end")
    a0 = _finest(after.rows, "t_before_final")
    if _finite(t0) and _finite(t1) and _finite(a0) and abs(a0 - t0) > 0.5 * abs(t0 - t1):
        return t0, a0
    return None


def removes(
    kind: Kind, before: AuditReport, after: AuditReport, steps_by_flow: bool = False
) -> bool:
    """Whether ``after`` (a counterfactual report) no longer has ``before``'s finding of
    ``kind``, with its number moved the right way and no new failure. A final step's
    defect is not removed by a rerun that steps by the exact flow (``steps_by_flow``) and
    moved the state entering the last step (:func:`moved_last_step`): that only localises
    it."""
    if any(r.get("status") != "ok" for r in after.rows):
        return False
    if kind.name == "final step" and steps_by_flow and moved_last_step(before, after):
        return False
    b, a = kind.value(before), kind.value(after)
    if kind.name == "floor" and _finite(a) and _finite(b) and a * REMOVED <= b:
        return True  # that floor is gone, even if a lower one (another cause) shows now
    if any(kind.match(f) for f in after.findings):
        return False
    if kind.name == "order":  # the order as declared, or reached before a floor 10x lower
        nominal = after.facts.get("nominal")
        reached = _finite(a) and _finite(nominal) and a >= float(nominal) - 0.3
        return _as_declared(after) or (reached and _floor(after) * REMOVED <= _floor(before))
    e_b, e_a = _finest_error(before), _finest_error(after)
    if _finite(e_b) and _finite(e_a) and e_a > 3.0 * e_b:
        return False  # the finding went, but the run got worse
    if not (_finite(a) and (_finite(b) or b == math.inf)):  # inf: a perturbation rounded away
        return False
    # its number REMOVED times smaller; an error floor may also give way to the order
    return a * REMOVED <= b or (kind.name == "floor" and _as_declared(after))


def _as_declared(rep: AuditReport) -> bool:
    return rep.verdict.startswith("converges at order") or (
        rep.verdict.startswith("order ") and "above nominal" in rep.verdict
    )


def context_of(report: AuditReport, prep: Prepared) -> Context:
    """The :class:`Context` of an audit from its measured rows and facts."""
    ok = _ok(report.rows)
    nominal = report.facts.get("nominal")
    return Context(
        setup=prep.setup,
        nominal=float(nominal) if _finite(nominal) else None,
        state_kind=str(report.facts.get("state_kind", "vp")),
        ends={int(r["steps"]): float(r["t_end"]) for r in ok if _finite(r.get("t_end"))},
        gaps=any(_finite(r.get("max_gap")) and r["max_gap"] >= GAP for r in ok),
        multistage=any(int(r.get("repeats", 0) or 0) > 0 for r in ok),
        set_kwargs=dict(prep.setup.iface.set_kwargs),
    )


class _Retimed:
    """A model evaluated at the k-th call at ``times[k]`` (the state's time) when finite."""

    def __init__(self, model, times: Sequence[float]):
        self.model, self.times, self.k = model, list(times), 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        k, self.k = self.k, self.k + 1
        if k < len(self.times) and math.isfinite(self.times[k]):
            t = torch.tensor(self.times[k], dtype=DTYPE)
        return self.model(x, t)


class _Announcing:
    """A model that, when called, makes its problem's exact flow the context's current one
    (a run's steps follow its model calls: the probes that step by the exact flow use the
    flow of the problem the run is on, the audit's or the Dirac probe's)."""

    def __init__(self, model, context: Context, flow):
        self.model, self.context, self.flow = model, context, flow

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.context.flow = self.flow
        return self.model(x, t)


def announcing(setup, context: Context):
    """A copy of ``setup`` whose models announce their problem's flow to ``context``."""
    out = copy.copy(setup)
    out.model = _Announcing(setup.model, context, setup.prob.flow)
    out.dirac_model = _Announcing(setup.dirac_model, context, setup.dirac.flow)
    return out


def retimed(setup, factory, steps: int):
    """A copy of ``setup`` whose models are evaluated at the times the states are at, read
    from a Dirac-probe run of ``factory`` at ``steps`` (:func:`.probes.state_times`)."""
    start = state_probes.dirac_start(setup.dirac, setup.sched, setup.noise)
    trace = drive(factory, steps, start, setup.dirac_model, setup.T, interface=setup.iface)
    if not trace.ok:
        return setup
    times = state_probes.state_times(trace, setup.dirac, setup.sched, setup.noise, None)
    out = copy.copy(setup)
    out.model = _Retimed(setup.model, times["state_t"])
    out.dirac_model = _Retimed(setup.dirac_model, times["state_t"])
    return out


def rerun(
    prep: Prepared,
    report: AuditReport,
    chosen: Sequence[Probe],
    context: Context,
    steps: Sequence[int],
    probe_steps: int = 50,
) -> Attempt:
    """The audit's ladder again with every probe of ``chosen`` applied."""
    factory = combine(chosen, prep.factory, context)
    retime = any(p.retime for p in chosen)
    # the states' times of the scheduler the other code-changing probes make (not of the
    # original: combined with next-grid-time, the times move)
    timed = combine([p for p in chosen if not (p.retime or p.uses_flow)], prep.factory, context)
    try:
        facts = measure_facts(factory, prep.setup, probe_steps, prep.step_args)
        if report.facts.get("stochastic"):  # its weak ladder (exact or Monte Carlo laws)
            facts = {**report.facts, **facts, **noise_facts(prep.cls, facts)}
            rows = weak_ladder(factory, prep.setup, steps, prep.step_args, facts, False)
            return Attempt(tuple(chosen), build_report(rows, facts))
        rows = []
        for n in steps:
            setup = retimed(prep.setup, timed, n) if retime else prep.setup
            if any(p.uses_flow for p in chosen):
                setup = announcing(setup, context)
            rows.append(measure_rung(factory, prep.claim, setup, n))
        context.flow = None
    except Exception as exc:  # a probe that breaks the class is a result, not a crash
        return Attempt(tuple(chosen), None, f"{type(exc).__name__}: {exc}")
    return Attempt(tuple(chosen), build_report(rows, {**report.facts, **facts}))


def needs_probes(report: AuditReport) -> bool:
    """Whether ``report`` has a finding the probes address (a scheduler's, deterministic or
    stochastic; not a sampler function's, whose steps the probes cannot subclass)."""
    if report.facts.get("kind") == "function":
        return False
    return any(kind_of(f) is not None for f in report.findings)


#: Findings measured by the facts probe alone (one run at ``probe_steps``), not the ladder.
FACTS_KINDS = ("float32 state", "float32 table")


def needs_ladder(report: AuditReport) -> bool:
    """Whether a finding of ``report`` the probes address is read from the ladder (an order,
    a floor, a time gap, a final step): if not, the reruns measure the facts only."""
    kinds = [kind_of(f) for f in report.findings]
    return any(k is not None and k.name not in FACTS_KINDS for k in kinds)


def run_attempts(
    report: AuditReport,
    prep: Prepared,
    steps: Sequence[int],
    probes: Sequence[Probe] = PROBES,
    probe_steps: int = 50,
) -> tuple[list[Probe], list[Attempt]]:
    """The probes that apply, and a rerun per probe; where one of the findings survives
    every single probe, one more with all of them together, then the minimal combination
    (:func:`narrow`). A report whose findings are all read from the facts probe (a float32
    state or table) reruns that probe only, not the ladder."""
    context = context_of(report, prep)
    usable = applicable(probes, prep.factory, context)
    if report.facts.get("stochastic"):  # no exact flow of an SDE, no per-call state times
        usable = [p for p in usable if not (p.uses_flow or p.retime)]
    if not needs_ladder(report):  # float32 state / table only: the facts probe measures them
        steps = []
    attempts = [rerun(prep, report, [p], context, steps, probe_steps) for p in usable]
    if len(usable) > 1 and any(not c.removed_by for c in causes_of(report, attempts)):
        attempts.append(rerun(prep, report, usable, context, steps, probe_steps))
        attempts += narrow(
            report, attempts, lambda ps: rerun(prep, report, ps, context, steps, probe_steps)
        )
    return usable, attempts


def narrow(
    report: AuditReport,
    attempts: Sequence[Attempt],
    run: Callable[[list[Probe]], Attempt],
) -> list[Attempt]:
    """For each finding that no single probe removes but a combination does, a minimal
    combination: starting from the smallest that removes it, drop its probes one at a time
    while the rest still removes it, last probe first (the probes that only localise a defect,
    an exact final step say, go before the specific causes); ``run(probes)`` reruns the ladder
    with ``probes``. Returns the new attempts (each combination is run once)."""
    done = {frozenset(p.name for p in a.probes): a for a in attempts}
    new: list[Attempt] = []
    for cause in causes_of(report, [*attempts]):
        if not cause.removed_by or any(len(a.probes) == 1 for a in cause.removed_by):
            continue
        keep = list(min(cause.removed_by, key=lambda a: len(a.probes)).probes)
        for probe in reversed(list(keep)):
            trial = [p for p in keep if p is not probe]
            key = frozenset(p.name for p in trial)
            if not trial:
                continue
            if key not in done:
                done[key] = run(trial)
                new.append(done[key])
            after = done[key].report
            if after is not None and removes(cause.kind, report, after, _by_flow(trial)):
                keep = trial
    return new


def causes_of(report: AuditReport, attempts: Sequence[Attempt]) -> list[Cause]:
    """A :class:`Cause` for each finding of ``report`` the probes address."""
    out = []
    for finding in report.findings:
        kind = kind_of(finding)
        if kind is not None:
            cause = Cause(finding, kind, kind.value(report), tail=tail_notes(report))
            for attempt in attempts:
                _score(cause, report, attempt)
            out.append(cause)
    return out


def tail_notes(report: AuditReport) -> dict[str, str]:
    """What it means that the exact last step (``exact-final-step``) or every step below
    t = 0.1 (``exact-last-steps``) removes a finding, with the report's numbers: where the
    error is made, and whether the steps before it keep the nominal order (then, on a VP
    path into t = 0, where sigma ~ sqrt(t), it is the ODE's singularity, not a bug in
    step()) or not."""
    rows = report.rows
    ok = _ok(rows)
    n = max((r["steps"] for r in ok), default=0)
    t0, t1 = _finest(rows, "t_before_final"), _finest(rows, "t_end")
    fd = _finest(rows, "final_defect")
    last = "the last step"
    if _finite(t0) and _finite(t1):
        last += f", from t = {t0:.3g} to t = {t1:.3g},"
    last += " makes the error" + (f" (it adds {fd:.1e} at N = {n})" if _finite(fd) else "")
    below = f"the steps below t = {TAIL:g} make the error"
    mid, nominal = report.fits.get("mid"), report.facts.get("nominal")
    why = ""
    if mid is not None and mid.ok and _finite(nominal):
        keeps = mid.slope >= float(nominal) - 0.3
        vp = report.facts.get("state_kind") in ("vp", "sigma-scaled")
        if keeps and vp and _finite(t1) and t1 == 0.0:
            why = (
                f"; the steps before keep order {mid.slope:.2f} (nominal {float(nominal):g}) "
                "up to t = 0.1: the ODE's singularity at t = 0 (sigma ~ sqrt(t)) costs the "
                "order there, not a bug in step()"
            )
        elif keeps:
            why = f"; the steps before keep order {mid.slope:.2f} up to t = 0.1"
        else:
            why = f"; the steps before are of order {mid.slope:.2f} at t = 0.1"
            why += f" (nominal {float(nominal):g})"
    defect = report.fits.get("final_defect")
    same = defect is not None and defect.ok and defect.slope < 0.3
    fixed = "; it is the same step at every fine N (smallest sigma to the end)" if same else ""
    defects = [r["final_defect"] for r in ok if _finite(r.get("final_defect"))]
    if defects and _finite(fd) and fd > 3.0 * min(defects):  # the last step gets worse with N
        at = min(ok, key=lambda r: r.get("final_defect", math.inf))["steps"]
        fixed = (
            f"; its error grows with N ({min(defects):.1e} at N = {at}): the last step's own "
            "formula, not the singularity"
        )
        why = why.split(":")[0] if "singularity" in why else why
    return {"exact-final-step": last + fixed + why, "exact-last-steps": below + why}


def annotate(
    report: AuditReport,
    usable: Sequence[Probe],
    attempts: Sequence[Attempt],
    probes: Sequence[Probe] = PROBES,
) -> AuditReport:
    """``report`` with each finding the probes address annotated with its cause (the
    findings and the card line "counterfactuals"); ``report.counterfactuals["causes"]`` keeps the
    :class:`Cause` objects, ``report.counterfactuals["attempts"]`` every rerun and
    ``report.counterfactuals["usable"]`` the probes that apply."""
    causes = causes_of(report, attempts)
    notes = {c.finding: c.text() for c in causes}
    report.findings = [_annotate(f, notes.get(f)) for f in report.findings]
    if UNKNOWN in report.verdict:  # the verdict names the floor's cause as its finding does
        floor = next((c for c in causes if c.kind.name == "floor"), None)
        if floor is not None:
            short = (
                "counterfactual: " + min(floor.removed_by, key=lambda a: len(a.probes)).name
                if floor.removed_by
                else "none of the probes removes it"
            )
            report.verdict = report.verdict.replace(UNKNOWN, short)
            report.lines = [(k, report.verdict if k == "verdict" else v) for k, v in report.lines]
    tried = ", ".join(p.name for p in usable) or "none applies"
    skipped = [p.name for p in probes if p not in usable]
    line = f"tried {tried}" + (f"; not applicable: {', '.join(skipped)}" if skipped else "")
    report.lines.append(("counterfactuals", line))
    report.counterfactuals["causes"] = causes
    report.counterfactuals["attempts"] = list(attempts)
    report.counterfactuals["usable"] = list(usable)
    return report


def explain(
    report: AuditReport,
    prep: Prepared,
    steps: Sequence[int],
    probes: Sequence[Probe] = PROBES,
    probe_steps: int = 50,
) -> AuditReport:
    """:func:`run_attempts`, then :func:`annotate` (``report`` unchanged where no finding
    is one the probes address)."""
    if not needs_probes(report):
        return report
    usable, attempts = run_attempts(report, prep, steps, probes, probe_steps)
    return annotate(report, usable, attempts, probes)


def explain_audit(
    report: AuditReport,
    sampler: Any,
    config: Any = None,
    probes: Sequence[Probe] = PROBES,
    **options: Any,
) -> AuditReport:
    """:func:`explain` for an audit of ``sampler`` run with ``options`` (those of
    :func:`.measure.measure`; the same defaults), trying ``probes``."""
    from .._tensor import one_thread
    from .measure import DEFAULT_STEPS, prepare

    if not needs_probes(report):
        return report
    prep = prepare(
        sampler,
        config,
        options.get("problem", "gaussian-lowrank"),
        options.get("schedule") or "ddpm-linear-1000",
        int(options.get("n_samples", 32)),
        int(options.get("seed", 0)),
        options.get("claim"),
    )
    steps = sorted({int(n) for n in options.get("steps", DEFAULT_STEPS)})
    with one_thread():
        return explain(report, prep, steps, probes, int(options.get("probe_steps", 50)))


def audit_explained(
    sampler: Any, config: Any = None, probes: Sequence[Probe] = PROBES, **options: Any
) -> AuditReport:
    """:func:`.report.audit` of ``sampler`` with each finding's cause named by the
    counterfactual probes (:func:`explain_audit`)."""
    from .report import audit

    report = audit(sampler, config, **options)
    return explain_audit(report, sampler, config, probes, **options)


def _score(cause: Cause, report: AuditReport, attempt: Attempt) -> None:
    if attempt.report is None:
        cause.numbers.append((attempt, math.nan))
        return
    cause.numbers.append((attempt, cause.kind.value(attempt.report)))
    by_flow = _by_flow(attempt.probes)
    if removes(cause.kind, report, attempt.report, by_flow):
        cause.removed_by.append(attempt)
    elif cause.kind.name == "final step" and by_flow:
        moved = moved_last_step(report, attempt.report)
        if moved is not None and cause.kind.value(attempt.report) * REMOVED <= cause.before:
            cause.moved[attempt.name] = moved


def _by_flow(probes: Sequence[Probe]) -> bool:
    return any(p.uses_flow for p in probes)


def _annotate(finding: str, note: str | None) -> str:
    if note is None:
        return finding
    if UNKNOWN in finding:
        return finding.replace(UNKNOWN, "counterfactual: " + note)
    return f"{finding} [counterfactual: {note}]"


__all__ = [
    "KINDS",
    "REMOVED",
    "Attempt",
    "Cause",
    "Kind",
    "annotate",
    "audit_explained",
    "causes_of",
    "context_of",
    "explain",
    "explain_audit",
    "kind_of",
    "moved_last_step",
    "narrow",
    "needs_ladder",
    "needs_probes",
    "removes",
    "rerun",
    "retimed",
    "run_attempts",
]
