"""Profile the GPU check's orders cell on the host: where a cell's wall time goes besides the
network (``scripts/gpu_check.py`` reports only the share).

    python scripts/profile_gpu_orders.py --device cuda --out DIR        # on the GPU machine
    python scripts/profile_gpu_orders.py --network gmm-2d-mlp --device cpu --out DIR

It runs the orders cell of ``gpu_check.network_specs`` with its first two step counts (the
reference, most of the work, is the same as the full cell's) once under ``cProfile``, prints
the cell's seconds, network seconds and evaluations, and writes ``profile_orders_tottime.txt``
and ``profile_orders_cumtime.txt`` (the top 45 functions by own and by cumulative time) and
the cell's CSVs to ``--out``. cProfile inflates Python-heavy code, so read the shares between
functions, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="digits-unet", help="a shipped network")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    small = args.network != "digits-unet"
    spec = gpu_check.network_specs(args.network, args.device, small)["orders"]
    spec["grid"]["steps"] = spec["grid"]["steps"][:2]
    args.out.mkdir(parents=True, exist_ok=True)
    profile = cProfile.Profile()
    profile.enable()
    report = gpu_check.run_network_study(spec, args.out)
    profile.disable()
    print(
        f"cell {report['seconds']:.1f} s, in the network {report['network_seconds']:.1f} s; "
        f"evaluations {report['network_calls']} (reference {report['reference_calls']})"
    )
    for key in ("tottime", "cumtime"):
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats(key).print_stats(45)
        (args.out / f"profile_orders_{key}.txt").write_text(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
