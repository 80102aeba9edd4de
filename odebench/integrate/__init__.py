"""Adaptive integrators in torch, for references that run where the model runs.

``dop853``: Dormand & Prince's 8(5,3) pair with dense output (Hairer, Norsett & Wanner 1993),
batched (one step size for the whole batch), on the state's device and dtype.
"""

from .dopri8 import Integration, dop853

__all__ = ["Integration", "dop853"]
