"""Metrics: error norms between states and references, and empirical order fits."""

from .errors import ERROR_NORMS, max_error, path_error, relative_rms_error, rms_error
from .order import VERDICTS, OrderFit, fit_order, verdict

__all__ = [
    "ERROR_NORMS",
    "VERDICTS",
    "OrderFit",
    "fit_order",
    "max_error",
    "path_error",
    "relative_rms_error",
    "rms_error",
    "verdict",
]
