"""The audit on real diffusers schedulers: what it finds there (small ladders, float64)."""

import pytest

pytest.importorskip("diffusers")

from odebench.audit import audit

SMALL = [10, 20, 25, 30, 40, 50, 70]


def test_ddim_trailing_calls_the_model_off_its_state_when_n_does_not_divide_t():
    """DDIMScheduler's prev_timestep = t - T // N assumes N | T; on "trailing" timesteps with
    N = 30 or 70 the next call is one index or more away from where the step went."""
    rep = audit(
        "diffusers:DDIMScheduler",
        {"timestep_spacing": "trailing", "clip_sample": False},
        steps=SMALL,
        n_samples=8,
        probe_steps=20,
    )
    gaps = {r["steps"]: r["max_gap"] for r in rep.rows}
    assert gaps[30] >= 1.0 and gaps[70] >= 1.0
    assert all(gaps[n] < 0.02 for n in (10, 20, 25, 40, 50))
    assert any(f.startswith("time gap: model called at") for f in rep.findings)
    assert rep.facts["linearity_defect"] < 1e-3  # DDIM keeps the float64 state
    assert any(f.startswith("float32 table") for f in rep.findings)


def test_pndm_defaults_start_below_one_and_end_at_abar0():
    rep = audit(
        "diffusers:PNDMScheduler",
        {"skip_prk_steps": True},
        steps=SMALL,
        n_samples=8,
        probe_steps=20,
    )
    assert {r["t_end"] for r in rep.rows} == {0.001}  # set_alpha_to_one=False
    assert min(r["t_start"] for r in rep.rows) < 0.95  # "leading": 901 at N=10
    assert any(f.startswith("end time t=0.001 (not data)") for f in rep.findings)
    assert any(f.startswith("start time t=0.901 (not 1) at N=10") for f in rep.findings)
    assert [r["nfe"] - r["steps"] for r in rep.rows] == [1] * len(SMALL)  # PLMS: N + 1


def test_dpm_solver_rounds_its_state_to_float32():
    rep = audit(
        "diffusers:DPMSolverMultistepScheduler", {}, steps=[10, 20, 40], n_samples=8, probe_steps=20
    )
    assert rep.facts["linearity_defect"] > 1e-2
    assert any(f.startswith("float32 state") for f in rep.findings)
    assert {r["t_end"] for r in rep.rows} == {0.0}


def test_euler_is_driven_in_its_sigma_scaled_variable():
    """Euler in sigma with eps prediction is DDIM (Euler in sigma_tilde): on the same integer
    timesteps the two agree once the state is mapped back to VP."""
    cfg = {"timestep_spacing": "trailing"}
    euler = audit(
        "diffusers:EulerDiscreteScheduler", cfg, steps=[10, 20, 40], n_samples=8, probe_steps=20
    )
    ddim = audit(
        "diffusers:DDIMScheduler",
        {**cfg, "clip_sample": False},
        steps=[10, 20, 40],
        n_samples=8,
        probe_steps=20,
    )
    assert euler.facts["state_kind"] == "sigma-scaled"
    for a, b in zip(euler.rows, ddim.rows, strict=True):
        assert a["err_ode"] == pytest.approx(b["err_ode"], rel=1e-3)
