"""Figures of the studies (matplotlib, Agg backend, written as PNG), one module per family.

Plotting takes data and draws it: everything a figure needs from a study kind (its cell keys,
its Pareto front, the coefficient curves of its schedules) is passed in by the kind's ``plot``.
These modules import matplotlib, numpy, pandas and the metrics, never a study kind (an
import-linter contract in pyproject.toml checks it).
"""

import matplotlib

matplotlib.use("Agg")
