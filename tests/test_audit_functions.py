"""The audit of k-diffusion-style sampler functions: file and module specs, the orders of
Euler, DPM-Solver++(2M) and a 2M with a planted bug, failures as card lines."""

from __future__ import annotations

import math
import time

import pytest
import torch

from odebench.audit import audit
from odebench.audit.functions import Denoiser, load

STEPS = (8, 16, 32, 64)


def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler in sigma on dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, Alg. 1
    without churn), with k-diffusion's keyword arguments."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


def _dpmpp_2m(model, x, sigmas, weight):
    """DPM-Solver++(2M) (Lu et al. 2022) in lambda = -log sigma; ``weight(r)`` multiplies
    the difference of the last two denoised values (1 / (2 r) is the method)."""
    old = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:  # the step to data: x = D(x)
            x = denoised
        else:
            h = math.log(sigmas[i] / sigmas[i + 1])
            d = denoised
            if old is not None:
                r = math.log(sigmas[i - 1] / sigmas[i]) / h
                d = denoised + weight(r) * (denoised - old)
            x = (sigmas[i + 1] / sigmas[i]) * x - math.expm1(-h) * d
        old = denoised
    return x


def sample_dpmpp_2m(model, x, sigmas):
    return _dpmpp_2m(model, x, sigmas, lambda r: 1.0 / (2.0 * r))


def sample_dpmpp_2m_bug(model, x, sigmas):
    return _dpmpp_2m(model, x, sigmas, lambda r: 1.0 / r)  # planted: twice the correction


def test_orders_of_euler_2m_and_the_planted_bug():
    start = time.perf_counter()
    orders = {}
    for fn in (sample_euler, sample_dpmpp_2m, sample_dpmpp_2m_bug):
        report = audit(fn)  # the default ladder, 8 to 128 steps
        orders[fn.__name__] = report.fits["mid"]
        assert not report.findings, report.card()
    euler, good, bug = orders.values()
    assert 0.8 < euler.slope < 1.2 and 1.8 < good.slope < 2.2
    assert bug.slope < 1.3 and bug.ci_high < good.ci_low  # clearly less than 2
    assert time.perf_counter() - start < 15


def failing(model, x, sigmas):
    if len(sigmas) > 20:
        raise RuntimeError("too many\nsteps")
    if len(sigmas) > 12:
        return x[:1]
    return x * float("nan")


def test_failures_are_lines_of_the_card():
    report = audit(failing, steps=(8, 16, 32), n_samples=4)
    card = report.card()
    assert "N=32: error: RuntimeError: too many steps (grid to t=0.1)" in card
    assert "returned shape (1, 16) for x of shape (4, 16)" in card
    assert "returned non-finite values" in card and report.verdict == "does not run"


def test_specs_files_modules_and_bad_names(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("VALUE = 3\n\ndef euler(model, x, sigmas):\n    return x\n")
    assert load(f"{path}:euler").__name__ == "euler"
    assert load("tests.test_audit_functions:sample_euler") is not None
    for spec, words in [
        (f"{path}:VALUE", "not a function"),
        (f"{path}:nope", "no attribute 'nope'"),
        (f"{tmp_path}/missing.py:f", "missing.py: no such file"),
        ("no_such_pkg.samplers:f", "cannot import module 'no_such_pkg.samplers'"),
    ]:
        with pytest.raises(ValueError, match=words):
            load(spec)
    bad = tmp_path / "broken.py"
    bad.write_text("import no_such_module_here\n")
    with pytest.raises(ValueError, match="cannot import .*broken.py: ModuleNotFoundError"):
        load(f"{bad}:f")


def test_denoiser_is_the_exact_x0_at_sigma_scale():
    from odebench import problems, schedules

    sched = schedules.get("linear")
    prob = problems.get("gaussian-lowrank", sched)
    t = torch.tensor(0.3, dtype=torch.float64)
    x_vp = prob.sample_marginal(5, 0.3, torch.Generator().manual_seed(1))
    alpha, sigma = float(sched.alpha(t)), float(sched.sigma_tilde(t))
    d = Denoiser(prob, sched)
    x0 = d(x_vp / alpha, torch.full((5,), sigma, dtype=torch.float64))
    # x0 = (x_vp - sigma_t eps) / alpha: the eps model and the denoiser agree
    expect = (x_vp - float(sched.sigma(t)) * prob.eps(x_vp, t)) / alpha
    assert torch.allclose(x0, expect, atol=1e-9) and d.calls == 1


def test_cli_runs_a_file_function(tmp_path, capsys):
    from odebench.cli import main

    main(
        [
            "audit",
            "tests/test_audit_functions.py:sample_euler",
            "--steps",
            "8,16,32",
            "--n-samples",
            "4",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert (
        "order at t=0.1" in out
        and (tmp_path / "tests_test_audit_functions.py_sample_euler.csv").exists()
    )
    assert main(["audit", "tests/test_audit_functions.py:STEPS"]) == 2
    assert "tests/test_audit_functions.py:STEPS is not a function" in capsys.readouterr().err


def test_a_scheduler_instance_is_audited_as_its_class_and_config():
    diffusers = pytest.importorskip("diffusers")
    sch = diffusers.DDIMScheduler(timestep_spacing="trailing", clip_sample=False)
    options = {"steps": (10, 20, 40), "n_samples": 4}
    mine = audit(sch, **options)
    named = audit(
        "diffusers:DDIMScheduler", {"timestep_spacing": "trailing", "clip_sample": False}, **options
    )
    assert mine.sampler == named.sampler and mine.card() == named.card()
