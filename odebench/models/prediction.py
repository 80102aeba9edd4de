"""Any model output as the eps model solvers use: ``from_prediction(fn, kind, schedule)``.

Solvers consume eps(x, t) (docs/design/conventions.md). A model that predicts x0, v, the
flow-matching velocity or an EDM denoiser is converted exactly, in one place
(:mod:`odebench.schedules.prediction`); the wrapper also gives the data prediction straight
from the model's own output (``.x0``), which stays exact where alpha = 0 and the eps form
cannot recover x0 (t = 1 under flow matching).
"""

from __future__ import annotations

import torch

from ..schedules import Schedule
from ..schedules import get as get_schedule
from ..schedules.prediction import KINDS, Prediction, call_native, check_kind, to_eps, to_x0


class PredictionModel:
    """eps(x, t) from fn's prediction of ``kind`` under ``schedule``; ``.x0(x, t)`` too."""

    def __init__(self, fn: Prediction, kind: str, schedule: Schedule | str):
        if not callable(fn):
            raise ValueError(f"the model must be callable fn(x, t), got {type(fn).__name__}")
        self.fn, self.kind, self.schedule = fn, check_kind(kind), get_schedule(schedule)

    def native(self, x: torch.Tensor, t) -> torch.Tensor:
        """The model's own output at (x, t); a floating-point tensor, or ValueError (an
        integer prediction would be silently promoted by the conversion to eps)."""
        out = call_native(self.fn, self.kind, self.schedule, x, t)
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            got = out.dtype if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"the {self.kind} model returned {got}; a floating-point tensor is required"
            )
        return out

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        return to_eps(self.kind, self.native(x, t), x, t, self.schedule)

    def x0(self, x: torch.Tensor, t) -> torch.Tensor:
        return to_x0(self.kind, self.native(x, t), x, t, self.schedule)

    def __repr__(self) -> str:
        return f"<PredictionModel {self.kind!r} on {self.schedule.name!r}>"


def from_prediction(fn: Prediction, kind: str, schedule: Schedule | str) -> PredictionModel:
    """Wrap fn(x, t) predicting ``kind`` (one of ``KINDS``) into an eps model.

    >>> import torch, odebench as ob
    >>> sched = ob.schedules.get("flow")
    >>> prob = ob.problems.get("gmm-2d", schedule=sched)
    >>> model = ob.models.from_prediction(prob.prediction("velocity"), "velocity", sched)
    >>> x, t = torch.randn(4, 2, dtype=torch.float64), 0.3
    >>> bool(torch.allclose(model(x, t), prob.eps(x, t), rtol=1e-12, atol=1e-12))
    True
    """
    return PredictionModel(fn, kind, schedule)


__all__ = ["KINDS", "PredictionModel", "from_prediction"]
