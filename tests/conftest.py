"""Shared test settings: deterministic hypothesis runs, float64, one torch thread.

Small float64 tensors are faster on one thread (no pool start-up per op), and
derandomized hypothesis runs make every CI run see the same examples.
"""

import os

import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(1)

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
