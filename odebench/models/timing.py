"""The share of wall time spent inside networks: every ``NetworkModel`` evaluation timed.

``timed_networks()`` is a context manager: inside it, each evaluation of any
:class:`~odebench.models.NetworkModel` (``model(x, t)``, ``.native``, ``.x0``: moving x to the
network, the network's forward calls, the output back) is timed with ``time.perf_counter``,
with ``torch.cuda.synchronize`` on the network's device before and after on CUDA, so work
queued by the solver is not counted as the network's and the network's own kernels are. The
models are built anywhere (a study cell loads its own), which is why the class's evaluation is
wrapped for the duration of the block rather than an instance.

``callers`` names module prefixes to attribute evaluations to: an evaluation whose call stack
passes through a module whose name starts with a prefix is counted under that label as well
(e.g. ``{"reference": "odebench.reference"}`` separates the adaptive reference's evaluations
from the solvers'). The stack walk costs microseconds per evaluation.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .network import NetworkModel


@dataclass
class NetworkTime:
    """Evaluations counted and timed: in all (``calls``, ``rows``, ``seconds``) and per
    caller label (``by_caller[label] = [calls, seconds]``)."""

    calls: int = 0
    rows: int = 0
    seconds: float = 0.0
    by_caller: dict[str, list[float]] = field(default_factory=dict)

    def share(self, wall: float) -> float:
        """The fraction of ``wall`` seconds spent inside network evaluations."""
        return self.seconds / wall if wall > 0 else float("nan")

    def calls_of(self, label: str) -> int:
        return int(self.by_caller.get(label, [0, 0.0])[0])

    def seconds_of(self, label: str) -> float:
        return float(self.by_caller.get(label, [0, 0.0])[1])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _labels(callers: Mapping[str, str]) -> list[str]:
    """The labels of ``callers`` whose module prefix is on the current call stack."""
    found: list[str] = []
    frame = sys._getframe(2)
    while frame is not None and len(found) < len(callers):
        module = frame.f_globals.get("__name__", "")
        for label, prefix in callers.items():
            if label not in found and module.startswith(prefix):
                found.append(label)
        frame = frame.f_back
    return found


@contextmanager
def timed_networks(callers: Mapping[str, str] | None = None) -> Iterator[NetworkTime]:
    """Time every ``NetworkModel`` evaluation inside the block (module docstring); yields the
    running :class:`NetworkTime`. Not reentrant, not thread-safe."""
    callers = dict(callers or {})
    clock = NetworkTime(by_caller={label: [0, 0.0] for label in callers})
    original = NetworkModel._evaluate

    def evaluate(self: NetworkModel, x: torch.Tensor, t):
        labels = _labels(callers) if callers else []
        _sync(self.device)
        start = time.perf_counter()
        out = original(self, x, t)
        _sync(self.device)
        spent = time.perf_counter() - start
        clock.calls += 1
        clock.rows += x.shape[0]
        clock.seconds += spent
        for label in labels:
            clock.by_caller[label][0] += 1
            clock.by_caller[label][1] += spent
        return out

    NetworkModel._evaluate = evaluate  # type: ignore[method-assign]
    try:
        yield clock
    finally:
        NetworkModel._evaluate = original  # type: ignore[method-assign]
