"""The float inverse t(lambda) the device reference uses (``t_from_lambda_float``) agrees with
the schedules' own inverse (the bisection the CPU references use) to round-off, at every table
and interpolation, at the ends, and between and on the knots."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import odebench as ob
from odebench.schedules.discrete import DiscreteSchedule

D = torch.float64
TABLES = ["ddpm-linear-1000", "scaled-linear-1000", "cosine-1000"]


def _schedules():
    out = []
    for name in TABLES:
        s = ob.schedules.get(name)
        assert isinstance(s, DiscreteSchedule)
        out.append(s)
        out.append(DiscreteSchedule(s.betas.numpy(), f"{name}-linear", interpolation="linear"))
    return out


SCHEDULES = _schedules()


def _lambda_range(s) -> tuple[float, float]:
    ends = s.lambda_(torch.tensor([s.t_hi, 1e-6], dtype=D))
    return float(ends[0]), float(ends[1])


@pytest.mark.parametrize("s", SCHEDULES, ids=lambda s: s.name)
@settings(max_examples=200, deadline=None)
@given(u=st.floats(0.0, 1.0))
def test_agrees_with_the_bisection(s, u):
    lo, hi = _lambda_range(s)
    lam = lo + u * (hi - lo)
    fast = s.t_from_lambda_float(lam)
    slow = float(s.t_from_lambda(torch.tensor(lam, dtype=D)))
    assert abs(fast - slow) <= 4e-15 * max(slow, 1e-3)
    # and it inverts lambda(t): the round trip to round-off in lambda
    back = float(s.lambda_(torch.tensor(fast, dtype=D)))
    assert abs(back - lam) <= 1e-11 * max(1.0, abs(lam))


@pytest.mark.parametrize("s", SCHEDULES, ids=lambda s: s.name)
def test_on_the_knots_and_at_the_ends(s):
    ts = torch.tensor([1, 2, 3, 10, 500, 999, s.T - 1, s.T], dtype=D) / s.T
    for t in ts.tolist():
        lam = float(s.lambda_(torch.tensor(t, dtype=D)))
        assert s.t_from_lambda_float(lam) == pytest.approx(t, rel=1e-13, abs=1e-15)
    assert s.t_from_lambda_float(1e4) == s.t_lo  # lambda past the data end
    assert s.t_from_lambda_float(-1e4) == s.t_hi  # past the noise end
    assert s.t_from_lambda_float(math.inf) == s.t_lo


def test_generic_form_is_t_from_lambda():
    s = ob.schedules.get("linear")
    for lam in (-4.0, -0.3, 0.0, 2.5, 7.0):
        want = float(s.t_from_lambda(torch.tensor(lam, dtype=D)))
        assert s.t_from_lambda_float(lam) == want


@pytest.mark.parametrize("name", ["ddpm-linear-1000", "cosine-1000", "linear", "cosine"])
@pytest.mark.parametrize("variable", ["lambda", "sigma_tilde"])
@settings(max_examples=60, deadline=None)
@given(u=st.floats(0.0, 1.0))
def test_device_reference_terms_in_floats_match_the_tensor_forms(name, variable, u):
    """pf's float terms of a VP schedule (t, the state's scale, d log alpha / d lambda, sigma)
    are the tensor forms' to round-off: a wrong sign, power or inverse fails here."""
    from odebench.integrate.pf import _generic_terms, _vp_terms

    s = ob.schedules.get(name)
    lo, hi = _lambda_range(s)
    lam = lo + u * (hi - lo)
    v = lam if variable == "lambda" else math.exp(-lam)

    def scale(t):
        return float(s._alpha(t)) if variable == "sigma_tilde" else 1.0

    fast = _vp_terms(s, variable)(v)
    slow = _generic_terms(s, variable, scale)(v)
    assert fast[0] == pytest.approx(slow[0], rel=1e-13, abs=1e-15)
    for a, b in zip(fast[1:], slow[1:], strict=True):
        assert a == pytest.approx(b, rel=1e-10, abs=1e-300)
