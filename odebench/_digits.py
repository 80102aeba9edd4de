"""scikit-learn's 1797 handwritten 8x8 digits, read from the file scikit-learn ships.

``load_digits`` of ``sklearn.datasets`` reads ``sklearn/datasets/data/digits.csv.gz`` with
``numpy.loadtxt``; importing scikit-learn to do so costs 0.5 to 0.8 s per process (scipy.stats
and the rest of its import graph), more than the digits problem's whole set-up. This module
finds the installed package's directory without importing it (``importlib.util.find_spec`` of
a top-level package runs none of its code) and reads the same file the same way, so the values
are those of ``load_digits()`` (``tests/test_digits_file.py`` checks them against it). Where
the file is not where scikit-learn keeps it, ``load_digits`` itself is used.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

DATA_FILE = ("datasets", "data", "digits.csv.gz")


def _data_file() -> Path | None:
    """The installed scikit-learn's digits file, or None (no scikit-learn, or another layout)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*DATA_FILE)
        if path.is_file():
            return path
    return None


@functools.cache
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (1797, 64) in 0..16 as float64, labels (1797,) as int64), as ``load_digits``
    gives ``data`` and ``target``. Read once per process; the arrays are read-only.

    Raises ValueError when scikit-learn (which ships the data) is not installed.
    """
    path = _data_file()
    if path is not None:
        with gzip.open(path, mode="rt", encoding="utf-8") as handle:
            table = np.loadtxt(handle, delimiter=",")
        pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ValueError(
                "the digits data need scikit-learn (pip install scikit-learn)"
            ) from None
        digits = load_digits()
        pixels, labels = digits.data.astype(np.float64), digits.target.astype(np.int64)
    if pixels.shape != (1797, 64) or labels.shape != (1797,):
        raise ValueError(f"unexpected digits data of shape {pixels.shape} and {labels.shape}")
    pixels.flags.writeable = False
    labels.flags.writeable = False
    return pixels, labels
