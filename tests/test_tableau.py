"""Gradient parts as data: tableaus that check themselves, AB weights fixed and variable."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from odebench.solvers.tableau import AB_FIXED, EULER, HEUN, RK4, Tableau, ab_variable_weights


@pytest.mark.parametrize("tab", [EULER, HEUN, RK4])
def test_shipped_tableaus_pass_their_own_checks(tab):
    assert Tableau(tab.name, tab.c, tab.a, tab.b, tab.order) == tab


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(b=(1 / 6, 1 / 3, 1 / 3, 1 / 6 + 1e-3)), "b must sum to 1"),
        (dict(b=(1 / 6, 1 / 4, 5 / 12, 1 / 6)), "order conditions of order 3 fail"),
        (dict(c=(0.0, 0.5, 0.4, 1.0)), "order conditions"),
        (dict(c=(0.0, 1 / 3, 0.5, 1.0)), "order conditions"),
        (dict(a=((), (1.0,), (0.1, 0.9), (0.0, 0.0, 1.0))), "order conditions of order 3"),
        (dict(a=((), (1.0,), (0.0, 1.0), (0.0, 0.0, 0.9))), "row 3 of a must sum to 1"),
        (dict(c=(0.1, 0.5, 0.5, 1.0)), "starts at c = 0"),
        (dict(order=3), "satisfies order 4, declares 3"),
    ],
)
def test_a_wrong_rk4_coefficient_or_stage_time_is_refused(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(RK4, **change)


def test_butcher_form_of_rk4():
    A = RK4.butcher_a()
    expected = np.zeros((4, 4))
    expected[1, 0] = expected[2, 1] = 0.5
    expected[3, 2] = 1.0
    np.testing.assert_array_equal(A, expected)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_variable_weights_reduce_to_fixed_on_equal_steps(k):
    h = -0.01
    nodes = 0.5 - h * np.arange(k)  # newest first, older nodes lie behind (larger t)
    np.testing.assert_allclose(
        ab_variable_weights(nodes, 0.5, 0.5 + h), AB_FIXED[k], rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_fixed_weights_integrate_polynomials_of_degree_k_minus_1(k):
    """sum_j w_j p(-j) = integral_0^1 p for deg p < k (unit steps, newest at 0)."""
    for deg in range(k):
        vals = [(-j) ** deg for j in range(k)]
        exact = 1.0 / (deg + 1)
        assert sum(w * v for w, v in zip(AB_FIXED[k], vals, strict=True)) == pytest.approx(exact)


@given(
    k=st.integers(1, 4),
    gaps=st.lists(st.floats(0.2, 3.0), min_size=4, max_size=4),
    width=st.floats(0.1, 2.0),
)
def test_variable_weights_are_exact_on_polynomials(k, gaps, width):
    """Uneven history: the weighted sum equals the mean of p over the step for deg p < k."""
    nodes = np.concatenate([[0.0], np.cumsum(gaps[: k - 1])])  # newest 0, older positive
    w = ab_variable_weights(nodes, 0.0, -width)
    rng = np.random.default_rng(k)
    coeffs = rng.standard_normal(k)
    p = np.polynomial.Polynomial(coeffs)
    mean = (p.integ()(-width) - p.integ()(0.0)) / -width
    assert float(w @ p(nodes)) == pytest.approx(mean, rel=1e-9, abs=1e-9)


def test_variable_weights_refuse_degenerate_history():
    with pytest.raises(ValueError, match="repeated"):
        ab_variable_weights(np.array([0.0, 0.0]), 0.0, -0.1)
    with pytest.raises(ValueError, match="non-zero length"):
        ab_variable_weights(np.array([0.0, 0.1]), 0.0, 0.0)
