"""The digits read from scikit-learn's file without importing scikit-learn (odebench._digits)
are load_digits()'s, value for value; without the file it falls back to load_digits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from odebench import _digits


def test_same_values_as_load_digits():
    from sklearn.datasets import load_digits

    pixels, labels = _digits.digits_arrays()
    digits = load_digits()
    assert pixels.dtype == np.float64 and labels.dtype == np.int64
    np.testing.assert_array_equal(pixels, digits.data)
    np.testing.assert_array_equal(pixels, digits.images.reshape(-1, 64))
    np.testing.assert_array_equal(labels, digits.target)
    assert not pixels.flags.writeable and not labels.flags.writeable


def test_does_not_import_sklearn():
    code = (
        "import sys; from odebench.problems import get; p = get('digits-data'); "
        "assert p.means.shape == (1797, 64); "
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_falls_back_to_load_digits_without_the_file(monkeypatch):
    from sklearn.datasets import load_digits

    monkeypatch.setattr(_digits, "_data_file", lambda: None)
    _digits.digits_arrays.cache_clear()
    try:
        pixels, labels = _digits.digits_arrays()
    finally:
        _digits.digits_arrays.cache_clear()
    np.testing.assert_array_equal(pixels, load_digits().data)
    np.testing.assert_array_equal(labels, load_digits().target)


def test_no_sklearn_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_digits, "_data_file", lambda: None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    _digits.digits_arrays.cache_clear()
    try:
        with pytest.raises(ValueError, match="need scikit-learn"):
            _digits.digits_arrays()
    finally:
        _digits.digits_arrays.cache_clear()
