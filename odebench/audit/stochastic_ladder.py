"""The ladder of a stochastic sampler: weak errors from exact laws, strong errors along one
Brownian path, and the facts of its noise.

:func:`.measure.measure` calls :func:`ladder` in place of its ODE ladder when two unseeded
runs from one x_T differ. Each row holds ``weak_w2`` (exact W2 between the output law and the
exact marginal at the end time, :func:`.stochastic.exact_law`), ``weak_w2_data`` (against the
data, t = 0), ``weak_kl`` (KL(output law || marginal) where both are non-singular), ``t_end``
(the time the point-mass output law is at), ``draws`` and ``max_draws`` (noise draws per run
and in one step), ``max_gap`` (the worst distance, in steps of the table, between the time
the model is told and the time of its input's point-mass law) and, where the audit drives
the noise by a Brownian path, ``strong_err`` against the run with ``strong_ref`` steps (runs
with time gaps are left out of the strong ladder: their grid is not the one they state).

Where the output is not affine in (x_T, noise) (clip_sample or thresholding), the weak errors
come from :func:`.stochastic.mc_law` on ``MC_SAMPLES`` seeded runs (``facts["mc_samples"]``
overrides it), and the row adds ``weak_estimate`` ("monte carlo"), ``mc_samples``,
``weak_floor`` and ``weak_floor_se`` (:func:`.stochastic.mc_floor` at the end time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import stochastic as st
from .adapters import step_parameters

GAP = 0.25  # steps of the table: a call this far from its input's time is on the wrong time
MC_SAMPLES = 4096  # runs of a Monte Carlo weak error (no exact law)


def noise_facts(cls: type, facts: dict[str, Any]) -> dict[str, Any]:
    """How the audit reaches the scheduler's noise: the module it draws from, generator=."""
    module = st.noise_module(cls)
    return {
        "stochastic": True,
        "noise_source": f"{module.__name__}.{st.NOISE_FN}" if module is not None else "",
        "takes_generator": "generator" in step_parameters(cls),
    }


def _monte_carlo(facts: dict[str, Any]) -> bool:
    """No exact law, but the audit draws the noise: the weak error is Monte Carlo."""
    return bool(facts.get("noise_source")) and bool(_why_not_exact(facts))


def _why_not_exact(facts: dict[str, Any]) -> str:
    if not facts.get("noise_source"):
        return "its noise is not drawn through randn_tensor (e.g. torchsde): not controlled"
    if facts.get("clip_sample") or facts.get("thresholding"):
        what = "clip_sample" if facts.get("clip_sample") else "thresholding"
        return f"{what}=True: the output is not affine in (x_T, noise), no exact law"
    return ""


def rung(factory, setup, steps: int, step_args, facts) -> tuple[dict[str, Any], Any]:
    """One row (see the module docstring) and the law's trace (for the strong grids)."""
    T = setup.T
    row: dict[str, Any] = {"steps": steps, "divides_T": T % steps == 0}
    keys = ("weak_w2", "weak_w2_data", "weak_kl", "t_start", "t_end", "strong_err", "max_gap")
    row.update(dict.fromkeys(keys, math.nan))
    row.update(nfe=0, draws=0, max_draws=0)
    why = _why_not_exact(facts)
    mc = _monte_carlo(facts)
    if why and not mc:
        row["status"] = f"error: {why}"
        return row, None
    args = (factory, steps, setup.prob, setup.sched, setup.model, setup.iface, T, step_args)
    if mc:
        n = int(facts.get("mc_samples") or MC_SAMPLES)
        law = st.mc_law(*args, n=n, seed=setup.seed)
        row.update(weak_estimate="monte carlo", mc_samples=n)
    else:
        law = st.exact_law(*args)
    trace = law.trace
    ok_status = law.status.startswith(("ok", "error", "nan"))
    row["status"] = law.status if ok_status else f"error: {law.status}"
    if trace is not None:
        row.update(nfe=trace.nfe, t_start=trace.t_start)
    row["draws"] = law.draws
    row["max_draws"] = max(st.draws_per_step(law.draw_steps).values(), default=0)
    if not law.ok:
        return row, None
    point = st.exact_law(
        factory,
        steps,
        setup.dirac,
        setup.sched,
        setup.dirac_model,
        setup.iface,
        T,
        step_args,
        keep_inputs=True,
    )
    row["t_end"] = st.end_time(point, setup.dirac.mean, setup.sched, setup.snap_T)
    row.update(st.input_times(point, setup.dirac.mean, setup.sched, setup.snap_T))
    row.update(st.weak_errors(law, setup.prob, setup.sched, row["t_end"]))
    if mc:
        row["weak_kl"] = math.nan  # a sample covariance: no exact KL
        if math.isfinite(row["t_end"]):
            floor, se = st.mc_floor(setup.prob, setup.sched, row["t_end"], row["mc_samples"])
            row.update(weak_floor=floor, weak_floor_se=se)
    return row, trace


def ladder(
    factory, setup, steps: Sequence[int], step_args, facts, strong: bool | None
) -> list[dict[str, Any]]:
    """Rows of the stochastic ladder; sets ``facts["strong_note"]`` (why no strong order, or
    its reference). ``strong``: None measures it where it can, True requires it (ValueError
    with one line otherwise), False skips it."""
    rows, grids = [], {}
    for n in steps:
        row, trace = rung(factory, setup, n, step_args, facts)
        rows.append(row)
        gap = row.get("max_gap", math.nan)
        if trace is not None and math.isfinite(row["t_end"]) and not gap >= GAP:
            grids[n] = [c.t for c in trace.calls] + [row["t_end"]]
    note = _strong_blocker(rows, grids, facts)
    if strong is False:
        facts["strong_note"] = "not asked"
        return rows
    if not note:
        ref, errs = st.strong_errors(
            factory, grids, setup.start, setup.model, setup.iface, setup.T, setup.seed, step_args
        )
        for r in rows:
            if r["steps"] in errs:
                r["strong_err"] = errs[r["steps"]]
                r["strong_ref"] = ref
        if len(errs) < 3:
            note = f"only {len(errs)} grids nested in one finer grid with its start and end"
        else:
            note = f"reference N={ref}; nested grids N={','.join(map(str, sorted(errs)))}"
            facts["strong_note"] = note
            return rows
    facts["strong_note"] = "not measured: " + note
    if strong:
        raise ValueError(f"{facts.get('sampler', 'this sampler')}: no strong order: {note}")
    return rows


def _strong_blocker(rows, grids, facts) -> str:
    why = _why_not_exact(facts)
    if why:
        return why
    many = [r for r in rows if r.get("max_draws", 0) > 1]
    if many:
        r = many[0]
        return f"noise drawn {r['max_draws']} times in one step (N={r['steps']}): no path"
    if len(grids) < 4:
        return "fewer than 4 runs with an exact law"
    _, inside = st.strong_plan(grids)
    if len(inside) < 3:
        return (
            "the step counts' grids are not nested with a common start and end (at most "
            f"{len(inside)} inside one finer grid)"
        )
    return ""


__all__ = ["ladder", "noise_facts", "rung"]
