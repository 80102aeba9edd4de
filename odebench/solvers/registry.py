"""The registry of solvers by name: the shipped methods, aliases, and ``register``."""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable

from . import classical, deis, dpm_solver, edm, pndm, stochastic, unipc, variants
from .base import Solver
from .pf import AdaptiveReference

_FACTORIES: dict[str, Callable[..., Solver]] = {
    "ddim": pndm.ddim,
    "pie": pndm.pie,
    "prk": pndm.prk,
    "s-pndm": pndm.s_pndm,
    "f-pndm": pndm.f_pndm,
    "euler": classical.euler,
    "heun": classical.heun,
    "rk4": classical.rk4,
    "ab2": classical.ab2,
    "ab3": classical.ab3,
    "fon": classical.fon,
    "pf": AdaptiveReference,
    **dpm_solver.FACTORIES,
    **unipc.FACTORIES,
    **deis.FACTORIES,
    **edm.FACTORIES,
    **variants.FACTORIES,
}

#: Stochastic samplers (SDE methods): ``get`` finds them; ``sde_names`` lists them, apart from
#: the ODE solvers of ``names``, whose studies and tests assume a deterministic map.
_SDE_FACTORIES: dict[str, Callable[..., Solver]] = dict(stochastic.FACTORIES)

#: Other names for the same method.
ALIASES = {"plms": "f-pndm", "ab4": "fon", "pndm-ramp": "ipndm"}

#: The paper's family, in the order studies show it.
PAPER_FAMILY = ("ddim", "s-pndm", "f-pndm", "fon")


def register(name: str, factory: Callable[..., Solver], *, replace: bool = False) -> None:
    """Make ``factory(**options) -> Solver`` available as ``get(name)``, ``solve(name, ...)``
    and in the studies' solver lists. An existing name needs ``replace=True``."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"a solver name must be a non-empty string without spaces, got {name!r}")
    if not callable(factory):
        raise ValueError(f"the factory for {name!r} must be callable")
    if (name in _FACTORIES or name in ALIASES or name in _SDE_FACTORIES) and not replace:
        raise ValueError(f"solver {name!r} exists; pass replace=True to replace it")
    _FACTORIES[name] = factory


def unregister(name: str) -> None:
    """Remove a solver added with ``register``."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown solver {name!r}")
    del _FACTORIES[name]


def user_factory(spec: str) -> Callable[..., Solver]:
    """The factory of a user's solver named ``"package.module:attribute"``: the attribute is
    a Solver, or a callable (a class or factory function) that returns one."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"a user solver is named 'module:attribute', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or whatever the module raises on import
        raise ValueError(
            f"solver {spec!r}: cannot import module {module_name!r} ({type(err).__name__}: {err})"
        ) from None
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"solver {spec!r}: module {module_name!r} has no {attr!r}") from None
    if isinstance(target, Solver):

        def instance(**options) -> Solver:
            if options:
                raise TypeError(f"{spec} is a Solver object and takes no options")
            return target

        return instance
    if not callable(target):
        raise ValueError(f"solver {spec!r}: {attr!r} is neither a Solver nor a factory of one")

    def made(**options) -> Solver:
        solver = target(**options)
        if not isinstance(solver, Solver):
            got = type(solver).__name__
            raise ValueError(f"solver {spec!r}: {attr}() returned {got}, not a Solver")
        return solver

    return made


#: The entry-point group through which an installed package adds its solvers: in its
#: pyproject.toml, [project.entry-points."odebench.solvers"] my-solver = "mypkg.samplers:make".
ENTRY_POINT_GROUP = "odebench.solvers"
_entry_points_loaded = False


def load_entry_points() -> list[str]:
    """Register the solvers installed packages declare in ``ENTRY_POINT_GROUP`` (once); a name
    that exists already is left alone. Returns the names added."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return []
    _entry_points_loaded = True
    added = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _FACTORIES or ep.name in _SDE_FACTORIES or ep.name in ALIASES:
            continue
        _FACTORIES[ep.name] = user_factory(ep.value)
        added.append(ep.name)
    return added


def names(include_aliases: bool = False) -> list[str]:
    """The ODE solvers (deterministic), installed packages' entry points included;
    ``sde_names`` lists the stochastic samplers."""
    load_entry_points()
    out = list(_FACTORIES)
    return out + list(ALIASES) if include_aliases else out


def sde_names() -> list[str]:
    """The stochastic samplers (``odebench.solvers.stochastic``)."""
    return list(_SDE_FACTORIES)


def get(name: str | Solver, **options) -> Solver:
    """A solver by name (or alias); ``options`` go to its constructor (e.g. ``rtol`` for pf,
    ``weights="variable"`` for the multistep methods)."""
    if isinstance(name, Solver):
        if options:
            raise ValueError("solver options need a solver name, not a Solver object")
        return name
    load_entry_points()
    key = ALIASES.get(name, name)
    if isinstance(key, str) and ":" in key and key not in _FACTORIES:
        factory = user_factory(key)  # "module:attribute": a solver of the user's own
        try:
            return factory(**options)
        except TypeError as err:
            raise ValueError(f"solver {key!r}: bad options {sorted(options)} ({err})") from None
    try:
        factory = _FACTORIES[key] if key in _FACTORIES else _SDE_FACTORIES[key]
    except (KeyError, TypeError):
        every = names(include_aliases=True) + sde_names()
        raise ValueError(f"unknown solver {name!r} (choose from {', '.join(every)})") from None
    try:
        return factory(**options)
    except TypeError as err:
        raise ValueError(f"solver {key!r}: bad options {sorted(options)} ({err})") from None
