"""Eps error of the shipped GMM networks on and off the data manifold (PNDM's hypothesis).

    python scripts/network_error.py                       # both networks -> figures/networks
    python scripts/network_error.py --network gmm-2d-mlp --out /tmp/err

For each network, ``odebench.network_error.eps_error_profile`` compares the network's eps
with the exact eps of its problem (the card's ``data`` and ``schedule``) at exact samples of
p_t ("on"), at those samples scaled by 0.9 and 1.1 ("radial-0.9", "radial-1.1"), and at the
points one classical Euler step of the exact PF-ODE lands on ("euler-<dt>", for the steps
``--euler-dt``, default 0.02 and 0.1: one step of a 50- and of a 10-step uniform grid).
Writes ``eps_error_<network>.csv`` (one row per t and place) and ``eps_error_<network>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import odebench as ob
from odebench.models import load
from odebench.network_error import eps_error_profile, plot_eps_error

NETWORKS = ("gmm-2d-mlp", "gmm-64d-mlp")
#: 1e-3 .. 1 at 6 points per decade, plus the summary times 0.5 and 0.9.
TIMES = sorted(set(np.round(np.logspace(-3, 0, 19), 6).tolist()) | {0.5, 0.9})
#: Euler steps: one step of a 50-step (the paper's headline) and of a 10-step uniform grid.
EULER_DTS = (0.02, 0.1)


def profile(
    network: str,
    out: Path,
    *,
    n: int = 2048,
    seed: int = 0,
    euler_dt: float | tuple[float, ...] = EULER_DTS,
) -> pd.DataFrame:
    """Measure, write the CSV and the figure for ``network``; return the table."""
    model = load(network)
    card = model.card
    problem = ob.problems.get(card["data"], schedule=card["schedule"])
    rows = eps_error_profile(
        model,
        problem,
        TIMES,
        n=n,
        generator=torch.Generator().manual_seed(seed),
        euler_dt=euler_dt,
    )
    df = pd.DataFrame(rows)
    df.insert(0, "network", network)
    df["seed"] = seed
    steps = ", ".join(f"{dt:g}" for dt in np.atleast_1d(euler_dt))
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"eps_error_{network}.csv", index=False)
    plot_eps_error(
        rows,
        out / f"eps_error_{network}.png",
        title=(
            f"{network} on {card['data']} ({card['schedule']} schedule): eps error on / off "
            f"the manifold (n = {n}, Euler steps {steps})"
        ),
    )
    return df


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--network", action="append", choices=NETWORKS, help="network (repeatable; default both)"
    )
    parser.add_argument("--out", type=Path, default=Path("figures/networks"), help="folder")
    parser.add_argument("--n", type=int, default=2048, help="points per t and place")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--euler-dt",
        type=float,
        nargs="+",
        default=list(EULER_DTS),
        help="Euler step(s) in t (one value: rows 'euler'; several: 'euler-<dt>')",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for network in args.network or NETWORKS:
        dts = args.euler_dt[0] if len(args.euler_dt) == 1 else tuple(args.euler_dt)
        df = profile(network, args.out, n=args.n, seed=args.seed, euler_dt=dts)
        table = df.pivot(index="t", columns="where", values="rel_error")
        print(f"{network}: relative eps error\n{table.to_string(float_format='%.3g')}\n")


if __name__ == "__main__":
    main()
