"""Declarative, resumable studies: a TOML grid in, one tidy CSV (plus summary, figures) out.

A study file names a registered *kind* (:mod:`.kinds`), which says which grid axes and
options are allowed and which function computes one cell. :func:`load_study` validates a
file into a :class:`StudySpec`; :func:`run_study` expands it into cells, computes those not
already cached (in-process, on a process pool, or on Dask), and writes the results.

    from odebench.study import load_study, run_study
    result = run_study("studies/orders.toml", out="figures/orders", workers=4)
    result.dataframe, result.csv, result.n_computed
"""

from .cache import CacheWarning, cache_key, canonical_json
from .command import Command, Shortcut
from .kinds import REQUIRED, Field, StudyError, StudyKind, declare, get, names, register
from .runner import StudyResult, expand_cells, run_study
from .spec import StudySpec, load_study, parse_study

__all__ = [
    "REQUIRED",
    "CacheWarning",
    "Command",
    "Field",
    "Shortcut",
    "StudyError",
    "StudyKind",
    "StudyResult",
    "StudySpec",
    "cache_key",
    "canonical_json",
    "declare",
    "expand_cells",
    "get",
    "load_study",
    "names",
    "parse_study",
    "register",
    "run_study",
]
