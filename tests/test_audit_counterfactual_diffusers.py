"""The counterfactual probes on real diffusers schedulers: each changes what it says, and
only that (one set_timesteps / step each: fast)."""

import pytest

pytest.importorskip("diffusers")

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, LMSDiscreteScheduler

from odebench.audit import counterfactual as cf

D = torch.float64
TABLE = {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02}


def test_next_grid_time_makes_ddim_step_to_the_next_trailing_timestep():
    """DDIM with eps = 0 scales x by sqrt(abar_prev / abar_t): the abar it steps to, at the
    first step of a trailing grid (N = 30) whose gap is not T // N."""

    def make():
        sch = DDIMScheduler(timestep_spacing="trailing", clip_sample=False, **TABLE)
        sch.set_timesteps(30)
        return sch

    times = [int(t) for t in make().timesteps]
    k = next(j for j in range(len(times) - 1) if times[j] - times[j + 1] != 1000 // 30)
    acp = make().alphas_cumprod.double()

    def abar_reached(sch):
        x = torch.ones(1, 2, dtype=D)
        out = sch.step(torch.zeros_like(x), sch.timesteps[k], x).prev_sample
        return float(out[0, 0]) ** 2 * float(acp[times[k]])

    probed = cf.get("next-grid-time").apply(make())
    assert abs(abar_reached(probed) - float(acp[times[k + 1]])) < 1e-6
    assert abs(abar_reached(make()) - float(acp[times[k] - 1000 // 30])) < 1e-6
    assert probed.config.num_train_timesteps == 1000  # the config is restored after step()


def test_exact_quadrature_agrees_with_lms_quad_where_that_is_accurate():
    sch = LMSDiscreteScheduler(**TABLE)
    sch.set_timesteps(20)
    for order, t in ((2, 5), (3, 8), (4, 12)):
        for j in range(order):
            ours = cf.exact_lms_coefficient(sch.sigmas, order, t, j)
            assert ours == pytest.approx(sch.get_lms_coefficient(order, t, j), rel=1e-4)
    probed = cf.get("exact-quadrature").apply(LMSDiscreteScheduler(**TABLE))
    probed.set_timesteps(20)
    assert probed.get_lms_coefficient(4, 12, 1) == cf.exact_lms_coefficient(sch.sigmas, 4, 12, 1)


def test_float64_tables_and_state_on_dpm_solver():
    import diffusers.schedulers.scheduling_dpmsolver_multistep as module

    tables = cf.get("float64-tables").apply(DPMSolverMultistepScheduler(**TABLE))
    tables.set_timesteps(10)
    assert tables.alphas_cumprod.dtype == D and tables.sigmas.dtype == D
    assert module.torch is torch and module.np is np  # the view ends with the call
    state = cf.get("float64-state").apply(DPMSolverMultistepScheduler(**TABLE))
    state.set_timesteps(10)
    assert state.sigmas.dtype == torch.float32  # tables as built
    x = torch.randn(2, 3, dtype=D, generator=torch.Generator().manual_seed(0))

    def homogeneity(sch) -> float:
        """|step(3 x) - 3 step(x)| for eps = 0 (a linear map of x: 0 up to round-off)."""
        sch.set_timesteps(10)
        t0 = sch.timesteps[0]
        one = sch.step(torch.zeros_like(x), t0, x).prev_sample
        sch.set_timesteps(10)
        three = sch.step(torch.zeros_like(x), t0, 3 * x).prev_sample
        assert one.dtype == D
        return float((three - 3 * one).abs().max())

    assert homogeneity(state) < 1e-12  # float64 through step()
    assert homogeneity(DPMSolverMultistepScheduler(**TABLE)) > 1e-8  # rounded to float32


def test_the_audit_study_cell_with_counterfactuals_names_ddims_rule():
    """An "audit" study cell with ``counterfactuals = true``: DDIM on trailing timesteps
    (N = 30, 70 do not divide 1000) has its time gap named by the previous-timestep rule,
    and the cost estimate counts the reruns."""
    from _helpers import cell_config, cell_table

    from odebench.kinds.audit import audit_cost, reports, run_cell

    sampler = 'DDIMScheduler {"clip_sample": false, "timestep_spacing": "trailing"}'
    config = cell_config("audit", sampler=sampler, steps=[10, 30, 70], n_samples=4, probe_steps=10)
    config["counterfactuals"] = True
    rows = run_cell(config)
    parts = {r["part"] for r in rows}
    assert {"ladder", "facts", "cf-tried", "cf-ladder", "cf-facts"} <= parts
    (report,) = reports(cell_table(rows, config))
    gap = next(f for f in report.findings if f.startswith("time gap"))
    assert "with steps to the grid's next time: the previous-timestep rule" in gap
    assert "next-grid-time" in dict(report.lines)["counterfactuals"]
    plain = audit_cost({**config, "counterfactuals": False}).seconds
    # the main run, one per probe, one of all, and at most len(PROBES) - 1 while narrowing
    assert audit_cost(config).seconds == pytest.approx(plain * (1 + 2 * len(cf.PROBES)))


def test_exact_last_steps_of_a_karras_lms_start_at_its_own_sigma():
    """On Karras sigmas the timestep LMS passes is interpolated from its sigma; the exact
    last steps start at the time of the sigma the state is at, and end at data."""
    from odebench.audit.adapters import drive
    from odebench.audit.measure import prepare
    from odebench.audit.probes import times_of_sigma_tilde

    prep = prepare(
        "diffusers:LMSDiscreteScheduler",
        {"use_karras_sigmas": True},
        "gaussian-lowrank",
        "ddpm-linear-1000",
        4,
        0,
    )
    s = prep.setup
    ctx = cf.Context(setup=s, nominal=4.0, state_kind="sigma-scaled", ends={25: 0.0})
    probed = cf.combine([cf.get("exact-last-steps")], prep.factory, ctx)
    run = drive(probed, 25, s.start, s.model, s.T, interface=s.iface)
    sch = prep.factory()
    sch.set_timesteps(25)
    times = times_of_sigma_tilde(s.sched, [float(v) for v in sch.sigmas[:-1]])
    k = next(j for j, t in enumerate(times) if t <= cf.TAIL)  # the first state replaced
    assert abs(times[k] - run.calls[k].t) > 1e-6  # the timestep's time is not the sigma's
    exact = s.flow(run.inputs[k], times[k], 0.0)
    assert float((run.x_vp - exact).abs().max()) < 1e-6 * float(exact.abs().max())


def test_taylor_3m_makes_dpm_solver_3m_exact_for_a_quadratic_model_output():
    """x0(lambda) = a + b lambda + c lambda^2: the exponential integrator's exact step is
    alpha_t [(1 - e^-h) m + (h - 1 + e^-h) m' + (h^2/2 - h + 1 - e^-h) m''] (+ sigma_t /
    sigma_s x). The probe's 3M step gives it to float32 round-off; diffusers' misses by its
    half-weighted third-order term, alpha_t phi_3 h^2 m'' / 2 (order 2)."""
    import math

    def step(sch):
        sch.set_timesteps(10)
        sch._step_index = 5
        lam = []
        for k in range(4):
            a, s = sch._sigma_to_alpha_sigma_t(sch.sigmas[6 - k].double())
            lam.append(float(torch.log(a) - torch.log(s)))
        m = [torch.full((1, 2), 0.3 + 0.2 * v + 0.1 * v * v, dtype=D) for v in lam[1:]]
        x = torch.ones(1, 2, dtype=D)
        out = sch.multistep_dpm_solver_third_order_update(m[::-1], sample=x)
        a_t, s_t = (float(v) for v in sch._sigma_to_alpha_sigma_t(sch.sigmas[6].double()))
        _, s_s = (float(v) for v in sch._sigma_to_alpha_sigma_t(sch.sigmas[5].double()))
        h, ls = lam[0] - lam[1], lam[1]
        m0, m1, m2 = 0.3 + 0.2 * ls + 0.1 * ls * ls, 0.2 + 0.2 * ls, 0.2
        e = math.exp(-h)
        exact = s_t / s_s + a_t * ((1 - e) * m0 + (h - 1 + e) * m1 + (h * h / 2 - h + 1 - e) * m2)
        return float(out[0, 0]) - exact

    config = {**TABLE, "solver_order": 3}
    assert abs(step(cf.get("taylor-3m").apply(DPMSolverMultistepScheduler(**config)))) < 2e-6
    assert abs(step(DPMSolverMultistepScheduler(**config))) > 1e-4
    assert cf.get("taylor-3m").apply(DPMSolverMultistepScheduler(**TABLE)) is None  # order 2


def test_exact_final_step_of_flow_match_heun_starts_at_its_last_sigma():
    """FlowMatchHeun (two stages a step; shift 3) ends with one Euler call from its smallest
    sigma to 0: the exact final step replaces that call only, by the exact flow from the
    state at that sigma (t = sigma on the flow path); the second stages keep their
    predictors."""
    from odebench.audit.adapters import drive
    from odebench.audit.measure import prepare

    prep = prepare(
        "diffusers:FlowMatchHeunDiscreteScheduler",
        {"shift": 3.0},
        "gaussian-lowrank",
        "ddpm-linear-1000",
        4,
        0,
    )
    s = prep.setup
    ctx = cf.Context(setup=s, nominal=2.0, state_kind="flow", ends={12: 0.0}, multistage=True)
    probed = cf.combine([cf.get("exact-final-step")], prep.factory, ctx)
    run = drive(probed, 12, s.start, s.model, s.T, interface=s.iface)
    plain = drive(prep.factory, 12, s.start, s.model, s.T, interface=s.iface)
    sch = prep.factory()
    sch.set_timesteps(12)
    t_last = float(sch.sigmas[-2])
    assert run.calls[-1].t == pytest.approx(t_last, rel=1e-5)
    assert torch.equal(run.inputs[-1], plain.inputs[-1])  # every call before is the plain one
    exact = s.flow(run.inputs[-1], t_last, 0.0)
    assert float((run.x_vp - exact).abs().max()) < 1e-6
    assert float((plain.x_vp - exact).abs().max()) > 1e-4  # diffusers' last Euler step


def test_exact_last_steps_of_a_singlestep_solver_start_at_a_group():
    """DPM-Solver singlestep order 3 runs groups of sub-steps of orders 1, 2, 3 from the
    group's first state; the states inside a group are intermediates: the exact last steps
    start at the first group (order_list 1) whose state is at t <= 0.1."""
    from odebench.audit.adapters import drive
    from odebench.audit.measure import prepare

    prep = prepare(
        "diffusers:DPMSolverSinglestepScheduler",
        {"solver_order": 3},
        "gaussian-lowrank",
        "ddpm-linear-1000",
        4,
        0,
    )
    s = prep.setup
    ctx = cf.Context(setup=s, nominal=3.0, ends={61: 0.0})
    probed = cf.combine([cf.get("exact-last-steps")], prep.factory, ctx)
    run = drive(probed, 61, s.start, s.model, s.T, interface=s.iface)
    plain = drive(prep.factory, 61, s.start, s.model, s.T, interface=s.iface)
    sch = prep.factory()
    sch.set_timesteps(61)
    times = [c.t for c in plain.calls]
    below = [k for k, t in enumerate(times) if t <= cf.TAIL]
    first = next(k for k in below if sch.order_list[k] == 1)
    assert first > below[0]  # the first state below 0.1 is inside a group
    assert torch.equal(run.inputs[first], plain.inputs[first])
    exact = s.flow(run.inputs[first], times[first], times[first + 1])
    assert torch.allclose(run.inputs[first + 1], exact, atol=1e-10)


def test_no_clipping_switches_ddims_clip_sample_off_and_only_where_it_is_on():
    probed = cf.get("no-clipping").apply(DDIMScheduler(**TABLE))
    assert isinstance(probed, DDIMScheduler) and probed.config.clip_sample is False
    assert cf.get("no-clipping").apply(DDIMScheduler(clip_sample=False, **TABLE)) is None


def test_exact_final_step_of_pndm_is_its_last_step_that_moves():
    """PLMS with set_alpha_to_one false (PNDM's default) calls the network last at t = 0.001
    and steps from there to the same t = 0.001: the exact final step is the step before,
    from the state at t = 0.003 (N = 500) to the end time."""
    from odebench.audit.adapters import drive
    from odebench.audit.measure import prepare

    prep = prepare(
        "diffusers:PNDMScheduler",
        {"skip_prk_steps": True},
        "gaussian-lowrank",
        "ddpm-linear-1000",
        4,
        0,
    )
    s = prep.setup
    ctx = cf.Context(setup=s, nominal=2.0, ends={500: 0.001}, multistage=True)
    probed = cf.combine([cf.get("exact-final-step")], prep.factory, ctx)
    run = drive(probed, 500, s.start, s.model, s.T, interface=s.iface)
    plain = drive(prep.factory, 500, s.start, s.model, s.T, interface=s.iface)
    t_prev = run.calls[-2].t
    assert run.calls[-1].t == pytest.approx(0.001) and t_prev > 0.0015
    assert torch.equal(run.inputs[-2], plain.inputs[-2])
    exact = s.flow(run.inputs[-2], t_prev, 0.001)
    assert float((run.x_vp - exact).abs().max()) < 1e-6
    assert float((plain.x_vp - exact).abs().max()) > 1e-7
