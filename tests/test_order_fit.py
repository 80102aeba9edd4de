"""Order fits: recover known slopes, drop floors and pre-asymptotic points, honest CIs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from odebench.metrics import VERDICTS, OrderFit, fit_order, verdict
from odebench.metrics.order import _t_quantile_975

FAST = settings(max_examples=60, deadline=None)


def _halvings(n: int, h0: float = 1.0) -> np.ndarray:
    return h0 * 2.0 ** -np.arange(n)


def _noisy(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return clean * np.exp(sigma * rng.standard_normal(clean.shape))


# --- recovering a known order -------------------------------------------------------------


@FAST
@given(
    p=st.floats(0.5, 5.0),
    log_c=st.floats(-7.0, 7.0),
    n=st.integers(6, 10),
    h0=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_recovers_known_slope_from_noisy_power_law(
    p: float, log_c: float, n: int, h0: float, seed: int
) -> None:
    h = _halvings(n, h0)
    err = _noisy(math.exp(log_c) * h**p, 0.03, np.random.default_rng(seed))
    fit = fit_order(h, err)
    assert fit.n_used == n and all(fit.used) and set(fit.flags) == {""}
    assert abs(fit.slope - p) < 0.08
    assert fit.ci_low < fit.slope < fit.ci_high
    assert fit.ci_halfwidth < 0.15
    assert fit.r2 > 0.98
    assert abs(fit.intercept - log_c) < 0.35
    assert len(fit.local_slopes) == n - 1
    assert all(abs(s - p) < 0.3 for s in fit.local_slopes)


@FAST
@given(p=st.floats(0.5, 5.0), log_c=st.floats(-5.0, 5.0), n=st.integers(3, 12))
def test_clean_power_law_is_exact(p: float, log_c: float, n: int) -> None:
    h = _halvings(n, 0.5)
    fit = fit_order(h, math.exp(log_c) * h**p)
    assert fit.slope == pytest.approx(p, abs=1e-9)
    assert fit.intercept == pytest.approx(log_c, abs=1e-8)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.ci_high - fit.ci_low < 1e-6
    assert fit.local_slopes == pytest.approx([p] * (n - 1), abs=1e-9)


def test_slope_is_least_squares_not_end_point_secant() -> None:
    h = _halvings(7)
    err = 2.0 * h**2 * np.array([1.2, 1.0, 1.0, 1.0, 1.0, 1.0, 0.85])
    fit = fit_order(h, err)
    assert fit.n_used == 7
    ols = np.polyfit(np.log(h), np.log(err), 1)[0]
    secant = math.log(err[0] / err[-1]) / math.log(h[0] / h[-1])
    assert abs(ols - secant) > 0.02  # the data tell the two apart
    assert fit.slope == pytest.approx(ols, abs=1e-12)


def test_nfe_axis_via_h_equal_one_over_nfe() -> None:
    nfe = np.array([10, 20, 40, 80, 160])
    fit = fit_order(1.0 / nfe, 3.0 * nfe**-2.0)
    assert fit.slope == pytest.approx(2.0, abs=1e-12)


def test_closely_spaced_points_are_judged_by_error_ratio() -> None:
    # NFE 20..40: neighbours differ by ~5% in h, so 2% noise moves local slopes by ~0.5;
    # the tolerance is an error-ratio deviation of 2**slope_tol there, not 0.3 in slope
    nfe = np.arange(20, 41)
    err = _noisy(5.0 * nfe**-2.0, 0.02, np.random.default_rng(7))
    fit = fit_order(1.0 / nfe, err)
    assert fit.n_used == len(nfe)
    assert abs(fit.slope - 2) < 0.15
    assert fit.ci_low < 2 < fit.ci_high


def test_ci_covers_truth_at_the_nominal_rate() -> None:
    # 6 points -> 4 dof: a normal quantile (1.96 instead of 2.78) would cover only ~88%.
    rng = np.random.default_rng(12345)
    h = _halvings(6)
    draws, covered, widths = 1000, 0, []
    for _ in range(draws):
        fit = fit_order(h, _noisy(0.7 * h**2.5, 0.05, rng))
        covered += fit.ci_low <= 2.5 <= fit.ci_high
        widths.append(fit.ci_halfwidth)
    assert 0.93 <= covered / draws <= 0.97
    assert np.median(widths) < 0.1


@pytest.mark.parametrize(
    ("dof", "expected"),
    [
        (1, 12.706204736174694),
        (2, 4.302652729749462),
        (3, 3.1824463052837078),
        (4, 2.7764451051977934),
        (10, 2.228138851986274),
        (30, 2.0422724563012378),
        (1000, 1.9623390808264083),
        (50000, 1.9600114310936798),
    ],
)
def test_student_t_quantile_matches_tables(dof: int, expected: float) -> None:
    assert _t_quantile_975(dof) == pytest.approx(expected, rel=1e-9)


# --- round-off floor -----------------------------------------------------------------------


@FAST
@given(
    p=st.floats(2.0, 5.0),
    n_asym=st.integers(5, 8),
    n_floor=st.integers(2, 4),
    floor_noise=st.floats(0.01, 0.3),
    seed=st.integers(0, 2**32 - 1),
)
def test_floor_is_dropped_and_flagged(
    p: float, n_asym: int, n_floor: int, floor_noise: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    level = 1e-13
    h = _halvings(n_asym + n_floor)
    # the power law crosses the floor half-way between points n_asym - 1 and n_asym
    clean = level * 2 ** (-p / 2) * (h / h[n_asym]) ** p
    at_floor = np.arange(len(h)) >= n_asym
    noisy_floor = level * np.exp(floor_noise * rng.standard_normal(h.shape))
    err = np.where(at_floor, noisy_floor, _noisy(clean, 0.03, rng))
    fit = fit_order(h, err)
    # a point clamped by less than 4x may still look like the power law under noise
    deep = np.flatnonzero(clean < level / 4)
    assert len(deep) >= n_floor - 1
    assert all(fit.flags[i] == "floor" for i in deep)
    assert fit.n_used >= n_asym - 1
    assert abs(fit.slope - p) < 0.1


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0, 4.0])
def test_clean_clamped_floor_is_flagged_exactly(p: float) -> None:
    h = _halvings(14)
    clean = h**p
    level = 0.7 * clean[8]
    fit = fit_order(h, np.maximum(clean, level))
    assert [f == "floor" for f in fit.flags] == list(clean < level)
    assert fit.slope == pytest.approx(p, abs=1e-9)


def test_floor_with_knee_and_growing_round_off() -> None:
    # error = truncation + reference error + round-off growing like 1/h
    h = _halvings(15)
    truncation = 0.5 * h**4
    fit = fit_order(h, truncation + 1e-12 + 1e-14 / h)
    assert fit.slope == pytest.approx(4.0, abs=0.02)
    assert fit.flags[:8] == ("",) * 8
    for i in np.flatnonzero(truncation < 1e-12):
        assert fit.flags[i] == "floor"


def test_explicit_floor_flags_points_at_or_below_it() -> None:
    h = _halvings(8)
    err = np.maximum(h**3, 3e-6)
    fit = fit_order(h, err, floor=3e-6)
    assert [f == "floor" for f in fit.flags] == list(err <= 3e-6)
    assert fit.slope == pytest.approx(3.0, abs=1e-9)


def test_flat_errors_are_data_not_floor() -> None:
    fit = fit_order(_halvings(5), [0.1] * 5)
    assert fit.n_used == 5
    assert fit.slope == pytest.approx(0.0, abs=1e-12)
    assert verdict(fit, 1.0) == "diverged"


# --- pre-asymptotic regime ----------------------------------------------------------------


@FAST
@given(
    p=st.floats(0.5, 5.0),
    a=st.floats(5.0, 30.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_pre_asymptotic_points_are_dropped(p: float, a: float, seed: int) -> None:
    h = _halvings(14)
    err = _noisy(h**p * (1 + a * h), 0.02, np.random.default_rng(seed))
    fit = fit_order(h, err)
    assert fit.flags[0] == "pre-asymptotic"
    assert fit.flags[-1] == ""
    assert abs(fit.slope - p) < 0.2
    first_used = fit.used.index(True)
    assert all(f == "pre-asymptotic" for f in fit.flags[:first_used])
    assert all(fit.used[first_used:])


def test_pre_asymptotic_fit_beats_naive_fit() -> None:
    h = _halvings(12)
    err = h**2 * (1 + 30 * h)
    naive = np.polyfit(np.log(h), np.log(err), 1)[0]
    fit = fit_order(h, err)
    assert abs(naive - 2) > 0.3
    assert abs(fit.slope - 2) < 0.15
    assert fit.flags[:3] == ("pre-asymptotic",) * 3


def test_drifting_tail_is_the_asymptotic_regime_not_a_floor() -> None:
    # local slopes fall from ~3 to ~2.1 across the range; a coarse window of slope ~2.9 is
    # as long as the fine one, but dropping a still-decreasing tail as "floor" is wrong
    h = _halvings(12)
    fit = fit_order(h, h**2 * (1 + 80 * h))
    assert fit.used[-1]
    assert "floor" not in fit.flags
    assert abs(fit.slope - 2) < 0.25


def test_converging_window_beats_a_longer_flat_one() -> None:
    # the last point's dip keeps the flat stretch from being cut as a floor in step 1
    h = _halvings(8)
    fit = fit_order(h, np.array([64, 16, 4, 1, 1, 1, 1, 0.5]) * 1e-12)
    assert fit.slope == pytest.approx(2.0, abs=1e-9)
    assert fit.flags == ("",) * 4 + ("floor",) * 4


# --- flags and bookkeeping -----------------------------------------------------------------


def test_nonfinite_and_zero_errors_are_flagged_and_skipped() -> None:
    h = _halvings(8)
    err = 5 * h**2
    err[[0, 3, 7]] = [np.inf, np.nan, 0.0]
    fit = fit_order(h, err)
    assert [f == "nonfinite" for f in fit.flags] == [i in (0, 3, 7) for i in range(8)]
    assert fit.n_used == 5
    assert fit.slope == pytest.approx(2.0, abs=1e-9)
    ls = np.array(fit.local_slopes)
    assert np.isnan(ls[[0, 2, 3, 6]]).all()
    assert ls[[1, 4, 5]] == pytest.approx([2.0] * 3)


def test_excluded_points_are_never_fitted() -> None:
    h = _halvings(8)
    err = h**2
    err[4] *= 20  # a point whose reference was not accurate enough
    exclude = np.arange(8) == 4
    plain = fit_order(h, err)
    assert plain.slope != pytest.approx(2.0, abs=0.05) or plain.n_used < 7
    fit = fit_order(h, err, exclude=exclude)
    assert fit.flags[4] == "unreliable-reference"
    assert not fit.used[4]
    assert fit.n_used == 7
    assert fit.slope == pytest.approx(2.0, abs=1e-9)


def test_outputs_follow_input_order_and_local_slopes_go_coarse_to_fine() -> None:
    h = np.array([0.25, 1.0, 0.125, 0.5])
    err = np.array([0.0625, 1.0, 1e-300, 0.25]) * 0 + h**2
    err[2] = np.nan
    fit = fit_order(h, err)
    assert fit.h == tuple(h) and fit.err[0] == err[0]
    assert fit.flags == ("", "", "nonfinite", "")
    assert fit.used == (True, True, False, True)
    assert fit.local_slopes[:2] == pytest.approx([2.0, 2.0])
    assert math.isnan(fit.local_slopes[2])


def test_permuting_inputs_does_not_change_the_fit() -> None:
    rng = np.random.default_rng(3)
    h = _halvings(9)
    err = _noisy(h**1.5 * (1 + 10 * h), 0.03, rng)
    perm = rng.permutation(9)
    a, b = fit_order(h, err), fit_order(h[perm], err[perm])
    assert a.slope == pytest.approx(b.slope, abs=1e-12)
    assert tuple(np.array(a.flags)[perm]) == b.flags
    assert a.local_slopes == pytest.approx(b.local_slopes)


def test_accepts_torch_tensors() -> None:
    h = torch.tensor([0.4, 0.2, 0.1, 0.05], dtype=torch.float64)
    fit = fit_order(h, 3 * h**2)
    assert isinstance(fit, OrderFit)
    assert fit.slope == pytest.approx(2.0)


def test_too_few_points_gives_no_fit() -> None:
    fit = fit_order([1.0, 0.5, 0.25], [1.0, np.nan, 0.0625])
    assert math.isnan(fit.slope) and math.isnan(fit.ci_low) and fit.n_used == 0
    assert fit.flags == ("too-few-points", "nonfinite", "too-few-points")
    assert verdict(fit, 2.0) == "inconclusive"


def test_two_points_with_min_points_two_give_a_slope_without_ci() -> None:
    fit = fit_order([1.0, 0.5], [1.0, 0.25], min_points=2)
    assert fit.slope == pytest.approx(2.0)
    assert math.isnan(fit.ci_halfwidth)
    assert verdict(fit, 2.0) == "as declared"


def test_erratic_errors_have_no_consistent_window() -> None:
    fit = fit_order(_halvings(6), [1, 0.01, 0.5, 0.001, 0.2, 1e-4])
    assert math.isnan(fit.slope)
    assert all(f == "inconsistent" for f in fit.flags)
    assert verdict(fit, 1.0) == "inconclusive"


# --- verdicts ------------------------------------------------------------------------------


def _fit_power(p: float, n: int = 6) -> OrderFit:
    h = _halvings(n)
    return fit_order(h, h**p)


@pytest.mark.parametrize(
    ("p", "declared", "expected"),
    [
        (2.0, 2.0, "as declared"),
        (2.15, 2.0, "as declared"),
        (1.85, 2.0, "as declared"),
        (3.0, 2.0, "superconvergent"),
        (2.3, 2.0, "superconvergent"),
        (1.0, 2.0, "reduced"),
        (1.7, 2.0, "reduced"),
        (2.0, None, "measured"),
    ],
)
def test_verdict_against_declared_order(p: float, declared: float | None, expected: str) -> None:
    assert verdict(_fit_power(p), declared) == expected


def test_verdict_band_widens_to_the_confidence_interval() -> None:
    h = _halvings(3)
    fit = fit_order(h, h**2.5 * np.array([1.0, 1.0, 1.25]))
    hw = fit.ci_halfwidth
    assert hw > 0.5
    wide = {"max_halfwidth": 10.0}  # this CI is too wide for a verdict by default
    assert verdict(fit, fit.slope) == "inconclusive"
    assert verdict(fit, fit.slope - (0.2 + hw) / 2, **wide) == "as declared"
    assert verdict(fit, fit.slope - hw - 0.05, **wide) == "superconvergent"
    assert verdict(fit, fit.slope + hw + 0.05, **wide) == "reduced"
    assert verdict(fit, fit.slope - hw - 0.05, tol=hw + 0.1, **wide) == "as declared"


def test_verdict_diverged_when_finest_error_is_not_finite() -> None:
    h = _halvings(7)
    err = h**2
    err[-1] = np.inf
    fit = fit_order(h, err)
    assert fit.slope == pytest.approx(2.0)  # the coarser points still fit
    assert verdict(fit, 2.0) == "diverged"
    err[-1] = np.nan
    assert verdict(fit_order(h, err), None) == "diverged"


def test_verdict_diverged_when_errors_grow() -> None:
    h = _halvings(7)
    fit = fit_order(h, 1e-3 / h)
    assert fit.slope == pytest.approx(-1.0)
    assert all(fit.used)
    assert verdict(fit, 1.0) == "diverged"
    erratic_growth = fit_order(h, [1e-3, 1e-1, 1e-2, 1e1, 1.0, 1e4, 1e2])
    assert math.isnan(erratic_growth.slope)
    assert verdict(erratic_growth, 1.0) == "diverged"


def test_every_verdict_is_reachable() -> None:
    h = _halvings(6)
    seen = {
        verdict(_fit_power(2.0), 2.0),
        verdict(_fit_power(3.0), 2.0),
        verdict(_fit_power(1.0), 2.0),
        verdict(fit_order(h, 1 / h), 2.0),
        verdict(fit_order(h[:2], h[:2] ** 2), 2.0),
        verdict(_fit_power(2.0), None),
    }
    assert seen == set(VERDICTS)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("h", "err", "kwargs", "match"),
    [
        ([1.0, 0.5, 0.25], [1.0, 0.5], {}, "same length"),
        ([1.0, -0.5, 0.25], [1.0, 0.5, 0.2], {}, "h must be finite and > 0"),
        ([1.0, 0.0, 0.25], [1.0, 0.5, 0.2], {}, "h must be finite and > 0"),
        ([1.0, np.nan, 0.25], [1.0, 0.5, 0.2], {}, "h must be finite and > 0"),
        ([1.0], [1.0], {}, "at least 2 points"),
        ([], [], {}, "at least 2 points"),
        ([1.0, 0.5, 0.5], [1.0, 0.5, 0.2], {}, "distinct"),
        ([1.0, 0.5, 0.25], [1.0, -0.5, 0.2], {}, "errors must be >= 0"),
        ([[1.0, 0.5]], [[1.0, 0.5]], {}, "one-dimensional"),
        ([1.0, 0.5, 0.25], [1.0, 0.5, 0.2], {"exclude": [True, False]}, "exclude"),
        ([1.0, 0.5, 0.25], [1.0, 0.5, 0.2], {"exclude": [1, 0, 0]}, "exclude"),
        ([1.0, 0.5, 0.25], [1.0, 0.5, 0.2], {"min_points": 1}, "min_points"),
        ([1.0, 0.5, 0.25], [1.0, 0.5, 0.2], {"slope_tol": 0.0}, "slope_tol"),
        ([1.0, 0.5, 0.25], [1.0, 0.5, 0.2], {"floor": -1.0}, "floor"),
    ],
)
def test_bad_input_raises(h: list, err: list, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_order(h, err, **kwargs)


def test_verdict_rejects_bad_arguments() -> None:
    fit = _fit_power(2.0)
    with pytest.raises(ValueError, match="tol"):
        verdict(fit, 2.0, tol=-0.1)
    with pytest.raises(ValueError, match="declared"):
        verdict(fit, math.nan)


def test_a_fit_too_wide_to_tell_orders_apart_is_inconclusive():
    """Three points whose local slopes still drift give a CI that would accept any order."""
    h = np.array([0.04, 0.02, 0.01])
    err = np.array([1e-2, 3e-3, 2e-4])  # local slopes 1.7, 3.9
    fit = fit_order(h, err, slope_tol=3.0)
    assert fit.ok and fit.ci_halfwidth > 0.5
    assert verdict(fit, 2.0) == "inconclusive"
    assert verdict(fit, 2.0, max_halfwidth=100.0) == "as declared"


def test_ci_covers_the_order_when_a_second_order_term_is_still_fading():
    """err = h - 5 h^2: every local slope is below 1 and the plain OLS interval (tight, as
    the points lie on a smooth curve) would exclude the true order 1."""
    h = _halvings(6) * 0.04
    fit = fit_order(h, h - 5 * h**2)
    local = np.array(fit.local_slopes)
    assert np.all(local < 1) and np.all(np.diff(local) > 0)
    assert fit.ci_low <= 1.0 <= fit.ci_high
    assert fit.ci_halfwidth < 0.2
