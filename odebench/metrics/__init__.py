"""Metrics: error norms between states and references, empirical order fits, and the exact
references of the manifold-departure study (norm bands, entropy, subspace distances)."""

from .distribution import gaussian_kl, gaussian_w2, psd_factor
from .errors import ERROR_NORMS, max_error, path_error, relative_rms_error, rms_error
from .manifold import (
    Departure,
    NormBand,
    departure,
    expected_nll,
    norm_band,
    norm_statistics,
    subspace_distance,
)
from .order import VERDICTS, OrderFit, fit_order, verdict

__all__ = [
    "ERROR_NORMS",
    "VERDICTS",
    "Departure",
    "NormBand",
    "OrderFit",
    "departure",
    "expected_nll",
    "fit_order",
    "gaussian_kl",
    "gaussian_w2",
    "max_error",
    "norm_band",
    "norm_statistics",
    "path_error",
    "psd_factor",
    "relative_rms_error",
    "rms_error",
    "subspace_distance",
    "verdict",
]
