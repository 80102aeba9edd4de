"""Load and validate study files (TOML) into :class:`StudySpec`.

A study file has three sections, all checked against the study's registered kind::

    [study]    name, kind (required); description, output (optional)
    [grid]     axes: each a non-empty list (a scalar means a one-element list)
    [options]  scalar settings passed to every cell (defaults filled in)

Every problem is reported as a :class:`StudyError` with a one-line message that starts with
the offending key (``grid.steps: ...``, ``unknown key options.n_sample ...``), because the
person reading it is editing that file and needs to know where to look. Unknown sections and
keys are errors, not warnings: a typo in an option name would otherwise silently run the
default and produce a plausible but wrong table.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import kinds
from .kinds import Field, StudyError, StudyKind, format_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 fallback
    import tomli as tomllib

__all__ = ["StudyError", "StudySpec", "load_study", "parse_study"]

_STUDY_KEYS = ("name", "kind", "description", "output")
_SECTIONS = ("study", "grid", "options")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class StudySpec:
    """A validated study: what to run (kind, grid, options) and where by default (output).

    ``grid`` maps every axis of the kind (in the kind's declared order, defaults included)
    to a tuple of values; ``options`` maps every option (defaults included) to its value.
    ``output`` is the default output folder (relative to the current directory), ``path``
    the file it was loaded from (None when built from a dict).
    """

    name: str
    kind: str
    description: str = ""
    output: Path | None = None
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec as study-file data (what :func:`parse_study` accepts)."""
        study: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.description:
            study["description"] = self.description
        if self.output is not None:
            study["output"] = str(self.output)
        return {
            "study": study,
            "grid": {k: list(v) for k, v in self.grid.items()},
            "options": dict(self.options),
        }


def _allowed(keys: Any) -> str:
    return ", ".join(sorted(keys)) or "none"


def _unknown_key(where: str, key: str, allowed: Any) -> StudyError:
    """The error for a key that is not allowed, with a did-you-mean hint."""
    allowed = sorted(allowed)
    hint = difflib.get_close_matches(key, allowed, n=1)
    extra = f'; did you mean "{hint[0]}"?' if hint else ""
    return StudyError(f"unknown key {where}.{key} (allowed: {_allowed(allowed)}{extra})")


def _check_value(key: str, spec: Field, value: Any, expected: str, item: int | None = None) -> Any:
    """Coerce one value to its field and apply choices and check; return the coerced value.

    ``item`` (1-based) names the position of a bad element inside a grid list.
    """
    try:
        if isinstance(value, (list, tuple, dict)) and not any(
            issubclass(t, (list, tuple, dict)) for t in spec.types
        ):
            raise TypeError(value)
        value = spec.coerce(value)
    except TypeError:
        where = f" (item {item})" if item is not None else ""
        if spec.items is not None and isinstance(value, (list, tuple)):
            bad = next(v for v in value if not _fits(spec.items, v))
            expected = f"a list of {spec.items.__name__}"
            raise StudyError(
                f"{key}: expected {expected}, got {type(bad).__name__} {format_value(bad)} "
                f"(item {list(value).index(bad) + 1})"
            ) from None
        raise StudyError(
            f"{key}: expected {expected}, got {type(value).__name__} {format_value(value)}{where}"
        ) from None
    if _has_nan(value):
        raise StudyError(f"{key}: invalid value {format_value(value)}: must be a number, not NaN")
    allowed = spec.allowed_values()
    user_object = spec.importable and isinstance(value, str) and ":" in value
    if allowed is not None and value not in allowed and not user_object:
        shown = ", ".join(format_value(v, 40) for v in allowed)
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value, [str(v) for v in allowed], n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
        raise StudyError(f"{key}: unknown value {format_value(value)} (choices: {shown}{hint})")
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            raise StudyError(f"{key}: invalid value {format_value(value)}: {problem}")
    return value


def _fits(kind: type, value: Any) -> bool:
    """Whether ``value`` is a ``kind`` (bool is no int; an int is a float)."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def _has_nan(value: Any) -> bool:
    items = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, float) and math.isnan(v) for v in items)


def _grid_axis(axis: str, spec: Field, raw: Any) -> tuple[Any, ...]:
    """Validate one grid axis: a non-empty list of distinct, well-typed, allowed values."""
    key = f"grid.{axis}"
    expected = f"a list of {spec.type_name}"
    values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    if not values:
        raise StudyError(f"{key}: empty list")
    is_list = isinstance(raw, (list, tuple))
    out = [
        _check_value(key, spec, value, expected, item=i + 1 if is_list else None)
        for i, value in enumerate(values)
    ]
    seen: set[Any] = set()
    for value in out:
        marker = (type(value), value)
        if marker in seen:
            raise StudyError(f"{key}: duplicate value {format_value(value)}")
        seen.add(marker)
    return tuple(out)


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = data.get(name, {})
    if not isinstance(section, Mapping):
        raise StudyError(f"[{name}]: expected a table, got {type(section).__name__}")
    return section


def parse_study(data: Mapping[str, Any], path: Path | str | None = None) -> StudySpec:
    """Validate parsed study-file data against its kind and return the normalised spec.

    Defaults are filled in, ints are converted to floats where the kind asks for floats,
    scalars on grid axes become one-element tuples. Raises :class:`StudyError`.
    """
    unknown = [k for k in data if k not in _SECTIONS]
    if unknown:
        raise StudyError(f"unknown section [{unknown[0]}] (allowed: {', '.join(_SECTIONS)})")
    if "study" not in data:
        raise StudyError("missing section [study] (with name and kind)")
    study = _section(data, "study")
    for key in study:
        if key not in _STUDY_KEYS:
            raise _unknown_key("study", key, _STUDY_KEYS)
    for key in ("name", "kind"):
        if key not in study:
            raise StudyError(f"study.{key}: required key missing")
    for key in _STUDY_KEYS:
        if key in study and not isinstance(study[key], str):
            value = study[key]
            raise StudyError(
                f"study.{key}: expected str, got {type(value).__name__} {format_value(value)}"
            )
    name: str = study["name"]
    if not _NAME_RE.match(name):
        raise StudyError(
            f"study.name: {format_value(name)} is not usable as a file name "
            "(letters, digits, '.', '_', '-'; not starting with '.', '_' or '-')"
        )
    try:
        kind: StudyKind = kinds.get(study["kind"])
    except StudyError as exc:
        raise StudyError(f"study.kind: {exc}") from None

    grid_data = _section(data, "grid")
    for key in grid_data:
        if key not in kind.grid:
            raise _unknown_key("grid", key, kind.grid)
    grid: dict[str, tuple[Any, ...]] = {}
    for axis, spec in kind.grid.items():
        if axis in grid_data:
            grid[axis] = _grid_axis(axis, spec, grid_data[axis])
        elif spec.required:
            raise StudyError(f"grid.{axis}: required axis missing")
        else:
            grid[axis] = _grid_axis(axis, spec, spec.default)

    options_data = _section(data, "options")
    for key in options_data:
        if key not in kind.options:
            raise _unknown_key("options", key, kind.options)
    options: dict[str, Any] = {}
    for key, spec in kind.options.items():
        if key in options_data:
            options[key] = _check_value(f"options.{key}", spec, options_data[key], spec.type_name)
        elif spec.required:
            raise StudyError(f"options.{key}: required option missing")
        else:
            options[key] = _check_value(f"options.{key}", spec, spec.default, spec.type_name)

    output = study.get("output")
    return StudySpec(
        name=name,
        kind=kind.name,
        description=study.get("description", ""),
        output=Path(output) if output else None,
        grid=grid,
        options=options,
        path=Path(path) if path is not None else None,
    )


def load_study(path: Path | str) -> StudySpec:
    """Read a study TOML file and validate it (see :func:`parse_study`).

    File-not-found and TOML syntax errors become :class:`StudyError` too; the syntax error
    keeps the parser's line and column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"study file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"cannot read study file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: invalid TOML: {exc}") from None
    try:
        return parse_study(data, path=path)
    except StudyError as exc:
        raise StudyError(f"{path}: {exc}") from None
