"""Gradient parts as data: explicit Runge-Kutta tableaus and Adams-Bashforth weights.

A tableau is written in *normalised* form, the form in which the pseudo methods are defined:
stage i is the transfer of x_n, with the combination sum_j ``a[i][j]`` g_j (each row sums
to 1), to the stage time t_n + c_i h. With the linear transfer this is the classical Butcher
tableau A_ij = c_i ``a[i][j]``; with the DDIM transfer it is the pseudo method of Liu et al.
(2022), e.g. the PRK stages x_2 = phi(x_n, e_1, t, t - delta/2), x_3 = phi(x_n, e_2, ...),
all from x_n.

A tableau checks itself on construction: shapes, row sums, and the classical order conditions
up to the order it declares (and that it does not satisfy the next order's, so a declared order
is never an underestimate that hides a typo).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

_TOL = 1e-12


@dataclass(frozen=True)
class Tableau:
    """An explicit RK method in normalised form (see the module docstring).

    >>> HEUN.butcher_a().tolist()
    [[0.0, 0.0], [1.0, 0.0]]
    """

    name: str
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int
    #: How the method is called with the linear transfer and with the DDIM transfer (e.g.
    #: "RK4" and "PRK"); both default to the name.
    label: str = field(default="", compare=False)
    pseudo_label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        s = len(self.c)
        if len(self.a) != s or len(self.b) != s:
            raise ValueError(f"{self.name}: c, a and b must all have {s} stages")
        if self.c[0] != 0 or self.a[0] != ():
            raise ValueError(f"{self.name}: an explicit method starts at c = 0 with no inputs")
        for i in range(1, s):
            if len(self.a[i]) != i:
                raise ValueError(f"{self.name}: row {i} of a must have {i} entries")
            if abs(sum(self.a[i]) - 1.0) > _TOL:
                raise ValueError(f"{self.name}: row {i} of a must sum to 1")
        if abs(sum(self.b) - 1.0) > _TOL:
            raise ValueError(f"{self.name}: b must sum to 1")
        if not all(0.0 <= ci <= 1.0 for ci in self.c):
            raise ValueError(f"{self.name}: stage times c must lie in [0, 1]")
        failed = [k for k in range(1, self.order + 1) if not _conditions_hold(self, k)]
        if failed:
            raise ValueError(f"{self.name}: order conditions of order {failed[0]} fail")
        if self.order < 4 and _conditions_hold(self, self.order + 1):
            raise ValueError(
                f"{self.name}: satisfies order {self.order + 1}, declares {self.order}"
            )

    def describe(self, pseudo: bool) -> str:
        """The method's name as a warm-up description reads it."""
        plain = self.label or self.name
        return (self.pseudo_label or f"pseudo {plain}") if pseudo else plain

    @property
    def stages(self) -> int:
        return len(self.c)

    def butcher_a(self) -> np.ndarray:
        """The classical Butcher matrix A_ij = c_i ``a[i][j]``."""
        A = np.zeros((self.stages, self.stages))
        for i, row in enumerate(self.a):
            A[i, : len(row)] = np.asarray(row) * self.c[i]
        return A


def _conditions_hold(tab: Tableau, order: int) -> bool:
    """Butcher's order conditions of exactly ``order`` (orders 1..4; higher are not checked)."""
    A, b, c = tab.butcher_a(), np.asarray(tab.b), np.asarray(tab.c)
    conditions = {
        1: [(b.sum(), 1)],
        2: [(b @ c, Fraction(1, 2))],
        3: [(b @ c**2, Fraction(1, 3)), (b @ A @ c, Fraction(1, 6))],
        4: [
            (b @ c**3, Fraction(1, 4)),
            (b @ (c * (A @ c)), Fraction(1, 8)),
            (b @ A @ c**2, Fraction(1, 12)),
            (b @ A @ A @ c, Fraction(1, 24)),
        ],
    }.get(order)
    if conditions is None:
        return False
    return all(abs(float(lhs) - float(rhs)) < 1e-12 for lhs, rhs in conditions)


EULER = Tableau("euler", c=(0.0,), a=((),), b=(1.0,), order=1, label="Euler", pseudo_label="DDIM")
HEUN = Tableau(
    "heun", c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5), order=2, label="Heun", pseudo_label="PIE"
)
RK4 = Tableau(
    "rk4",
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (1.0,), (0.0, 1.0), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    order=4,
    label="RK4",
    pseudo_label="PRK",
)


def ab_weights_exact(k: int) -> tuple[Fraction, ...]:
    """Adams-Bashforth-k weights for equal steps, newest value first, as exact fractions.

    In units of the step, the history sits at u = 0, -1, ..., -(k - 1) and the step covers
    [0, 1]; w_j is the mean over the step of the Lagrange basis polynomial of node -j,
    w_j = integral_0^1 prod_{i != j} (u + i) / (i - j) du (nodes-and-integrals, as nodepy
    generates its coefficients), computed in rational arithmetic.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"Adams-Bashforth needs k >= 1 points, got {k!r}")
    weights = []
    for j in range(k):
        poly = [Fraction(1)]  # coefficients of the basis polynomial, lowest degree first
        for i in range(k):
            if i == j:
                continue
            scale = Fraction(1, i - j)  # factor (u + i) / (i - j)
            shifted = [Fraction(0), *poly]  # u * poly
            padded = [*poly, Fraction(0)]
            poly = [(a + i * b) * scale for a, b in zip(shifted, padded, strict=True)]
        weights.append(sum(c / (d + 1) for d, c in enumerate(poly)))
    return tuple(weights)


#: Adams-Bashforth weights for equal steps, newest value first (AB1 is Euler), generated from
#: ``ab_weights_exact`` and rounded once: 3/2, -1/2; 23/12, -16/12, 5/12; 55/24, ...
AB_FIXED: dict[int, tuple[float, ...]] = {
    k: tuple(float(w) for w in ab_weights_exact(k)) for k in (1, 2, 3, 4)
}


def ab_variable_weights(nodes: np.ndarray, v_from: float, v_to: float) -> np.ndarray:
    """Adams-Bashforth weights for arbitrary past nodes (newest first, nodes[0] = v_from).

    w_j = (1 / (v_to - v_from)) * integral over [v_from, v_to] of the Lagrange basis
    polynomial of node j, so sum_j w_j g_j is the mean over the step of the polynomial
    through the history. On equal steps it reduces to ``AB_FIXED``.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    width = v_to - v_from
    if width == 0:
        raise ValueError("a multistep step must have non-zero length")
    u = (nodes - v_from) / width  # normalised: the step is [0, 1]
    if len(set(u.tolist())) != len(u):
        raise ValueError("multistep history has repeated time points")
    weights = np.empty(len(u))
    for j, uj in enumerate(u):
        others = np.delete(u, j)
        basis = np.polynomial.polynomial.polyfromroots(others) / np.prod(uj - others)
        antideriv = np.polynomial.polynomial.polyint(basis)
        weights[j] = np.polynomial.polynomial.polyval(1.0, antideriv)
    return weights
