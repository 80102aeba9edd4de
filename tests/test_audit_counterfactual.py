"""Counterfactual probes name the cause of each planted bug, and no wrong probe does.

``Fake`` extends the audit tests' ``FakeDDIMScheduler`` (test_audit.py) in the shape of a
diffusers scheduler: a ``previous_timestep()`` method (as DDPMScheduler has), a
``lower_order_final`` config entry (as the DPM-Solver family has) and, with ``lms_order``, an
LMS method in sigma_tilde whose coefficients come from ``get_lms_coefficient`` (as
LMSDiscreteScheduler's). Bugs (``bug=``) are planted where diffusers has each suspect:

- ``"float32-state"``: step() computes on the sample cast to float32 and casts back;
- ``"prev-rule"``: previous_timestep() returns t - T // N - 1, not the grid's next timestep;
- ``lower_order_final=True``: the final step of the multistep method is first-order;
- ``"rectangle-quadrature"``: the LMS coefficients are integrated by the left rectangle rule.

Each bug's audit is explained by every probe that applies; the cause the card names must be
the probe that removes exactly that bug, and the probes for the other causes must leave the
finding in place.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_audit import FakeDDIMScheduler

from odebench.audit import Claim
from odebench.audit import counterfactual as cf
from odebench.audit.causes import audit_explained, kind_of

D = torch.float64
STEPS = [10, 20, 40, 80]
AB2 = Claim(2, "fake: Adams-Bashforth 2 in sigma_tilde")
LMS2 = Claim(2, "fake: LMS order 2 in sigma_tilde")
DDIM = Claim(1, "fake: DDIM")


class Fake(FakeDDIMScheduler):
    """FakeDDIMScheduler with diffusers' places for the four suspects (module docstring)."""

    def __init__(self, lower_order_final=False, lms_order=0, **config):
        super().__init__(**config)
        self.lower_order_final, self.lms_order = bool(lower_order_final), int(lms_order)
        self.config = {**self.config, "lower_order_final": lower_order_final}
        self.config["lms_order"] = lms_order

    def set_timesteps(self, n: int):
        super().set_timesteps(n)
        acp = self.alphas_cumprod[self.timesteps].to(D)
        self.sigmas = torch.cat([((1 - acp) / acp).sqrt(), torch.zeros(1, dtype=D)])
        self.derivatives = []

    def _has(self, bug: str) -> bool:
        return bug in str(self.bug).split("+")  # "a+b": two bugs at once

    def _index(self, t) -> int:
        return int((self.timesteps == int(t)).nonzero()[0])

    def previous_timestep(self, timestep):
        if self._has("prev-rule"):
            return max(int(timestep) - self.T // self.n - 1, -1)
        k = self._index(timestep)
        return int(self.timesteps[k + 1]) if k + 1 < len(self.timesteps) else -1

    def get_lms_coefficient(self, order, t, current_order):
        def basis(tau):
            prod = 1.0
            for k in range(order):
                if k != current_order:
                    s_k = float(self.sigmas[t - k])
                    prod *= (tau - s_k) / (float(self.sigmas[t - current_order]) - s_k)
            return prod

        a, b = float(self.sigmas[t]), float(self.sigmas[t + 1])
        if self._has("rectangle-quadrature"):
            return (b - a) * basis(a)
        nodes, weights = np.polynomial.legendre.leggauss(4)  # exact for these degrees
        mid, half = (a + b) / 2, (b - a) / 2
        return half * float(
            sum(w * basis(mid + half * x) for x, w in zip(nodes, weights, strict=True))
        )

    def step(self, eps, t, x):
        dtype = x.dtype
        if self._has("float32-state"):
            x = x.to(torch.float32)
        k = self._index(t)
        last = k + 1 == len(self.timesteps)
        a, a_prev = self._abar(int(t)), self._abar(self.previous_timestep(t))
        s, s_prev = ((1 - a) / a).sqrt(), ((1 - a_prev) / a_prev).sqrt()
        if self.lms_order:
            self.derivatives.append(eps)
            order = min(k + 1, self.lms_order)
            coeffs = [self.get_lms_coefficient(order, k, j) for j in range(order)]
            rev = reversed(self.derivatives[-order:])
            x_tilde = x / a.sqrt() + sum(c * d for c, d in zip(coeffs, rev, strict=True))
        else:
            e = eps
            if self.multistep and self.history and not (last and self.lower_order_final):
                e_old, s_old = self.history[-1]
                e = eps + (s_prev - s) / (2 * (s - s_old)) * (eps - e_old)
            self.history.append((eps, s))
            x_tilde = x / a.sqrt() + (s_prev - s) * e
        return SimpleNamespace(prev_sample=(x_tilde * a_prev.sqrt()).to(dtype))


def explained(claim, probes=cf.PROBES, **config):
    return audit_explained(
        Fake, config, probes, steps=STEPS, n_samples=4, claim=claim, probe_steps=20
    )


def causes(report, kind: str) -> list:
    return [c for c in report.counterfactuals["causes"] if c.kind.name == kind]


def removers(cause) -> set[str]:
    return {a.name for a in cause.removed_by}


def test_probes_apply_only_where_their_cause_can_be():
    fake = Fake.from_config({"multistep": True})
    ctx = cf.Context(setup=None)
    assert cf.get("float64-tables").apply(fake, ctx) is None  # its tables are float64
    assert cf.get("solver-order-final").apply(Fake.from_config({}), ctx) is None
    assert cf.get("exact-call-times").apply(Fake.from_config({}), ctx) is None  # no gaps
    assert cf.get("exact-quadrature").apply(FakeDDIMScheduler.from_config({}), ctx) is None
    assert cf.get("next-grid-time").apply(FakeDDIMScheduler.from_config({}), ctx) is None
    flipped = cf.get("solver-order-final").apply(Fake.from_config({"lower_order_final": True}))
    assert flipped.lower_order_final is False and isinstance(flipped, Fake)
    with pytest.raises(ValueError, match="unknown counterfactual 'nope'"):
        cf.get("nope")


def test_exact_lms_coefficient_integrates_the_lagrange_basis():
    """The coefficients of three nodes integrate 1, tau and tau^2 exactly over the step."""
    sig = [3.0, 2.0, 1.2, 0.7]  # nodes sigmas[t - k] for t = 2, then sigmas[t + 1]
    c = [cf.exact_lms_coefficient(sig, 3, 2, j) for j in range(3)]
    nodes = [sig[2], sig[1], sig[0]]
    for p in range(3):
        exact = (sig[3] ** (p + 1) - sig[2] ** (p + 1)) / (p + 1)
        assert abs(sum(cj * x**p for cj, x in zip(c, nodes, strict=True)) - exact) < 1e-13


def test_float64_view_keeps_a_float64_state_and_restores_the_module():
    import test_audit_counterfactual as me

    fake = cf.get("float64-state").apply(Fake.from_config({"bug": "float32-state"}))
    fake.set_timesteps(10)
    x = torch.full((2, 2), 1.0 + 1e-12, dtype=D)
    out = fake.step(torch.zeros_like(x), fake.timesteps[0], x).prev_sample
    assert out.dtype == D and me.torch is torch  # the view is gone after the call
    ref = Fake.from_config({})
    ref.set_timesteps(10)
    assert torch.equal(out, ref.step(torch.zeros_like(x), ref.timesteps[0], x).prev_sample)


@pytest.fixture(scope="module")
def float32_state():
    return explained(DDIM, bug="float32-state")


@pytest.fixture(scope="module")
def prev_rule():
    return explained(DDIM, bug="prev-rule")


@pytest.fixture(scope="module")
def low_order_final():
    return explained(AB2, multistep=True, lower_order_final=True)


@pytest.fixture(scope="module")
def quadrature():
    return explained(LMS2, lms_order=2, bug="rectangle-quadrature")


def test_float32_state_is_removed_by_the_float64_state_only(float32_state):
    (cause,) = causes(float32_state, "float32 state")
    assert removers(cause) == {"float64-state"}
    finding = next(f for f in float32_state.findings if f.startswith("float32 state"))
    assert "with a float64 state: float32 rounding inside step()" in finding
    assert "-> " in finding and cause.before > 1e-2


def test_a_float32_finding_alone_reruns_the_facts_probe_not_the_ladder(float32_state):
    """The nonlinearity is measured by the facts probe (one run at probe_steps): a report
    whose only finding is of that kind reruns no rung of the ladder, and its study rows
    (no cf-ladder) rebuild the same annotated finding."""
    import pandas as pd

    from odebench.audit.causes import needs_ladder
    from odebench.kinds.audit import DROPPED, attempt_rows, reports

    assert not needs_ladder(float32_state)
    assert all(a.report.rows == [] for a in float32_state.counterfactuals["attempts"])
    rep = float32_state
    rows = [{"part": "ladder", **r} for r in rep.rows]
    rows.append({"part": "facts", **{k: v for k, v in rep.facts.items() if k not in DROPPED}})
    rows += attempt_rows(rep.counterfactuals["usable"], rep.counterfactuals["attempts"])
    cell = {"sampler": "Fake", "problem": "gaussian-lowrank", "schedule": "x", "seed": 0}
    (rebuilt,) = reports(pd.DataFrame([{**cell, **r} for r in rows]))
    assert rebuilt.findings == rep.findings


def assert_named(report, kinds, right: str, phrase: str, localises=()):
    """Every finding of ``kinds`` is removed by ``right`` first, by no other probe but the
    ``localises`` ones, and the card names its cause with ``phrase``."""
    found = [c for k in kinds for c in causes(report, k)]
    assert found
    for cause in found:
        assert cause.removed_by and cause.removed_by[0].name == right, cause.text()
        assert removers(cause) <= {right, *localises}, cause.text()
    assert any(phrase in f for f in report.findings)


def test_wrong_previous_timestep_rule_is_removed_by_the_grid_rule_only(prev_rule):
    kinds = ("time gap", "order", "floor")
    assert_named(prev_rule, kinds, "next-grid-time", "the previous-timestep rule")


def test_low_order_final_step_is_removed_by_the_solver_order_final(low_order_final):
    # the exact last step(s) remove it too: they localise the defect; the card names the
    # config switch that is its cause
    kinds = ("final step", "order")
    phrase = "lower-order final step"
    tail = ["exact-final-step", "exact-last-steps"]
    assert_named(low_order_final, kinds, "solver-order-final", phrase, tail)


def test_inexact_quadrature_is_removed_by_exact_coefficients_only(quadrature):
    assert_named(quadrature, ("order", "floor"), "exact-quadrature", "numerical quadrature")


def test_every_probe_that_applies_was_tried_and_is_on_the_card(prev_rule, quadrature):
    tried = dict(prev_rule.lines)["counterfactuals"]
    assert "next-grid-time" in tried and "float64-state" in tried
    assert "not applicable: float64-tables" in tried
    assert "exact-quadrature" in dict(quadrature.lines)["counterfactuals"]


def test_a_finding_no_probe_removes_says_what_was_tried():
    """A DDIM on a first-order claim of order 3: no probe lifts it, and the card says so with
    every probe's number and the combination of all of them."""
    tried = [cf.get("float64-state"), cf.get("exact-final-step")]
    report = explained(Claim(3, "fake: claims 3"), tried)
    (cause,) = causes(report, "order")
    assert not cause.removed_by
    text = cause.text()
    assert text.startswith("none of the probes removes it (order 0.9")
    assert "float64-state 0.9" in text and " + " in text  # the combination was tried
    assert all(math.isfinite(v) for _, v in cause.numbers)


def test_kinds_of_findings():
    assert kind_of("error floor 1.2e-04 at the finest N (x)").name == "floor"
    assert kind_of("does not converge: error 9.2e-04 at N=700").name == "floor"
    assert kind_of("order 1.27 below nominal 2 (y)").name == "order"
    assert kind_of("final step: its local error has order 1.51").name == "final step"
    assert kind_of("start scale: noise * init_noise_sigma") is None


def test_exact_steps_stack_and_step_by_the_exact_flow():
    """Warm-up and final step by the exact flow at once (each probe counts its own steps):
    the state after the first step and the output are the exact flow of the states they
    start from."""
    from odebench.audit.adapters import drive
    from odebench.audit.measure import prepare

    prep = prepare(Fake, {"multistep": True}, "gaussian-lowrank", "ddpm-linear-1000", 4, 0, AB2)
    s = prep.setup
    ctx = cf.Context(setup=s, nominal=2.0, ends={10: 0.0})
    both = cf.combine([cf.get("exact-warm-up"), cf.get("exact-final-step")], prep.factory, ctx)
    run = drive(both, 10, s.start, s.model, s.T, interface=s.iface)
    plain = drive(prep.factory, 10, s.start, s.model, s.T, interface=s.iface)
    t1, t_last = run.calls[1].t, run.calls[-1].t
    assert torch.allclose(run.inputs[1], s.flow(run.x_start, 1.0, t1), atol=1e-12)
    assert torch.allclose(run.x_vp, s.flow(run.inputs[-1], t_last, 0.0), atol=1e-12)
    assert float((run.inputs[1] - plain.inputs[1]).abs().max()) > 1e-5  # Euler is not exact
    assert float((run.x_vp - plain.x_vp).abs().max()) > 1e-4


def test_the_audit_study_rebuilds_the_causes_from_its_table(quadrature, low_order_final):
    """The "audit" kind stores each attempt's ladder and facts as rows; its reports() gives
    the same annotated findings as the run that made them."""
    import pandas as pd

    from odebench.kinds.audit import DROPPED, attempt_rows, reports

    frames = []
    for k, rep in enumerate((quadrature, low_order_final)):
        rows = [{"part": "ladder", **r} for r in rep.rows]
        rows.append({"part": "facts", **{k: v for k, v in rep.facts.items() if k not in DROPPED}})
        rows += attempt_rows(rep.counterfactuals["usable"], rep.counterfactuals["attempts"])
        cell = {"sampler": f"Fake{k}", "problem": "gaussian-lowrank", "schedule": "x", "seed": 0}
        frames.append(pd.DataFrame([{**cell, **r} for r in rows]))
    rebuilt = reports(pd.concat(frames, ignore_index=True))
    assert [r.findings for r in rebuilt] == [quadrature.findings, low_order_final.findings]
    assert dict(rebuilt[0].lines)["counterfactuals"] == dict(quadrature.lines)["counterfactuals"]
    assert any("counterfactual: " in f for f in rebuilt[1].findings)


def test_a_combination_that_removes_a_finding_is_named_as_one():
    from odebench.audit.causes import KINDS, Attempt, Cause

    both = Attempt((cf.get("float64-tables"), cf.get("exact-last-steps")), None)
    floor = next(k for k in KINDS if k.name == "floor")
    cause = Cause("error floor 2.5e-04 at the finest N", floor, 2.5e-4, [both], [(both, 9.1e-6)])
    assert cause.text() == (
        "error floor 2.5e-04 -> 9.1e-06 with float64 tables + every step below t = 0.1 by the "
        "exact flow together (float64-tables + exact-last-steps; no single probe removes it: "
        "float64-tables -, exact-last-steps - alone)"
    )


def test_a_defect_of_two_bugs_together_is_narrowed_to_those_two():
    """Fake LMS 2 with two bugs: a previous-timestep rule off the grid and rectangle-rule
    coefficients. Removing either leaves the other's error (no single probe removes the
    finding); all applicable probes together do, and dropping probes while the rest still
    removes it leaves exactly the two probes of the two bugs."""
    report = explained(LMS2, lms_order=2, bug="prev-rule+rectangle-quadrature")
    (cause,) = [c for c in causes(report, "floor") if c.finding.startswith("does not converge")]
    assert not any(len(a.probes) == 1 for a in cause.removed_by)
    best = min(cause.removed_by, key=lambda a: len(a.probes))
    assert {p.name for p in best.probes} == {"next-grid-time", "exact-quadrature"}
    text = cause.text()
    assert "with steps to the grid's next time + exact LMS coefficients together" in text
    assert "no single probe removes it: next-grid-time" in text


def _final_step_report(t_before: float, t_end: float, defect: float, findings=()):
    from odebench.audit.card import AuditReport

    row = {"status": "ok", "steps": 700, "err_ode": 1e-3, "final_defect": defect}
    row.update(t_before_final=t_before, t_end=t_end)
    return AuditReport("x", [row], {}, {}, "v", list(findings))


def test_an_exact_last_step_that_moves_the_states_only_localises_a_final_step():
    """DPMSolverMultistep with flow sigmas (audit_flow): the steps below t = 0.1 by the exact
    flow lower its final step's defect 2.2e-3 -> 9.3e-6, but its state entering the last
    step moves from t = 0.000368 to the scheduler's own sigma 0.00142: the defect is then
    another step's, measured against itself, so the probe localises, never removes it. The
    same numbers with the state left where it was, or from a probe that changes the
    scheduler's arithmetic (not the exact flow), count as removed."""
    from odebench.audit.causes import KINDS, Attempt, Cause, _score, moved_last_step, removes

    final = next(k for k in KINDS if k.name == "final step")
    before = _final_step_report(0.000368, 0.000157, 2.2e-3, ["final step: order 0.75"])
    moved = _final_step_report(0.001421, 0.0, 9.3e-6)
    kept = _final_step_report(0.000368, 0.0, 9.3e-6)
    assert moved_last_step(before, moved) == (0.000368, 0.001421)
    assert moved_last_step(before, kept) is None
    assert not removes(final, before, moved, steps_by_flow=True)
    assert removes(final, before, kept, steps_by_flow=True)
    assert removes(final, before, moved, steps_by_flow=False)
    # the card: none removes it, and it says which probe lowered it by moving the state
    tail = Attempt((cf.get("exact-last-steps"),), moved)
    cause = Cause(before.findings[0], final, 2.2e-3)
    _score(cause, before, tail)
    assert not cause.removed_by
    text = cause.text()
    assert text.startswith("none of the probes removes it (final step's defect")
    assert "exact-last-steps lowers it only by moving the state entering the last step" in text
    assert "from t = 0.000368 to t = 0.00142" in text
