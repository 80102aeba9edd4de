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
import threading
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


def _labels(callers: Mapping[str, str], known: dict) -> list[str]:
    """The labels of ``callers`` whose module prefix is on the current call stack. ``known``
    caches each code object's labels (a function's module never changes), so a frame costs
    one dict lookup: the walk runs once per evaluation through 25 to 40 frames."""
    found: list[str] = []
    frame = sys._getframe(2)
    while frame is not None and len(found) < len(callers):
        code = frame.f_code
        labels = known.get(code)
        if labels is None:
            module = frame.f_globals.get("__name__", "")
            labels = known[code] = tuple(
                label for label, prefix in callers.items() if module.startswith(prefix)
            )
        for label in labels:
            if label not in found:
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
    known: dict = {}

    def evaluate(self: NetworkModel, x: torch.Tensor, t):
        labels = _labels(callers, known) if callers else []
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


_NETWORK_MODULE = NetworkModel.__module__

#: Where ``sampled_host_time`` files a sample: the innermost frame's module decides, by the
#: first prefix that matches (more specific prefixes first); "network" wins wherever a
#: ``NetworkModel`` evaluation is on the stack.
HOST_SECTIONS: tuple[tuple[str, str], ...] = (
    ("schedule", "odebench.schedules"),
    ("integrator", "odebench.integrate"),
    ("reference", "odebench.reference"),
    ("solvers", "odebench.solvers"),
    ("metrics", "odebench.metrics"),
    ("metrics", "odebench.models.classifier"),  # the digits classifier's features
    ("timing", __name__),
    ("loading", "odebench.models"),
    ("loading", "odebench.problems"),
    ("loading", "importlib"),
    ("errors", "odebench.convergence"),
    ("study kind", "odebench.kinds"),
    ("odebench, other", "odebench"),
)


@dataclass
class HostSamples:
    """Stack samples per section (``sampled_host_time``): how many, and the wall seconds
    they stand for (each sample is weighted by the time since the one before it)."""

    interval: float
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def shares(self) -> dict[str, float]:
        """Each section's fraction of the sampled wall time, largest first."""
        total = sum(self.seconds.values()) or 1.0
        ordered = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        return {name: spent / total for name, spent in ordered}


def _section(frame, sections: tuple[tuple[str, str], ...]) -> str:
    """The section of a stack: "network" if a network evaluation (``NetworkModel._evaluate``)
    is on it, otherwise that of the innermost frame whose module matches a prefix (torch's
    and the standard library's frames are filed by their caller's), else "other"."""
    label = None
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_evaluate" and frame.f_globals.get("__name__") == _NETWORK_MODULE:
            return "network"
        if label is None:
            module = frame.f_globals.get("__name__", "")
            for name, prefix in sections:
                if module.startswith(prefix):
                    label = name
                    break
        frame = frame.f_back
    return label or "other"


@contextmanager
def sampled_host_time(
    interval: float = 0.002, sections: tuple[tuple[str, str], ...] = HOST_SECTIONS
) -> Iterator[HostSamples]:
    """Sample the calling thread's stack every ``interval`` seconds from a helper thread and
    file each sample under a section (``HOST_SECTIONS``): where the wall time outside the
    network goes, without a profiler's per-call cost (cProfile inflates Python-heavy code
    several-fold). The helper only wakes to read a frame, so it costs the measured thread
    little. It can read one only when the measured thread lets go of the GIL: at once inside
    a call that releases it (a sleep, a device synchronisation, many torch kernels), after up
    to the interpreter's switch interval (5 ms) in pure Python. Each sample therefore stands
    for the wall time since the previous one, so Python-heavy sections are not undercounted;
    read the shares as estimates all the same."""
    if not interval > 0:
        raise ValueError(f"interval must be positive, got {interval}")
    samples = HostSamples(interval=interval)
    target = threading.get_ident()
    stop = threading.Event()

    def run() -> None:
        last = time.perf_counter()
        while not stop.wait(interval):
            frame = sys._current_frames().get(target)
            now = time.perf_counter()
            if frame is None:
                continue
            label = _section(frame, sections)
            samples.counts[label] = samples.counts.get(label, 0) + 1
            samples.seconds[label] = samples.seconds.get(label, 0.0) + (now - last)
            last = now
            del frame

    helper = threading.Thread(target=run, name="odebench-host-sampler", daemon=True)
    helper.start()
    try:
        yield samples
    finally:
        stop.set()
        helper.join()
