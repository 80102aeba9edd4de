"""The one rule for how many history points a multistep step uses.

Every multistep method here (Adams-Bashforth on slopes, DPM-Solver++(kM), UniPC-p, DEIS-k)
starts with a lower-order ramp: step n (0-based) has only n + 1 evaluations, so it uses
order min(k, n + 1). Implementations then lower the order of the last steps
(``lower_order_final``: at most N - n at step n of N, so the last step is first order), some
only below a number of steps (diffusers' DPM-Solver and DEIS schedulers: below 15; Lu et al.'s
dpm_solver_pytorch.py: below 10; UniPC: always). A step into sigma = 0 (t = 0, lambda = +inf)
has h = inf in lambda: exponential-integrator methods take it with order 1, the x0-prediction.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OrderRule:
    """order_at(n, steps, into_clean) for a k-step method (see the module docstring).

    ``final_below``: apply ``lower_order_final`` only when steps < final_below (None: always).
    ``clean_end_first_order``: a step into sigma = 0 is first order.
    """

    k: int
    lower_order_final: bool = False
    final_below: int | None = None
    clean_end_first_order: bool = True

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"a multistep method uses at least 1 point, got k={self.k}")
        if self.final_below is not None and (
            isinstance(self.final_below, bool) or not isinstance(self.final_below, int)
        ):
            raise ValueError("lower_order_final_below must be an integer number of steps")

    def order_at(self, n: int, steps: int, into_clean: bool = False) -> int:
        """The order of step n (0-based) of ``steps``."""
        if into_clean and self.clean_end_first_order:
            return 1
        order = min(self.k, n + 1)
        if self.lower_order_final and (self.final_below is None or steps < self.final_below):
            order = min(order, steps - n)
        return order

    def describe(self) -> str:
        """The ramp and final rule in words, e.g. for ``Solver.warmup``."""
        if not self.lower_order_final:
            return ""
        when = "" if self.final_below is None else f" if N < {self.final_below}"
        return f"lower order final{when}"
