"""``odebench audit``: measure a third-party sampler from outside.

    from odebench.audit import audit
    report = audit("diffusers:DDIMScheduler", {"timestep_spacing": "trailing"})
    print(report.card())          # the report card
    report.findings               # short strings naming each departure from the claim

Interfaces (:mod:`.interfaces`) choose the path (VP table, flow matching, EDM) and the model
output (eps, x0, v, velocity, EDM's raw output) each scheduler expects; adapters
(:mod:`.adapters`) drive the scheduler exactly as a pipeline does; probes
(:mod:`.probes`) read where its states are in time and whether it computes in float64;
:mod:`.measure` runs the step ladder against exact solutions; :mod:`.report` fits orders,
names findings and writes the CSV, card and figure; :mod:`.cli` is the ``odebench audit``
command. A sampler whose runs from one x_T differ is stochastic: :mod:`.stochastic` drives
its noise (exact output laws on Gaussian problems, Brownian paths), :mod:`.stochastic_ladder`
measures weak and strong errors and :mod:`.stochastic_card` writes its card. The "audit"
study kind (many samplers at once) is :mod:`odebench.kinds.audit`.
"""

from .adapters import drive, parse_config, resolve
from .measure import DEFAULT_STEPS, measure
from .nominal import CLAIMS, Claim, nominal
from .report import AuditReport, audit, build_report

__all__ = [
    "CLAIMS",
    "DEFAULT_STEPS",
    "AuditReport",
    "Claim",
    "audit",
    "build_report",
    "drive",
    "measure",
    "nominal",
    "parse_config",
    "resolve",
]
