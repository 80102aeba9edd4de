"""What every solver declares, its explicit state, and the Solution it returns.

A fixed-step solver is a state machine (the diffrax design, in torch):

    state = solver.init(model, schedule, x, ts)      # at ts[0]
    state = solver.step(state)                       # at ts[1], ts[2], ...

The ``State`` carries everything a step reads: the run (model, schedule, grid and the
solver's per-grid plan), the current node ``n`` and state ``x``, and the ``history`` of model
evaluations a multistep method keeps, each tied to the grid node it was made at. Because the
state is explicit, ``solver.exact_state(model, schedule, ts, n, states)`` can build the state
at node n that the solver would hold had every earlier state been exact, and one step from it
is the solver's local error there, for multistep and predictor-corrector methods as much as
for Runge-Kutta ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from ..schedules import Schedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Divergence:
    """Which samples of a run stopped being finite, and when.

    ``step`` (1-based) is the earliest step over the batch that produced a non-finite state,
    from t_from to t_to; ``sample_steps`` (shape (B,), int64, on the CPU) holds each sample's
    own first non-finite step, 0 for a sample that stayed finite. A sample is carried by its
    own row only (every solver step acts row by row), so the others keep their values."""

    step: int  # 1-based: the state after `step` steps was the first non-finite one
    t_from: float
    t_to: float
    sample_steps: torch.Tensor | None = field(default=None, compare=False, repr=False)

    @property
    def mask(self) -> torch.Tensor | None:
        """True for every sample that diverged (None where per-sample steps are not known)."""
        return None if self.sample_steps is None else self.sample_steps > 0

    @property
    def samples(self) -> list[int]:
        """The indices of the samples that diverged."""
        mask = self.mask
        return [] if mask is None else torch.nonzero(mask).flatten().tolist()

    @property
    def count(self) -> int | None:
        """How many samples diverged (None where per-sample steps are not known)."""
        return None if self.sample_steps is None else int(self.mask.sum())

    def __str__(self) -> str:
        where = f"step {self.step} (t {self.t_from:g} -> {self.t_to:g})"
        if self.sample_steps is None or self.count == len(self.sample_steps):
            return f"diverged at {where}"
        return f"{self.count} of {len(self.sample_steps)} samples diverged, the first at {where}"


@dataclass
class Solution:
    """The result of ``odebench.solve``.

    ``x`` is the state at ts[-1] (NaN in the rows of samples that diverged), ``nfe`` the
    model evaluations actually made, ``trajectory`` the states at every grid time (shape
    (len(ts), *x.shape)) when requested (NaN in a diverged sample's row from its first
    non-finite step on), and ``diverged`` which samples left the finite numbers and when, or
    None.
    """

    x: torch.Tensor
    nfe: int
    ts: torch.Tensor
    solver: str
    trajectory: torch.Tensor | None = None
    diverged: Divergence | None = None

    @property
    def finite(self) -> torch.Tensor:
        """True for every sample that stayed finite (shape (B,), on the CPU)."""
        if self.diverged is None or self.diverged.mask is None:
            return torch.ones(self.x.shape[0], dtype=torch.bool)
        return ~self.diverged.mask


@dataclass(frozen=True)
class Run:
    """What stays fixed over one solve: the model, the schedule, the grid (decreasing times)
    and the solver's plan for that grid (stage times, step weights; None if it needs none).
    ``nodes`` are the grid's times as 0-d tensors, made once."""

    model: EpsModel
    sched: Schedule
    ts: torch.Tensor
    plan: Any = None
    #: A stochastic sampler's noise source, noise(x, t, s) -> xi (``odebench.solvers.noise``).
    noise: Any = None
    nodes: tuple[torch.Tensor, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.ts.unbind(0)))

    @property
    def steps(self) -> int:
        return len(self.nodes) - 1


@dataclass(frozen=True)
class Node:
    """One kept model evaluation: made at grid node ``node`` (time ``ts[node]``); ``value``
    is what the method combines there (eps, the data prediction, or the ODE's slope)."""

    node: int
    value: torch.Tensor


class State(NamedTuple):
    """A solver's state at grid node ``n``: ``x`` at ``run.ts[n]`` and the kept evaluations
    (oldest first). Immutable: a step returns a new State (``advanced``)."""

    run: Run
    n: int
    x: torch.Tensor
    history: tuple[Node, ...] = ()

    @property
    def t(self) -> torch.Tensor:
        return self.run.nodes[self.n]

    @property
    def s(self) -> torch.Tensor:
        """The time the next step goes to."""
        return self.run.nodes[self.n + 1]

    @property
    def is_last_step(self) -> bool:
        return self.n == len(self.run.nodes) - 2

    def advanced(self, x: torch.Tensor, history: Sequence[Node] | None = None) -> State:
        """The state one node on, at x, with ``history`` (default: unchanged)."""
        kept = self.history if history is None else tuple(history)
        return State(self.run, self.n + 1, x, kept)


class Solver(ABC):
    """A sampler seen as an ODE solver, written as an explicit state machine.

    Declared (and read by tests and studies, never copied): ``name``, ``order`` (theoretical
    global order, cited in the docstring), ``gradient_order`` (the order of the gradient part
    alone: the global order when the transfer is exact in the grid's variable, e.g. on a
    pure-quadrature problem on the "edm" schedule), ``nfe(steps)``, ``min_steps`` and
    ``warmup`` (a description of the start-up steps).

    A subclass implements ``step`` and, if it needs them, ``plan`` (per-grid precomputation),
    ``history_nodes`` (which earlier nodes' evaluations the state at node n holds) and
    ``node_value`` (what is kept of an evaluation).
    """

    name: str = "solver"
    order: int | None = None
    #: The order of an interior step (local error O(h^(p + 1)) away from the start and the
    #: end) where a warm-up or a final-step rule caps the global order below it; None: the
    #: global order. Read by ``local_order``.
    interior_order: int | None = None
    gradient_order: int | None = None
    warmup: str = "none"
    citation: str = ""
    adaptive: bool = False
    #: True for methods that carry evaluations from earlier steps (multistep methods): one
    #: step from an exact state then needs an exact history too.
    takes_history: bool = False
    #: How many earlier nodes' evaluations a state keeps once its history is full, and
    #: whether it also holds the evaluation at its own node (made by the step before, as
    #: UniPC's corrector evaluation is): see ``history_nodes``.
    history_depth: int = 0
    keeps_current: bool = False
    #: Stochastic samplers draw noise at every step (from ``Run.noise``) and declare a weak
    #: and a strong order (None where no published result gives one: then it is measured).
    stochastic: bool = False
    weak_order: float | None = None
    strong_order: float | None = None
    #: True where a grid may start at alpha = 0 (flow matching's t = 1) given a model that
    #: predicts x0 itself (``model.x0``): the classical methods (their slope there is the
    #: velocity alpha' x0 + sigma' x / sigma) and DPM-Solver++'s data form, whose formulas have
    #: finite limits as lambda -> -inf. Steps built on eps (the DDIM map) cannot start there.
    starts_at_noise_end: bool = False

    @abstractmethod
    def nfe(self, steps: int) -> int | None:
        """Model evaluations for ``steps`` steps (None for adaptive solvers)."""

    @property
    def local_order(self) -> int | None:
        """The expected slope of one-step errors in the smooth region: interior order + 1."""
        p = self.interior_order if self.interior_order is not None else self.order
        return None if p is None else p + 1

    def nfe_on(self, sched: Schedule, ts: torch.Tensor) -> int | None:
        """Model evaluations on this grid (differs from ``nfe`` where a step into sigma = 0
        is cheaper)."""
        return self.nfe(len(ts) - 1)

    @property
    def min_steps(self) -> int:
        return 1

    def steps_for_nfe(self, nfe: int) -> int:
        """The most steps whose model evaluations fit in ``nfe`` (for equal-NFE comparisons)."""
        if self.adaptive:
            raise ValueError(f"{self.name} is adaptive: its NFE is not set by a step count")
        if self.nfe(self.min_steps) > nfe:
            raise ValueError(
                f"{self.name} needs {self.nfe(self.min_steps)} evaluations for its minimum of "
                f"{self.min_steps} steps; {nfe} is too few"
            )
        n = self.min_steps
        while self.nfe(n + 1) <= nfe:
            n += 1
        return n

    # -- the state machine ----------------------------------------------------------------
    def plan(self, sched: Schedule, ts: torch.Tensor) -> Any:
        """Per-grid precomputation shared by every step (stage times, weights); None here."""
        return None

    def history_nodes(self, n: int) -> range:
        """The grid nodes whose evaluations the state at node n holds."""
        return range(max(0, n - self.history_depth), n + int(self.keeps_current))

    def kept(self, history: Sequence[Node]) -> tuple[Node, ...]:
        """The newest evaluations a state keeps: ``history_depth`` (+ 1 with
        ``keeps_current``)."""
        keep = self.history_depth + int(self.keeps_current)
        return tuple(history[max(0, len(history) - keep) :])

    def node_value(self, run: Run, x: torch.Tensor, node: int) -> torch.Tensor:
        """What the method keeps of the model evaluated at (x, ts[node])."""
        return self.transfer.evaluate(run.sched, run.model, x, run.nodes[node])

    def init(
        self, model: EpsModel, sched: Schedule, x: torch.Tensor, ts: torch.Tensor, noise=None
    ) -> State:
        """The state at ts[0] (``noise``: a stochastic sampler's noise source)."""
        run = Run(model, sched, ts, self.plan(sched, ts), noise)
        return State(run, 0, x, self._evaluate(run, {0: x}, self.history_nodes(0)))

    @abstractmethod
    def step(self, state: State) -> State:
        """One step: the state at ``state.n + 1``."""

    def exact_state(
        self,
        model: EpsModel,
        sched: Schedule,
        ts: torch.Tensor,
        n: int,
        states: Sequence[torch.Tensor] | torch.Tensor,
    ) -> State:
        """The state at node n had every earlier state been exact: x = states[n] and every
        kept evaluation made at the exact state of its node (``states[j]`` at ``ts[j]``).

        ``solver.step(solver.exact_state(...)).x - x(ts[n + 1])`` is the local error of the
        step the solver takes at node n of this grid (warm-up, ramp and final-step rules
        included: they are decided by n and the grid)."""
        if not 0 <= n < len(ts) - 1:
            raise ValueError(f"node {n} has no step after it on a grid of {len(ts)} times")
        run = Run(model, sched, ts, self.plan(sched, ts))
        nodes = self.history_nodes(n)
        history = self._evaluate(run, {j: states[j] for j in nodes}, nodes)
        return State(run, n, states[n], history)

    def _evaluate(self, run: Run, xs: dict[int, torch.Tensor], nodes: range) -> tuple[Node, ...]:
        return tuple(Node(j, self.node_value(run, xs[j], j)) for j in nodes)

    def describe_step(self, n: int, steps: int) -> str:
        """What the solver does at step n of ``steps`` (for per-step error tables)."""
        return self.name

    def iterate(
        self, model: EpsModel, sched: Schedule, x: torch.Tensor, ts: torch.Tensor, noise=None
    ) -> Iterator[torch.Tensor]:
        """Yield the state after each step: at ts[1], ts[2], ..., ts[-1]."""
        state = self.init(model, sched, x, ts, noise)
        for _ in range(len(ts) - 1):
            state = self.step(state)
            yield state.x

    #: The gradient part in words (the transfer part is ``transfer``).
    gradient: str = ""

    @property
    def composition(self) -> str:
        """gradient part x transfer part, e.g. "RK4 tableau x ddim"."""
        transfer = getattr(self, "transfer", None)
        if transfer is None:
            return self.gradient or "not a transfer x gradient method"
        return f"{self.gradient or self.name} x {transfer.name}"

    @property
    def summary(self) -> str:
        """One line for ``odebench list``."""
        doc = (type(self).__doc__ or "").strip().splitlines()
        return doc[0] if doc else self.name

    def __repr__(self) -> str:
        return f"<Solver {self.name!r} order={self.order}>"
