"""The audit on diffusers' stochastic samplers: noise control, exact output laws, weak and
strong orders, and the cards that classify them (small ladders; diffusers needed)."""

import math

import pytest
import torch

pytest.importorskip("diffusers")

from odebench.audit import audit
from odebench.audit import stochastic as st
from odebench.audit.adapters import base_config, drive, make_factory, resolve, step_kwargs
from odebench.audit.interfaces import choose
from odebench.audit.measure import Setup

TABLE = "ddpm-linear-1000"


def _setup(name: str, config: dict, n: int = 8):
    cls = resolve(name)
    factory = make_factory(cls, {**base_config(TABLE), **config})
    iface = choose(cls, dict(factory().config), TABLE)
    return cls, factory, Setup("gaussian-lowrank", TABLE, n, 0, iface)


def _law(factory, setup, steps, step_args=None):
    return st.exact_law(
        factory, steps, setup.prob, setup.sched, setup.model, setup.iface, 1000, step_args
    )


@pytest.mark.parametrize(
    "name, config",
    [
        ("DDPMScheduler", {"clip_sample": False}),
        ("EulerAncestralDiscreteScheduler", {}),
        ("DDIMScheduler", {"clip_sample": False, "eta": 0.7}),
    ],
)
def test_exact_law_is_the_law_of_the_randomised_scheduler(name, config):
    """2e4 runs of the real scheduler (its own seeded noise): sample mean and covariance lie
    within Monte Carlo error of the exact law from one designed batch."""
    cls, factory, setup = _setup(name, {k: v for k, v in config.items() if k != "eta"}, 20000)
    args = step_kwargs(cls, config)
    law = _law(factory, setup, 10, args)
    assert law.ok and law.draws in (9, 10)
    out = drive(
        factory,
        10,
        setup.start,
        setup.model,
        keep_inputs=False,
        interface=setup.iface,
        step_args=args,
        seed=5,
    ).x_vp
    n = out.shape[0]
    cov = law.factor @ law.factor.T
    z_mean = (out.mean(0) - law.mean) / (cov.diag() / n).sqrt()
    se = ((cov.diag()[:, None] * cov.diag()[None, :] + cov**2) / n).sqrt()
    z_cov = (torch.cov(out.T) - cov) / se
    assert float(z_mean.abs().max()) < 4.5
    assert float(z_cov.abs().max()) < 5.0
    # and the law is not the data's: the scheme's error at N = 10 is far above MC error
    _, f0 = st.marginal(setup.prob, setup.sched, 0.0)
    assert float(((cov - f0 @ f0.T) / se).abs().max()) > 20.0


def test_ddim_with_eta_one_has_the_law_of_ddpm():
    """DDIM's eta = 1 variance is DDPM's posterior variance (Song et al. 2021, eq. 16): on the
    same ("leading") timesteps the two exact laws coincide."""
    _, ddpm, setup = _setup("DDPMScheduler", {"clip_sample": False})
    _, ddim, _ = _setup("DDIMScheduler", {"clip_sample": False})
    a, b = _law(ddpm, setup, 20), _law(ddim, setup, 20, {"eta": 1.0})
    assert a.draws == 19 and b.draws == 20  # DDIM draws at its last step too (times 0)
    assert torch.allclose(a.mean, b.mean, atol=1e-6)
    assert torch.allclose(a.factor @ a.factor.T, b.factor @ b.factor.T, atol=1e-6)
    c = _law(ddim, setup, 20, {"eta": 0.5})
    assert not torch.allclose(a.factor @ a.factor.T, c.factor @ c.factor.T, atol=1e-3)


def test_eta_zero_is_the_ode_sampler_bit_for_bit_and_bad_eta_is_one_line():
    cls, factory, setup = _setup("DDIMScheduler", {"clip_sample": False})
    plain = drive(factory, 20, setup.start, setup.model, interface=setup.iface)
    zero = drive(
        factory, 20, setup.start, setup.model, interface=setup.iface, step_args={"eta": 0.0}
    )
    assert torch.equal(plain.x_vp, zero.x_vp)
    with pytest.raises(ValueError, match="eta must be a number >= 0"):
        step_kwargs(cls, {"eta": -0.1})
    with pytest.raises(ValueError, match=r"DDPMScheduler.step\(\) takes no 'eta'"):
        step_kwargs(resolve("DDPMScheduler"), {"eta": 1.0})


def test_a_seeded_generator_reproduces_a_run():
    _, factory, setup = _setup("EulerAncestralDiscreteScheduler", {})

    def run(seed):
        return drive(factory, 10, setup.start, setup.model, interface=setup.iface, seed=seed).x_vp

    assert torch.equal(run(3), run(3))
    assert not torch.allclose(run(3), run(4))


def test_clipping_leaves_no_exact_law():
    """DDPMScheduler's default clip_sample=True is not affine: the designed batch's check row
    (a random start and random draws) departs from the affine prediction."""
    _, factory, setup = _setup("DDPMScheduler", {})
    law = _law(factory, setup, 40)
    assert law.status.startswith("not affine")


def test_ddpm_card_is_stochastic_with_a_converging_weak_order_and_no_time_gaps():
    rep = audit(
        "diffusers:DDPMScheduler",
        {"clip_sample": False},
        steps=[20, 40, 80, 160],
        n_samples=8,
        probe_steps=20,
    )
    weak = rep.fits["weak"]
    assert rep.facts["stochastic"] and rep.facts["seeded_diff"] == 0.0
    assert weak.ok and 0.7 < weak.slope < 1.2 and weak.ci_low > 0.3
    card = rep.card()
    assert "stochastic (SDE sampler)" in card and "weak order" in card
    assert not any(f.startswith(("time gap", "does not converge")) for f in rep.findings)
    assert all(r["t_end"] == 0.0 for r in rep.rows)
    assert "not measured: the step counts' grids are not nested" in rep.facts["strong_note"]
    with pytest.raises(ValueError, match="no strong order: the step counts' grids"):
        audit(
            "diffusers:DDPMScheduler",
            {"clip_sample": False},
            steps=[20, 40, 80, 160],
            n_samples=4,
            probe_steps=20,
            strong=True,
        )


def test_euler_ancestral_card_and_strong_order_on_nested_trailing_grids():
    rep = audit(
        "diffusers:EulerAncestralDiscreteScheduler",
        {"timestep_spacing": "trailing"},
        steps=[10, 20, 40, 50, 100, 200],
        n_samples=16,
        probe_steps=20,
        strong=True,
    )
    weak, strong = rep.fits["weak"], rep.fits["strong"]
    assert weak.ok and 0.6 < weak.slope < 1.2
    assert strong.ok and strong.slope > 0.4
    assert {r.get("strong_ref") for r in rep.rows if math.isfinite(r["strong_err"])} == {200}
    assert rep.summary()["class"] == "stochastic"


def test_strong_order_is_refused_for_a_deterministic_sampler():
    with pytest.raises(ValueError, match="is deterministic"):
        audit(
            "diffusers:DDIMScheduler",
            {"clip_sample": False},
            steps=[10, 20, 40],
            n_samples=4,
            probe_steps=10,
            strong=True,
        )


def test_nested_grids_need_a_common_start_and_end():
    fine = [1.0, 0.75, 0.5, 0.25, 0.0]
    assert st._nested([1.0, 0.5, 0.0], fine) == [0, 2, 4]
    assert st._nested([0.75, 0.25, 0.0], fine) is None  # another start
    assert st._nested([1.0, 0.6, 0.0], fine) is None
    ref, inside = st.strong_plan({2: [1.0, 0.5, 0.0], 4: fine, 3: [1.0, 0.6, 0.3, 0.0]})
    assert ref == 4 and inside == [2]


def test_three_classes_are_one_method_on_trailing_timesteps():
    """Euler ancestral (sigma_down = sigma_to^2 / sigma_from, sigma_up^2 = sigma_to^2 -
    sigma_down^2) and SDE-DPM-Solver++1 (Lu et al. 2022) are DDPM's posterior step in other
    variables: on the same timesteps their exact laws coincide."""
    trailing = {"timestep_spacing": "trailing"}
    _, ddpm, setup = _setup("DDPMScheduler", {"clip_sample": False, **trailing})
    _, euler_a, _ = _setup("EulerAncestralDiscreteScheduler", trailing)
    sde1 = {"algorithm_type": "sde-dpmsolver++", "solver_order": 1, **trailing}
    _, dpm1, _ = _setup("DPMSolverMultistepScheduler", sde1)
    laws = [_law(f, setup, 20) for f in (ddpm, euler_a, dpm1)]
    covs = [law.factor @ law.factor.T for law in laws]
    for law, cov in zip(laws[1:], covs[1:], strict=True):
        assert torch.allclose(law.mean, laws[0].mean, atol=1e-5)
        assert torch.allclose(cov, covs[0], atol=1e-5)


def test_time_gaps_of_stochastic_ddim_come_from_its_grid_not_from_noise():
    """DDIM's prev_timestep = t - T // N on "trailing" timesteps (N = 30 does not divide 1000):
    the point-mass law of the next model input is off the time the model is told; N = 20
    and the noise of every N leave no gap."""
    rep = audit(
        "diffusers:DDIMScheduler",
        {"clip_sample": False, "eta": 1.0, "timestep_spacing": "trailing"},
        steps=[10, 20, 30],
        n_samples=4,
        probe_steps=10,
    )
    gaps = {r["steps"]: r["max_gap"] for r in rep.rows}
    assert gaps[10] < 0.02 and gaps[20] < 0.02 and gaps[30] > 1.0
    assert any(f.startswith("time gap: model called at") for f in rep.findings)


def test_cli_writes_the_stochastic_card_and_refuses_strong_in_one_line(tmp_path, capsys):
    import argparse

    from odebench.audit import cli

    parser = argparse.ArgumentParser(prog="odebench")
    cli.add_parser(parser.add_subparsers(dest="command"))
    argv = ["audit", "diffusers:EulerAncestralDiscreteScheduler", "--steps", "10,20,40"]
    argv += ["--n-samples", "4", "--out", str(tmp_path)]
    cli.run(parser.parse_args(argv))
    out = capsys.readouterr().out
    assert "stochastic (SDE sampler)" in out and "weak order" in out
    head = (tmp_path / "EulerAncestralDiscreteScheduler.csv").read_text().splitlines()[0]
    assert "weak_w2" in head and "strong_err" in head
    with pytest.raises(ValueError, match="no strong order") as err:
        cli.run(parser.parse_args([*argv, "--strong"]))
    assert "\n" not in str(err.value)


def test_clipped_ddpm_gets_a_monte_carlo_weak_error_with_its_floor():
    """No exact law under clip_sample=True: the Monte Carlo law agrees with the exact law of
    an affine scheduler within its floor, and the clipped scheduler's W2 sits far above the
    floor and stops falling (the clipping bias)."""
    from odebench.audit import stochastic_card as sc
    from odebench.metrics import gaussian_w2

    n = 1024
    _, affine, setup = _setup("DDPMScheduler", {"clip_sample": False})
    exact = _law(affine, setup, 10)
    args = (setup.prob, setup.sched, setup.model, setup.iface, 1000, None)
    mc = st.mc_law(affine, 10, *args, n=n)
    floor, se = st.mc_floor(setup.prob, setup.sched, 0.0, n)
    assert mc.ok and mc.draws == 9 and 0 < se < floor
    assert gaussian_w2(mc.mean, mc.factor, exact.mean, exact.factor) < floor + 3 * se
    assert st.weak_errors(exact, setup.prob, setup.sched, 0.0)["weak_w2"] > floor + 3 * se
    _, clipped, _ = _setup("DDPMScheduler", {})
    rows = []
    for steps in (20, 40, 80, 160):
        law = st.mc_law(clipped, steps, *args, n=n)
        w2 = st.weak_errors(law, setup.prob, setup.sched, 0.0)["weak_w2"]
        rows.append(
            {
                "steps": steps,
                "status": "ok",
                "weak_w2": w2,
                "weak_estimate": "monte carlo",
                "mc_samples": n,
                "weak_floor": floor,
                "weak_floor_se": se,
            }
        )
    assert all(r["weak_w2"] > floor + 3 * se for r in rows)
    text, findings = sc._weak_verdict(rows, None, 1.0)
    assert text.startswith("does not converge weakly: W2 stops falling at") and findings
    assert sc._estimate(rows).startswith(f"Monte Carlo, n={n} samples, floor")
    assert sc._weak_verdict([{**r, "weak_w2": floor} for r in rows], None, 1.0)[0].startswith(
        "weak error at the Monte Carlo floor"
    )
