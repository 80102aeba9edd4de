"""``odebench list``: solvers, problems, schedules, time grids and shipped networks."""

from __future__ import annotations

import json
from collections.abc import Sequence


def cmd_list() -> None:
    """Print every solver, stochastic sampler, problem, schedule, time grid and shipped network."""
    from .. import grids, problems, schedules, solvers
    from ..kinds.common import nfe_rule

    print(
        "Solvers (order: theoretical global order; interior: order of a step away from the "
        "start and end;\n gradient: order of the gradient part; composition: gradient part x "
        "transfer part):"
    )
    rows = []
    for name in solvers.names():
        s = solvers.get(name)
        local = s.local_order
        rows.append(
            (
                name,
                str(s.order if s.order is not None else "-"),
                str(local - 1 if local is not None else "-"),
                str(s.gradient_order if s.gradient_order is not None else "-"),
                nfe_rule(s),
                s.composition,
            )
        )
    _print_rows(("name", "order", "interior", "gradient", "NFE", "composition"), rows)
    print("  aliases: " + ", ".join(f"{a} = {t}" for a, t in solvers.ALIASES.items()))
    print(
        "\nStochastic samplers (SDE methods; odebench.solve(..., generator=...); weak / strong:"
        " declared orders, - where none is published):"
    )
    rows = []
    for name in solvers.sde_names():
        s = solvers.get(name)
        rows.append(
            (
                name,
                str(s.weak_order if s.weak_order is not None else "-"),
                str(s.strong_order if s.strong_order is not None else "-"),
                nfe_rule(s),
                s.composition,
            )
        )
    _print_rows(("name", "weak", "strong", "NFE", "composition"), rows)
    print("\nProblems (exact eps):")
    _print_rows(("name", "description"), [(n, problems.describe(n)) for n in problems.names()])
    print("\nSchedules:")
    _print_rows(
        ("name", "path", "t range", "description"),
        [
            (n, s.interpolant, f"[{s.t_lo:g}, {s.t_hi:g}]", s.description)
            for n, s in ((n, schedules.get(n)) for n in schedules.names())
        ],
    )
    print("\nTime grids (odebench.timesteps spacing=...):")
    _print_rows(("spacing", "description"), list(grids.SPACINGS.items()))
    print("\nShipped networks (odebench.models.load(name); studies: model = name or trained):")
    _print_rows(
        ("name", "problem", "schedule", "predicts", "time input", "parameters"), _network_rows()
    )


def _network_rows() -> list[tuple[str, ...]]:
    from ..models.loading import ASSETS, shipped

    rows = []
    for name in shipped():
        card = json.loads((ASSETS / f"{name}.json").read_text())
        params = card.get("parameters")
        rows.append(
            (
                name,
                card.get("problem", card["data"]),
                card["schedule"],
                card.get("parametrization", "eps"),
                card["time_input"],
                f"{params:,}" if params else "-",
            )
        )
    return rows


def _print_rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from .._text import fixed_width

    print(fixed_width(header, rows, rule=False, indent="  "))
