"""Registry of study kinds: what a study file may contain and which function runs one cell.

A *kind* ties a study file to code. It declares the grid axes and options a study file may
use (each a :class:`Field` with a type, an optional default, optional choices and an optional
extra check), which axes are *ladders* (kept whole inside one cell, e.g. the step counts of
a convergence study, so one cell can reuse a reference solution across its rungs), and the
cell function that turns one cell configuration into tidy rows.

Kinds are registered at import time of the module that defines them (``register(KIND)`` at
module level). The runner never sends a kind *name* to a worker process: it sends the cell
function itself, which pickles by reference (module + qualified name), so workers only need
to be able to import that module. This is why ``run_cell`` must be a module-level function;
:func:`register` rejects lambdas and nested functions up front rather than letting a
multi-process run fail later.

A kind that is not registered yet can be found lazily: :func:`declare` maps a kind name to
the module that registers it, and the ``odebench.study_kinds`` entry-point group does the
same for third-party packages. :func:`get` imports the module on first use.

:class:`StudyError` lives here, in the lowest module of the package, so that the registry,
the spec loader and the runner share one exception type without import cycles; it is
re-exported by :mod:`odebench.study.spec` and :mod:`odebench.study`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .command import Command

if TYPE_CHECKING:  # pandas is only needed for the type hints; keep worker imports light.
    import pandas as pd

    from .result import StudyResult

__all__ = [
    "ENTRY_POINT_GROUP",
    "REQUIRED",
    "Command",
    "Field",
    "StudyError",
    "StudyKind",
    "declare",
    "format_value",
    "get",
    "names",
    "register",
    "unregister",
]

#: Entry-point group through which installed packages can provide study kinds
#: (``name = "package.module"`` or ``name = "package.module:KIND"``).
ENTRY_POINT_GROUP = "odebench.study_kinds"
#: Config keys the runner sets itself: the kind's name, and the whole ladders of split cells.
RESERVED_KEYS = ("kind", "split_from")


class StudyError(ValueError):
    """A study cannot be loaded or run; the message is one line that names the culprit.

    Raised for invalid study files (naming the offending key), unknown kinds, failed cells
    (naming the cell configuration) and missing optional dependencies.
    """


class _Required:
    """Sentinel type for :data:`REQUIRED` (a distinct type so it never equals a real default)."""

    _instance: _Required | None = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


#: Marks a :class:`Field` without default: the key must appear in the study file.
REQUIRED: Any = _Required()


def format_value(value: Any, limit: int = 60) -> str:
    """Render a value for a one-line error message: strings in double quotes, others by repr."""
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    text = " ".join(text.split())  # keep messages on one line
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _coerce_one(types: type | tuple[type, ...], value: Any) -> Any:
    """``value`` as one of ``types`` (int -> float where a float is asked), else TypeError."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        if bool in types:
            return value
        raise TypeError(value)
    if isinstance(value, types):
        return value
    if isinstance(value, int) and float in types:
        return float(value)
    raise TypeError(value)


@dataclass(frozen=True)
class Field:
    """One allowed key of a study file (a grid axis or an option).

    ``type`` is a type or a tuple of types. ``bool`` is never accepted where ``int`` is
    asked (TOML keeps them apart, and ``True`` as a step count is a typo), and ``int`` is
    accepted where ``float`` is asked and converted to ``float`` so that ``1`` and ``1.0``
    give the same cache key. ``choices`` may be a callable so that names (solvers, problems)
    are looked up only when a study is validated, not when the kind is defined. ``check``
    returns an error message or None. For a grid axis, ``default`` may be a list or a scalar
    (one-element axis); ``type``, ``choices`` and ``check`` apply to each element. A list
    option declares the type of its elements in ``items``. A float is never NaN.
    """

    type: type | tuple[type, ...]
    default: Any = REQUIRED
    choices: Callable[[], Sequence[Any]] | Sequence[Any] | None = None
    check: Callable[[Any], str | None] | None = None
    help: str = ""
    #: A string "module:attribute" passes ``choices`` (then ``check`` decides): the user's own
    #: objects, e.g. solvers defined in their package.
    importable: bool = False
    #: The type of each element of a list option (``Field(list, items=str)``); None: any.
    items: type | None = None

    @property
    def types(self) -> tuple[type, ...]:
        """The accepted types as a tuple."""
        return self.type if isinstance(self.type, tuple) else (self.type,)

    @property
    def type_name(self) -> str:
        """Human-readable type, e.g. ``int`` or ``int or float``."""
        return " or ".join(t.__name__ for t in self.types)

    @property
    def required(self) -> bool:
        """Whether the key must be given (no default)."""
        return self.default is REQUIRED

    def coerce(self, value: Any) -> Any:
        """Return ``value`` normalised to this field's type, or raise :class:`TypeError`.

        Only the type is checked here (no choices, no check), so kinds can validate their
        defaults at registration time without looking up lazy choices.
        """
        if isinstance(value, (list, tuple)) and self.items is not None:
            return type(value)(_coerce_one(self.items, v) for v in value)
        return _coerce_one(self.types, value)

    def allowed_values(self) -> list[Any] | None:
        """The allowed values (calling ``choices`` if it is a callable), or None for any."""
        if self.choices is None:
            return None
        values = self.choices() if callable(self.choices) else self.choices
        return list(values)


@dataclass(frozen=True)
class StudyKind:
    """A kind of study: its allowed keys, its cell function and optional post-processing.

    ``run_cell(config) -> rows`` receives one cell configuration (a plain dict: each
    non-ladder axis with one value, each ladder axis with its full list, every option, and
    ``"kind"``) and returns tidy rows, one dict of scalars per measurement. It must be a
    module-level function so that worker processes can import it. Bump ``version`` whenever
    a change to ``run_cell`` changes its results: the version is part of every cache key.

    ``summarize(df)`` (optional) turns the full table into a summary table, e.g. order fits;
    ``plot(df, summary, folder)`` (optional) writes figures into ``folder`` and returns their
    paths. Both run in the main process only, so they may be closures.

    ``format_summary(result)`` (optional) is the text the command line prints after a run
    (a :class:`~odebench.study.StudyResult`; None prints nothing). ``command`` says how the
    kind appears as ``odebench NAME`` (:class:`~odebench.study.Command`; flags are generated
    from the fields, so None gives a working command too).

    ``split_axes`` are ladder axes whose values the runner may give a cell each, so that
    workers share a long ladder (e.g. the guidance scales of a network cell, each its own
    reference and solves): such a cell gets its own value as a one-element list, and the whole
    ladder under ``config["split_from"][axis]``, for what depends on its neighbours (which
    network serves w = 0 in a guidance ladder). The rows, and so the CSV, are those of the
    unsplit cell, in the same order; only a kind whose ladder values share nothing may split.

    ``estimate(config)`` (optional) is the peak memory and time of one cell
    (:class:`~odebench.study.limits.Estimate`), from its sizes; the runner refuses a run whose
    estimate exceeds the limits (:mod:`odebench.study.limits`) before computing anything.
    """

    name: str
    grid: Mapping[str, Field]
    options: Mapping[str, Field]
    ladder_axes: tuple[str, ...]
    run_cell: Callable[[dict[str, Any]], list[dict[str, Any]]]
    version: str = "1"
    summarize: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    plot: Callable[[pd.DataFrame, pd.DataFrame | None, Path], list[Path]] | None = None
    description: str = field(default="", compare=False)
    format_summary: Callable[[StudyResult], str | None] | None = field(default=None, compare=False)
    command: Command | None = field(default=None, compare=False)
    estimate: Callable[[dict[str, Any]], Any] | None = field(default=None, compare=False)
    split_axes: tuple[str, ...] = ()

    def validate(self) -> None:
        """Check that the kind itself is well formed; raise ValueError/TypeError if not.

        These are programming errors in the kind's definition, not user errors, so they are
        not :class:`StudyError`.
        """
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"study kind name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.version, str):
            raise TypeError(f"kind {self.name!r}: version must be a str, got {self.version!r}")
        if not isinstance(self.ladder_axes, tuple):
            raise TypeError(f"kind {self.name!r}: ladder_axes must be a tuple of axis names")
        for section, fields in (("grid", self.grid), ("options", self.options)):
            for key, spec in fields.items():
                if not isinstance(spec, Field):
                    raise TypeError(f"kind {self.name!r}: {section}.{key} must be a Field")
                if not all(isinstance(t, type) for t in spec.types):
                    raise TypeError(f"kind {self.name!r}: {section}.{key}.type must be type(s)")
                if not spec.required:
                    defaults = spec.default if section == "grid" else [spec.default]
                    if section == "grid" and not isinstance(defaults, (list, tuple)):
                        defaults = [defaults]
                    for value in defaults:
                        try:
                            spec.coerce(value)
                        except TypeError:
                            raise TypeError(
                                f"kind {self.name!r}: default of {section}.{key} is not "
                                f"{spec.type_name}: {value!r}"
                            ) from None
        clash = set(self.grid) & set(self.options)
        if clash:
            raise ValueError(f"kind {self.name!r}: keys both grid axis and option: {clash}")
        for reserved in RESERVED_KEYS:
            if reserved in self.grid or reserved in self.options:
                raise ValueError(
                    f"kind {self.name!r}: {reserved!r} is reserved (the runner sets it)"
                )
        unknown = [a for a in self.ladder_axes if a not in self.grid]
        if unknown:
            raise ValueError(f"kind {self.name!r}: ladder axes not in grid: {unknown}")
        if not isinstance(self.split_axes, tuple):
            raise TypeError(f"kind {self.name!r}: split_axes must be a tuple of axis names")
        unsplittable = [a for a in self.split_axes if a not in self.ladder_axes]
        if unsplittable:
            raise ValueError(f"kind {self.name!r}: split axes not ladder axes: {unsplittable}")
        if not callable(self.run_cell):
            raise TypeError(f"kind {self.name!r}: run_cell must be callable")
        if self.format_summary is not None and not callable(self.format_summary):
            raise TypeError(f"kind {self.name!r}: format_summary must be callable")
        if self.estimate is not None and not callable(self.estimate):
            raise TypeError(f"kind {self.name!r}: estimate must be callable")
        if self.command is not None and not isinstance(self.command, Command):
            raise TypeError(f"kind {self.name!r}: command must be a Command")
        for key in self.command.defaults if self.command is not None else ():
            if key not in self.grid and key not in self.options:
                raise ValueError(f"kind {self.name!r}: command default for unknown field {key!r}")
        qualname = getattr(self.run_cell, "__qualname__", "")
        if "<" in qualname or not getattr(self.run_cell, "__module__", None):
            raise ValueError(
                f"kind {self.name!r}: run_cell must be a module-level function so worker "
                f"processes can import it, got {qualname or self.run_cell!r}"
            )


_LOCK = threading.Lock()
_KINDS: dict[str, StudyKind] = {}
_DECLARED: dict[str, str] = {
    # Built-in kinds, imported on first use: "name": "module that calls register()".
    "orders": "odebench.kinds.orders",
    "norms": "odebench.kinds.norms",
    "singularity": "odebench.kinds.singularity",
    "modern": "odebench.kinds.modern",
    "quality": "odebench.kinds.quality",
    "audit": "odebench.kinds.audit",
    "sde": "odebench.kinds.sde",
}


def _same_definition(a: StudyKind, b: StudyKind) -> bool:
    """Whether two kinds come from the same source (e.g. a module imported twice)."""
    fa, fb = a.run_cell, b.run_cell
    return (
        a.version == b.version
        and getattr(fa, "__module__", None) == getattr(fb, "__module__", None)
        and getattr(fa, "__qualname__", None) == getattr(fb, "__qualname__", None)
    )


def register(kind: StudyKind, *, replace: bool = False) -> None:
    """Register ``kind`` under ``kind.name``; call it at module level where the kind lives.

    Registering again a kind with the same cell function and version (a module re-imported
    under reload, or in a worker) replaces it silently; a *different* kind under a taken
    name raises ValueError unless ``replace=True``, because two kinds sharing a name would
    silently share cache entries and study files.
    """
    if not isinstance(kind, StudyKind):
        raise TypeError(f"register() expects a StudyKind, got {type(kind).__name__}")
    kind.validate()
    with _LOCK:
        old = _KINDS.get(kind.name)
        if old is not None and not replace and not _same_definition(old, kind):
            raise ValueError(
                f"study kind {kind.name!r} is already registered by "
                f"{old.run_cell.__module__}.{old.run_cell.__qualname__}"
            )
        _KINDS[kind.name] = kind


def unregister(name: str) -> None:
    """Remove a registered kind (mainly for tests); unknown names are ignored."""
    with _LOCK:
        _KINDS.pop(name, None)


def declare(name: str, module: str) -> None:
    """Declare that importing ``module`` registers kind ``name`` (imported lazily by get)."""
    with _LOCK:
        _DECLARED[name] = module


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Kinds advertised by installed packages in the ``odebench.study_kinds`` group."""
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken distribution must not break the registry
        return {}
    return {ep.name: ep for ep in eps}


def _load_lazy(name: str) -> None:
    """Import the module that provides kind ``name``, if one is declared or advertised."""
    module = _DECLARED.get(name)
    if module is not None:
        importlib.import_module(module)
        return
    ep = _entry_points().get(name)
    if ep is not None:
        obj = ep.load()
        if isinstance(obj, StudyKind) and obj.name not in _KINDS:
            register(obj)


def get(name: str) -> StudyKind:
    """The kind registered as ``name``, importing its module first if it is declared.

    Raises :class:`StudyError` listing the known kinds if there is none.
    """
    kind = _KINDS.get(name)
    if kind is None:
        try:
            _load_lazy(name)
        except ImportError as exc:
            raise StudyError(f"study kind {name!r} could not be imported: {exc}") from exc
        kind = _KINDS.get(name)
    if kind is None:
        known = ", ".join(names()) or "none registered"
        raise StudyError(f'unknown kind "{name}" (known: {known})')
    return kind


def names() -> list[str]:
    """Sorted names of the registered, declared and entry-point kinds."""
    return sorted(set(_KINDS) | set(_DECLARED) | set(_entry_points()))
