"""Schedules: exact derivatives, inverses, the discrete tables and their time convention."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import odebench as ob
from odebench.schedules.discrete import cosine_betas, ddpm_linear_betas, scaled_linear_betas

ALL = ob.schedules.names()
VP = ob.schedules.names("vp")
D = torch.float64


def interior(sched, n=200):
    return torch.linspace(sched.t_lo + 1e-4, sched.t_hi - 1e-4, n, dtype=D)


@pytest.mark.parametrize("name", VP)
def test_alpha_bar_is_one_at_zero_and_decreasing(name):
    s = ob.schedules.get(name)
    assert float(s.alpha_bar(0.0)) == 1.0
    t = torch.linspace(0.0, s.t_hi, 2001, dtype=D)
    abar = s.alpha_bar(t)
    assert bool((abar[1:] < abar[:-1]).all())
    assert float(abar[-1]) < 0.01


@pytest.mark.parametrize("name", VP)
def test_derivative_is_exact(name):
    """abar' against a centred difference: agreement to the difference's own error."""
    s = ob.schedules.get(name)
    t = interior(s)
    h = 1e-6
    fd = (s.alpha_bar(t + h) - s.alpha_bar(t - h)) / (2 * h)
    exact = s.alpha_bar_deriv(t)
    assert torch.allclose(fd, exact, rtol=1e-6, atol=1e-9)
    assert bool((s.beta(t) > 0).all())


@pytest.mark.parametrize("name", ALL)
def test_derived_quantities_agree(name):
    s = ob.schedules.get(name)
    t = interior(s)
    abar = s.alpha_bar(t)
    torch.testing.assert_close(s.alpha(t) ** 2, abar, rtol=1e-14, atol=0)
    if s.interpolant == "vp":
        torch.testing.assert_close(s.sigma(t) ** 2, 1 - abar, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(s.sigma_tilde(t), torch.exp(-s.lambda_(t)), rtol=1e-13, atol=0)
    torch.testing.assert_close(
        s.lambda_(t), torch.log(s.alpha(t) / s.sigma(t)), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", ALL)
@given(u=st.floats(0.0, 1.0), log_scale=st.floats(-9, 0))
def test_lambda_inverse_round_trips(name, u, log_scale):
    """t -> lambda -> t to 1e-12 relative, from t ~ 1e-9 (where 1 - abar loses digits
    naively) up to the schedule's end."""
    s = ob.schedules.get(name)
    t = min(max(10.0**log_scale * (0.1 + 0.9 * u), 1e-9), s.t_hi)
    back = float(s.t_from_lambda(s.lambda_(t)))
    assert back == pytest.approx(t, rel=1e-11, abs=1e-15)
    assert float(s.t_from_sigma_tilde(s.sigma_tilde(t))) == pytest.approx(t, rel=1e-11, abs=1e-15)


def test_small_t_accuracy():
    """1 - abar must keep its digits near t = 0 (sigma^2 ~ beta_min t for "linear")."""
    s = ob.schedules.get("linear")
    t = 1e-10
    assert float(s.sigma(t) ** 2) == pytest.approx(0.1 * t + 0.5 * 19.9 * t**2, rel=1e-9)
    s0 = ob.schedules.get("cosine-s0")
    assert float(s0.sigma(t)) == pytest.approx(math.sin(math.pi * t / 2), rel=1e-9)


def test_linear_is_the_limit_of_ddpm():
    """beta(t) = 0.1 + 19.9 t is T times DDPM's betas; abar agrees to O(1/T)."""
    cont, disc = ob.schedules.get("linear"), ob.schedules.get("ddpm-linear-1000")
    t = torch.linspace(0.01, 1.0, 50, dtype=D)
    assert torch.allclose(cont.alpha_bar(t), disc.alpha_bar(t), rtol=0.02, atol=2e-4)
    torch.testing.assert_close(cont.beta(t), disc.beta(t), rtol=0.02, atol=0.02)


@pytest.mark.parametrize(
    "name,betas",
    [
        ("ddpm-linear-1000", ddpm_linear_betas()),
        ("scaled-linear-1000", scaled_linear_betas()),
        ("cosine-1000", cosine_betas()),
    ],
)
@pytest.mark.parametrize("interp", ["cubic", "linear"])
def test_discrete_tables_hit_their_knots(name, betas, interp):
    """Index i sits at t = (i + 1) / T, and abar there is the training table's cumprod."""
    s = ob.schedules.get(name, interpolation=interp)
    cumprod = np.cumprod(1.0 - betas)
    i = torch.arange(0, 1000, 37)
    np.testing.assert_allclose(s.alpha_bar(s.t_of_index(i)).numpy(), cumprod[i.numpy()], rtol=1e-12)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), cumprod, rtol=1e-12)


def test_discrete_linear_interpolation_is_constant_beta_per_interval():
    s = ob.schedules.get("ddpm-linear-1000", interpolation="linear")
    i = 417
    t = torch.linspace(i / 1000 + 1e-7, (i + 1) / 1000 - 1e-7, 7, dtype=D)
    expected = -math.log1p(-float(ddpm_linear_betas()[i])) * 1000
    torch.testing.assert_close(s.beta(t), torch.full_like(t, expected), rtol=1e-12, atol=0)


def test_cosine_schedule_is_clipped_explicitly():
    s = ob.schedules.get("cosine")
    assert s.t_hi == pytest.approx(0.9946)
    with pytest.raises(ValueError, match=r"\[0, 0.9946\]"):
        s.alpha_bar(0.999)
    assert float(cosine_betas()[-1]) == pytest.approx(0.999)


def test_cosine_matches_its_formula():
    s, t = ob.schedules.get("cosine"), torch.tensor([0.1, 0.5, 0.9], dtype=D)
    f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    f0 = math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    torch.testing.assert_close(s.alpha_bar(t), f / f0, rtol=1e-13, atol=0)


def test_scaled_linear_matches_its_discrete_table():
    cont, disc = ob.schedules.get("scaled-linear"), ob.schedules.get("scaled-linear-1000")
    t = torch.linspace(0.05, 1.0, 20, dtype=D)
    assert torch.allclose(cont.alpha_bar(t), disc.alpha_bar(t), rtol=0.03, atol=1e-4)


def test_bad_names_and_times():
    with pytest.raises(ValueError, match=r"unknown schedule 'linaer'.*linear"):
        ob.schedules.get("linaer")
    with pytest.raises(ValueError, match="unknown interpolation"):
        ob.schedules.get("ddpm-linear-1000", interpolation="spline")
    s = ob.schedules.get("linear")
    with pytest.raises(ValueError, match="lie in"):
        s.alpha_bar(1.5)
    with pytest.raises(ValueError, match="lie in"):
        s.sigma(-0.1)
    with pytest.raises(ValueError, match="finite"):
        s.lambda_(float("nan"))


@pytest.mark.parametrize("name", ALL)
def test_inverses_reach_the_clean_data_end(name):
    """t = 0 has lambda = inf and sigma_tilde = 0; the inverses must return 0, not nan."""
    s = ob.schedules.get(name)
    assert float(s.t_from_lambda(torch.tensor(math.inf, dtype=D))) == 0.0
    assert float(s.t_from_sigma_tilde(torch.tensor(0.0, dtype=D))) == 0.0


@pytest.mark.parametrize("interpolation", ["cubic", "linear"])
@pytest.mark.parametrize("betas", ["ddpm-linear", "cosine", "scaled-linear"])
def test_one_time_inverts_to_the_same_bits_as_the_tensor_bisection(betas, interpolation):
    """The float path of a discrete table's inverse (one time: an adaptive solve's every
    evaluation) gives the tensor bisection's root to the last bit, ends included, and its
    float log abar (which one time, a 0-d tensor, also takes) is the tensor one's."""
    from odebench.schedules.base import bisect_decreasing
    from odebench.schedules.discrete import DiscreteSchedule

    table = {"ddpm-linear": ddpm_linear_betas, "cosine": cosine_betas}
    table["scaled-linear"] = scaled_linear_betas
    sched = DiscreteSchedule(table[betas](), betas, interpolation=interpolation)
    gen = torch.Generator().manual_seed(3)
    knots = sched.knots_t
    t = torch.cat([torch.rand(300, generator=gen, dtype=D), knots[::97], knots[-1:]])
    log_abar = sched._log_alpha_bar(t)
    floats = torch.tensor([sched._log_alpha_bar_float(v) for v in t.tolist()], dtype=D)
    assert torch.equal(floats, log_abar)
    one_at_a_time = torch.stack([sched._log_alpha_bar(v) for v in t])  # 0-d: the float path
    assert torch.equal(one_at_a_time, log_abar)
    targets = torch.cat([log_abar, torch.tensor([1.0, -1e3], dtype=D)])  # beyond both ends
    for target in targets:
        tensor_root = bisect_decreasing(sched._log_alpha_bar, target, sched.t_lo, sched.t_hi)
        assert torch.equal(sched._t_from_log_alpha_bar(target), tensor_root)
    assert float(sched._t_from_log_alpha_bar(targets[-2])) == sched.t_lo
    assert float(sched._t_from_log_alpha_bar(targets[-1])) == sched.t_hi
    roots = torch.stack([sched._t_from_log_alpha_bar(v) for v in log_abar])
    assert float((roots - t).abs().max()) < 1e-12  # and it is the inverse


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1e-3, 1.0 + 1e-9])
@pytest.mark.parametrize("shape", [(), (1,), (3,)])
def test_a_time_outside_the_schedule_is_refused_alone_or_in_a_batch(bad, shape):
    """One time takes a fast path in the range check: it must refuse what a batch refuses."""
    sched = ob.schedules.get("ddpm-linear-1000")
    t = torch.full(shape, 0.5, dtype=D)
    t.view(-1)[-1] = bad
    with pytest.raises(ValueError, match="times must"):
        sched.alpha(t)
    assert torch.isfinite(sched.alpha(torch.full(shape, 1.0 + 1e-13, dtype=D))).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: ob.schedules.continuous.LinearVP(),
        lambda: ob.schedules.continuous.LinearVP(0.3, 7.0),
        lambda: ob.schedules.continuous.ScaledLinearVP(),
    ],
    ids=["linear", "linear-0.3-7", "scaled-linear"],
)
def test_one_time_in_floats_gives_the_batched_bits(make):
    """A 0-d time takes the Python-float path of a closed-form schedule: log abar and beta
    must equal the batched tensor evaluation to the last bit (a different operation or
    order, e.g. Python's ``**`` for ``t * t``, breaks it)."""
    sched = make()
    gen = torch.Generator().manual_seed(5)
    # 20000 times: Python's t**2 differs from t * t in about 1 in 1300
    t = torch.cat([torch.rand(20000, generator=gen, dtype=D), torch.tensor([0.0, 1e-12, 1.0])])
    for name in ("_log_alpha_bar", "_beta"):
        batched = getattr(sched, name)(t)
        one_at_a_time = torch.stack([getattr(sched, name)(v) for v in t])
        assert torch.equal(one_at_a_time, batched), name
    # a time that needs its gradient keeps the tensor path
    tg = torch.tensor(0.3, dtype=D, requires_grad=True)
    sched._log_alpha_bar(tg).backward()
    assert float(tg.grad) == pytest.approx(-float(sched._beta(torch.tensor(0.3, dtype=D))))


def _bisect_80(f, target: float, lo: float, hi: float) -> float:
    """The scalar bisection as it was: all 80 iterations, then the ends."""
    a, b = lo, hi
    for _ in range(80):
        mid = 0.5 * (a + b)
        a, b = (mid, b) if f(mid) > target else (a, mid)
    out = 0.5 * (a + b)
    out = lo if target >= f(lo) else out
    return hi if target <= f(hi) else out


@settings(max_examples=300, deadline=None)
@given(
    target=st.floats(-3.0, 3.0),
    lo=st.floats(0.0, 0.5),
    width=st.floats(1e-300, 1.0),
    steps=st.integers(1, 50),
    shape=st.sampled_from(["smooth", "stairs", "flat", "nan"]),
)
def test_the_scalar_bisection_stops_early_on_the_same_bits(target, lo, width, steps, shape):
    """Stopping once no iteration can move an end gives the 80-iteration root to the last bit,
    also for step functions (ties with the target) and a NaN stretch (no comparison holds)."""
    from odebench.schedules.base import bisect_decreasing_scalar

    hi = lo + width
    f = {
        "smooth": lambda t: 1.0 - 2.0 * t,
        "stairs": lambda t: -math.floor(t * steps) / steps,
        "flat": lambda t: 0.0,
        "nan": lambda t: math.nan if 0.2 < t < 0.3 else 1.0 - t,
    }[shape]
    got = bisect_decreasing_scalar(f, target, lo, hi)
    want = _bisect_80(f, target, lo, hi)
    assert got == want or (math.isnan(got) and math.isnan(want))


def test_a_discrete_schedule_pickles_after_inverting_a_time():
    """The float closure the inverse caches is left out of a pickle and made again."""
    import pickle

    sched = ob.schedules.get("ddpm-linear-1000")
    t = sched._t_from_lambda(torch.tensor(0.3, dtype=D))
    again = pickle.loads(pickle.dumps(sched))
    assert torch.equal(again._t_from_lambda(torch.tensor(0.3, dtype=D)), t)
