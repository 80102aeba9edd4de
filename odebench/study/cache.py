"""Per-cell result cache: one JSON file per cell, keyed by a hash of its full configuration.

Why per cell and why hashed: a study is resumable only if every finished cell is on disk the
moment it finishes, and a cached result may be reused only for exactly the configuration
that produced it. The key is the sha256 of a canonical JSON text of the whole cell config
(grid values, ladder lists, options, kind name) plus the kind's version and this cache's
format number, so changing any setting or bumping the kind's version misses the cache
instead of returning stale rows.

Files are ``<out>/.cache/<key>.json`` holding the config, the rows and a checksum (sha256 of
the cell key and the rows, :func:`rows_checksum`). They are written atomically (temporary file
in the same folder, fsync, ``os.replace``) so a run killed at any instant leaves either the
complete file or none, with the permissions the umask gives any new file. A file that cannot
be read, does not parse, does not hold the expected config or whose rows do not match their
checksum (an entry edited by hand, or damaged, yet still valid JSON) is reported with a
:class:`CacheWarning` and treated as missing: the cell is recomputed, the run never crashes on
a bad cache and never puts a changed number into its table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import numbers
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .kinds import StudyError

__all__ = [
    "CACHE_DIRNAME",
    "CACHE_FORMAT",
    "CacheWarning",
    "atomic_write_text",
    "cache_key",
    "cache_path",
    "canonical_json",
    "load_rows",
    "new_file_mode",
    "normalize_rows",
    "rows_checksum",
    "store_rows",
]

#: Folder inside the output folder that holds the cell files.
CACHE_DIRNAME = ".cache"
#: Bump when the file layout or the row normalisation changes: invalidates every entry.
CACHE_FORMAT = 1


class CacheWarning(UserWarning):
    """A cache file was unusable (corrupt, truncated, foreign) and its cell is recomputed."""


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text: sorted keys, no whitespace, tuples as lists, floats by repr.

    Python's json already writes floats with ``repr`` (shortest round-trip form), so equal
    configs give equal texts and ``1.0`` differs from ``1`` (the spec converts ints to
    floats where a float is expected, so that difference is never accidental).
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cache_key(config: dict[str, Any], version: str) -> str:
    """The sha256 hex digest that identifies a cell's results."""
    payload = {"config": config, "version": version, "format": CACHE_FORMAT}
    return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()


def rows_checksum(key: str, rows: list[dict[str, Any]]) -> str:
    """sha256 of the cell key and its rows (canonical JSON): a cache entry's own check."""
    text = canonical_json({"key": key, "rows": rows})
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def cache_path(out: Path, key: str) -> Path:
    """Where the cell with ``key`` is cached under output folder ``out``."""
    return Path(out) / CACHE_DIRNAME / f"{key}.json"


def _scalar(value: Any) -> Any:
    """Convert a row value to a plain JSON scalar (int, float, str, bool or None)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    # numpy / torch scalars and 0-d arrays: bool first (np.bool_ is not a numbers.Integral).
    if type(value).__name__ in ("bool_", "bool") and hasattr(value, "item"):
        return bool(value.item())
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return _scalar(item())
    raise TypeError(type(value).__name__)


def normalize_rows(rows: Any) -> list[dict[str, Any]]:
    """Check a cell function's result and convert it to plain, JSON-able rows.

    Rows must be a list of dicts with str keys and scalar values; numpy and torch scalars
    become Python numbers. List-valued entries are rejected: a tidy table holds one
    measurement per row (put e.g. the step count of each rung in its own row).
    """
    if not isinstance(rows, (list, tuple)):
        raise StudyError(f"run_cell must return a list of dicts, got {type(rows).__name__}")
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise StudyError(f"row {i}: expected a dict, got {type(row).__name__}")
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if not isinstance(key, str):
                raise StudyError(f"row {i}: column names must be str, got {key!r}")
            try:
                clean[key] = _scalar(value)
            except TypeError:
                raise StudyError(
                    f"row {i}: column {key!r} must be a scalar (int, float, str, bool, None), "
                    f"got {type(value).__name__}"
                ) from None
        out.append(clean)
    return out


def new_file_mode() -> int:
    """The mode ``open`` gives a new file: ``0o666 & ~umask`` (``mkstemp`` gives 0600)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and set it back at once
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never a part.

    The temporary file lives in the destination folder (``os.replace`` is atomic only
    within one file system) and is fsynced before the rename so a crash cannot leave an
    empty file under the final name. The file gets mode ``0o666 & ~umask``, as ``open`` would
    give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX only)
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def store_rows(
    out: Path, key: str, kind: str, version: str, config: dict[str, Any], rows: list[dict]
) -> Path:
    """Cache one finished cell atomically; return the file written."""
    path = cache_path(out, key)
    record = {
        "format": CACHE_FORMAT,
        "key": key,
        "kind": kind,
        "version": version,
        "config": config,
        "rows": rows,  # key order kept: it fixes the CSV column order
        "checksum": rows_checksum(key, rows),
    }
    atomic_write_text(path, json.dumps(record, ensure_ascii=True) + "\n")
    return path


def load_rows(out: Path, key: str, config: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The cached rows of the cell ``key``, or None if absent or unusable (with a warning).

    The stored config must equal ``config``; this guards against files copied between
    folders by hand, truncated writes from other tools, and hash collisions alike. The rows
    must match the stored checksum (:func:`rows_checksum`), so an entry edited into other
    valid JSON is recomputed too.
    """
    path = cache_path(out, key)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        if record.get("format") != CACHE_FORMAT or record.get("key") != key:
            raise ValueError("format or key mismatch")
        if canonical_json(record.get("config")) != canonical_json(config):
            raise ValueError("stored config differs from the cell's config")
        rows = normalize_rows(record.get("rows"))
        if record.get("checksum") != rows_checksum(key, rows):
            raise ValueError("checksum mismatch: the rows were changed after they were written")
    except (OSError, ValueError, TypeError) as exc:  # StudyError is a ValueError
        warnings.warn(
            f"ignoring unusable cache file {path} ({exc}); recomputing the cell",
            CacheWarning,
            stacklevel=2,
        )
        return None
    return rows
