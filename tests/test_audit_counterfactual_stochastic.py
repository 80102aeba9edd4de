"""Counterfactual probes on diffusers' stochastic samplers: each finding of a stochastic card
is rerun on its weak ladder (exact output laws) with one suspected cause removed, and named
by the probe that removes it and by no other (small ladders; diffusers needed)."""

import math

import pytest

pytest.importorskip("diffusers")

from odebench.audit import stochastic as st
from odebench.audit.card import AuditReport
from odebench.audit.causes import KINDS, audit_explained, kind_of, removes
from odebench.audit.counterfactual import get


def causes(report, kind: str) -> list:
    return [c for c in report.counterfactuals["causes"] if c.kind.name == kind]


@pytest.fixture(scope="module")
def ddim_trailing():
    """DDIM with eta = 1 on trailing timesteps: prev_timestep = t - T // N is off the grid
    when N does not divide 1000 (N = 30, 70), the same rule bug as at eta = 0."""
    config = {"clip_sample": False, "eta": 1.0, "timestep_spacing": "trailing"}
    return audit_explained(
        "diffusers:DDIMScheduler", config, steps=[10, 20, 30, 70], n_samples=4, probe_steps=10
    )


def test_a_stochastic_time_gap_is_removed_by_the_grid_rule_only(ddim_trailing):
    (gap,) = causes(ddim_trailing, "time gap")
    assert {a.name for a in gap.removed_by} == {"next-grid-time"}
    after = dict((a.name, v) for a, v in gap.numbers)
    assert gap.before > 1.0 and after["next-grid-time"] < 0.02
    assert after["float64-state"] > 1.0 and after["float64-tables"] > 1.0
    assert any("with steps to the grid's next time" in f for f in ddim_trailing.findings)


def test_ode_only_probes_are_not_tried_on_a_stochastic_sampler(ddim_trailing):
    tried = dict(ddim_trailing.lines)["counterfactuals"].split(";")[0]
    for name in ("exact-final-step", "exact-last-steps", "exact-call-times"):
        assert name not in tried
    # every rerun is a stochastic card (weak ladder), not an ODE one
    for attempt in ddim_trailing.counterfactuals["attempts"]:
        assert attempt.report is not None and attempt.report.facts.get("stochastic")
        assert all(r["status"] == "ok" for r in attempt.report.rows), attempt.name


def test_every_probe_keeps_the_seeded_noise(ddim_trailing):
    """A probe's step() declares its base's signature, so the pipeline loop passes it the
    seeded generator: its facts repeat (seeded_diff 0) instead of drawing from torch's global
    generator (whose state depends on what ran before in the process)."""
    assert ddim_trailing.facts["seeded_diff"] == 0.0
    for attempt in ddim_trailing.counterfactuals["attempts"]:
        assert attempt.report.facts.get("takes_generator"), attempt.name
        assert attempt.report.facts["seeded_diff"] == 0.0, attempt.name


def test_a_stochastic_float32_state_is_removed_by_a_float64_state_only():
    rep = audit_explained(
        "diffusers:EulerAncestralDiscreteScheduler",
        None,
        steps=[10, 20, 30],
        n_samples=4,
        probe_steps=10,
    )
    (state,) = causes(rep, "float32 state")
    assert {a.name for a in state.removed_by} == {"float64-state"}
    (table,) = causes(rep, "float32 table")
    assert {a.name for a in table.removed_by} == {"float64-tables"}


def test_a_weak_floor_is_its_own_kind_measured_by_w2():
    floor = next(k for k in KINDS if k.name == "weak floor")
    text = "does not converge weakly: W2 stops falling at 1.9e-01 (N=250..700), 6x the floor"
    assert kind_of(text) is floor
    assert kind_of("weak error does not converge: W2 1.3e-01 at N=700, 9x its minimum") is floor
    assert kind_of("does not converge: error floor 1.1e-04 from N=70").name == "floor"

    def report(w2: float, finding: str = "") -> AuditReport:
        rows = [{"status": "ok", "steps": n, "weak_w2": w2} for n in (250, 500, 700)]
        return AuditReport("x", rows, {"stochastic": True}, {}, "v", [finding] if finding else [])

    clipped = report(0.19, text)
    assert floor.value(clipped) == 0.19
    assert removes(floor, clipped, report(7.2e-3))  # 26x lower, finding gone
    assert not removes(floor, clipped, report(0.05))  # 4x only
    assert not removes(floor, clipped, report(7.2e-3, text))  # the finding is still there
    assert math.isnan(floor.value(report(math.nan)))


def test_a_probe_subclass_draws_its_noise_where_its_base_class_does():
    import diffusers

    sch = diffusers.DDIMScheduler()
    module = st.noise_module(type(sch))
    assert module is not None
    wrapped = get("next-grid-time").apply(sch, None)  # DDIM's rule: a step() of its own
    assert "step" in type(wrapped).__dict__
    assert type(wrapped).step.__module__ == "odebench.audit.counterfactual"
    assert st.noise_module(type(wrapped)) is module

    class Elsewhere(diffusers.DDIMScheduler):  # a user's own step(): not the base's noise
        def step(self, *args, **kwargs):
            return super().step(*args, **kwargs)

    assert st.noise_module(Elsewhere) is None


def test_a_perturbation_rounded_away_counts_as_removed_by_a_finite_defect():
    """SDE-DPM-Solver++ 1 (audit_stochastic): its float32 state rounds a 1e-9 change of x_T
    away entirely (nonlinearity inf); a float64 state gives 6.4e-5, which removes it."""
    from odebench.audit.causes import Attempt, Cause, _score

    state = next(k for k in KINDS if k.name == "float32 state")
    finding = "float32 state: step() rounds the sample to float32 (nonlinear by inf)"

    def report(defect: float, findings=()) -> AuditReport:
        rows = [{"status": "ok", "steps": 50}]
        return AuditReport("x", rows, {"linearity_defect": defect}, {}, "v", list(findings))

    before = report(math.inf, [finding])
    assert removes(state, before, report(6.4e-5))
    assert not removes(state, before, report(math.inf))
    assert not removes(state, before, report(math.nan))
    cause = Cause(finding, state, math.inf)
    _score(cause, before, Attempt((get("float64-state"),), report(6.4e-5)))
    assert cause.text().startswith("nonlinearity inf -> 6.4e-05 with a float64 state")


def test_stochastic_scripts_run_without_odebench_and_show_their_fix(ddim_trailing, tmp_path):
    """The scripts of DDIM eta = 1 on trailing timesteps: the time gap read off the exact
    law of designed noise rows is the card's (N = 30: > 1 table step) and 0 with the grid's
    next time; only torch, numpy, diffusers and the standard library are imported. (Every
    committed script's run, weak floors included: test_audit_repro_runs.)"""
    from test_audit_repro import ALLOWED, before_after, imports, run_isolated

    from odebench.audit.repro import write_scripts

    paths = {p.name: p for p in write_scripts([ddim_trailing], tmp_path / "repro")}
    gap = next(p for n, p in paths.items() if n.endswith("__time_gap.py"))
    assert imports(gap.read_text()) <= ALLOWED
    card = next(c for c in causes(ddim_trailing, "time gap")).before
    before, after = before_after(run_isolated(gap, "10,30,70", tmp_path))
    assert before == pytest.approx(card, rel=1e-3) and after < 1e-2


def test_a_float64_state_that_rounds_the_response_away_says_the_test_cannot_judge():
    """FlowMatchEuler with stochastic_sampling (audit_flow): re-noising the x0 prediction at
    every step makes the output forget x_T, so even a float64 state rounds a 1e-9 change of
    the start away (inf). The card says the test cannot judge the precision there."""
    from odebench.audit.causes import Attempt, Cause, _score

    state = next(k for k in KINDS if k.name == "float32 state")

    def report(defect: float) -> AuditReport:
        facts = {"linearity_defect": defect}
        return AuditReport("x", [{"status": "ok", "steps": 50}], facts, {}, "v", [])

    cause = Cause("float32 state: step() rounds the sample to float32", state, 0.87)
    _score(cause, report(0.87), Attempt((get("float64-state"),), report(math.inf)))
    assert not cause.removed_by
    assert "float64-state inf" in cause.text()
    assert "the output does not depend on x_T at this precision" in cause.text()
