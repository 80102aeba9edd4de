"""What each sampler claims: its nominal global order (with its source) and the odebench
solver of the same family it is compared with at equal NFE.

``nominal(name, config)`` reads the scheduler's effective config (``sch.config``), so e.g.
``solver_order`` of DPM-Solver or ``skip_prk_steps`` of PNDM set the claim. A class that is
not in the table has no claim (its order is measured, not judged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Claim:
    """A nominal global order, where it comes from, and the odebench solver of its family."""

    order: float | None
    source: str
    family: str | None = None
    family_options: dict[str, Any] = field(default_factory=dict)
    spacing: str = "uniform"  # odebench grid of the family solver, between the same times


def _k(config: Mapping[str, Any], key: str = "solver_order", default: int = 2) -> int:
    return int(config.get(key, default) or default)


def _ddim(c: Mapping[str, Any]) -> Claim:
    return Claim(1, "Song et al. 2021 (DDIM, eta = 0): Euler in sigma_tilde, order 1", "ddim")


def _pndm(c: Mapping[str, Any]) -> Claim:
    if c.get("skip_prk_steps", False):
        return Claim(
            2,
            "Liu et al. 2022 Property 3.2: pseudo linear multistep (PLMS) is order 2 "
            "(its AB4 gradient part alone: 4, the classical claim)",
            "ipndm",
        )
    return Claim(
        2,
        "Liu et al. 2022 Property 3.2: F-PNDM is order 2 (AB4 gradient part alone: 4)",
        "f-pndm",
    )


def _dpm_multi(c: Mapping[str, Any]) -> Claim:
    k = _k(c)
    family = {1: "ddim", 2: "dpm-solver++-2m"}.get(k, "dpm-solver++-3m")
    return Claim(k, f"Lu et al. 2022 (DPM-Solver++): multistep order {k} (solver_order)", family)


def _dpm_single(c: Mapping[str, Any]) -> Claim:
    k = _k(c)
    return Claim(
        k, f"Lu et al. 2022 (DPM-Solver): singlestep order {k} (solver_order)", f"dpm-solver-{k}"
    )


def _unipc(c: Mapping[str, Any]) -> Claim:
    k = _k(c)
    corrector = len(c.get("disable_corrector", []) or []) == 0
    order = k + 1 if corrector else k
    fam = f"unipc-{min(max(k, 2), 3)}" + ("-bh2" if c.get("solver_type", "bh2") == "bh2" else "")
    what = "UniC corrector on" if corrector else "corrector disabled at some steps"
    return Claim(order, f"Zhao et al. 2023 (UniPC-{k}, {what}): order {order}", fam)


def _deis(c: Mapping[str, Any]) -> Claim:
    k = _k(c)
    return Claim(
        k,
        f"Zhang & Chen 2023 (DEIS, log-rho multistep): order {k} (solver_order)",
        f"deis-tab-{min(k, 3)}",
        {"basis": "log_rho"},
    )


def _karras(c: Mapping[str, Any]) -> str:
    return "karras" if c.get("use_karras_sigmas", False) else "uniform"


def _euler(c: Mapping[str, Any]) -> Claim:
    return Claim(
        1,
        "k-diffusion sample_euler (Karras et al. 2022): Euler in sigma, order 1",
        "ddim",
        spacing=_karras(c),
    )


def _heun(c: Mapping[str, Any]) -> Claim:
    return Claim(
        2,
        "Karras et al. 2022 Algorithm 1 (Heun in sigma): order 2",
        "edm-heun",
        spacing=_karras(c),
    )


def _lms(c: Mapping[str, Any]) -> Claim:
    return Claim(
        4,
        "k-diffusion sample_lms: linear multistep in sigma, order 4 (step(order=4), the "
        "pipelines' default)",
        "ipndm-v",
        spacing=_karras(c),
    )


def _kdpm2(c: Mapping[str, Any]) -> Claim:
    return Claim(
        2,
        "k-diffusion sample_dpm_2 (Karras et al. 2022): DPM-Solver-2, midpoint in log sigma",
        "dpm-solver-2",
        spacing=_karras(c),
    )


def _flow_euler(c: Mapping[str, Any]) -> Claim:
    return Claim(
        1,
        "Euler in sigma on the flow-matching ODE (Esser et al. 2024, SD3): order 1; on this "
        "path it is DDIM",
        "euler",
    )


def _flow_heun(c: Mapping[str, Any]) -> Claim:
    return Claim(
        2,
        "Heun in sigma on the flow-matching ODE (Karras et al. 2022 Alg. 1): order 2",
        "heun",
        {"euler_into_clean": True},  # its last step, into sigma = 0, is Euler's
    )


def _edm_euler(c: Mapping[str, Any]) -> Claim:
    return Claim(1, "Karras et al. 2022 (EDM): Euler in sigma, order 1", "ddim", spacing="karras")


def _edm_dpm(c: Mapping[str, Any]) -> Claim:
    k = _k(c)
    family = {1: "ddim", 2: "dpm-solver++-2m"}.get(k, "dpm-solver++-3m")
    return Claim(
        k,
        f"Lu et al. 2022 (DPM-Solver++) on EDM sigmas: multistep order {k} (solver_order)",
        family,
        spacing="karras",
    )


#: Nominal claims by class name; each entry reads the effective config.
CLAIMS: dict[str, Callable[[Mapping[str, Any]], Claim]] = {
    "DDIMScheduler": _ddim,
    "PNDMScheduler": _pndm,
    "DPMSolverMultistepScheduler": _dpm_multi,
    "DPMSolverSinglestepScheduler": _dpm_single,
    "UniPCMultistepScheduler": _unipc,
    "DEISMultistepScheduler": _deis,
    "EulerDiscreteScheduler": _euler,
    "HeunDiscreteScheduler": _heun,
    "LMSDiscreteScheduler": _lms,
    "KDPM2DiscreteScheduler": _kdpm2,
    "FlowMatchEulerDiscreteScheduler": _flow_euler,
    "FlowMatchHeunDiscreteScheduler": _flow_heun,
    "EDMEulerScheduler": _edm_euler,
    "EDMDPMSolverMultistepScheduler": _edm_dpm,
}


def _weak_ddpm(c: Mapping[str, Any]) -> Claim:
    return Claim(
        1,
        "Ho et al. 2020 ancestral sampling, a first-order discretisation of the reverse VP SDE "
        "(Song et al. 2021, App. E): weak order 1",
    )


def _weak_euler_a(c: Mapping[str, Any]) -> Claim:
    return Claim(
        1,
        "k-diffusion sample_euler_ancestral: an Euler step to sigma_down plus fresh noise "
        "sigma_up (Karras et al. 2022): weak order 1",
    )


def _weak_ddim(c: Mapping[str, Any]) -> Claim:
    return Claim(1, "Song et al. 2021 (DDIM, eta > 0): first-order in sigma_tilde, weak order 1")


def _weak_dpm_multi(c: Mapping[str, Any]) -> Claim:
    k = _k(c)
    if k == 1:
        return Claim(1, "Lu et al. 2022 (SDE-DPM-Solver++1): weak order 1")
    return Claim(
        None,
        f"Lu et al. 2022 (SDE-DPM-Solver++({k}M)): no weak order stated (measured, not judged)",
    )


#: Nominal weak orders of the stochastic samplers, by class name.
WEAK_CLAIMS: dict[str, Callable[[Mapping[str, Any]], Claim]] = {
    "DDPMScheduler": _weak_ddpm,
    "EulerAncestralDiscreteScheduler": _weak_euler_a,
    "DDIMScheduler": _weak_ddim,
    "DPMSolverMultistepScheduler": _weak_dpm_multi,
}


def nominal_weak(name: str, config: Mapping[str, Any]) -> Claim:
    """The nominal weak order of a stochastic scheduler (None where none is on record)."""
    rule = WEAK_CLAIMS.get(name)
    if rule is None:
        return Claim(None, "no nominal weak order on record for this class")
    return rule(config)


def nominal(name: str, config: Mapping[str, Any]) -> Claim:
    """The claim for scheduler class ``name`` with its effective ``config``."""
    rule = CLAIMS.get(name)
    if rule is None:
        return Claim(None, "no nominal order on record for this class")
    return rule(config)


def markdown_table() -> str:
    """The table of nominal orders (default configs) for the README."""
    lines = ["| scheduler | nominal order | source | odebench family solver |", "|---|---|---|---|"]
    for name, rule in CLAIMS.items():
        c = rule({})
        lines.append(f"| {name} | {c.order} | {c.source} | {c.family} |")
    return "\n".join(lines) + "\n"
