"""Run a study: expand its grid into cells, compute the missing ones, write one tidy CSV.

The runner is generic: everything study-specific lives in the registered kind
(:mod:`odebench.study.kinds`). What it guarantees:

* **Deterministic expansion.** Cells are the cartesian product of the non-ladder axes, axes
  in the kind's declared order, values in file order; ladder axes stay whole inside each
  cell. Each cell config is ``{axis: value, ..., ladder: [values], **options, "kind": name}``.
  A kind's split axes (``StudyKind.split_axes``) are ladders cut into one cell per value,
  innermost, each with ``"split_from": {axis: [whole ladder]}``: the same rows in the same
  order as one cell would give, computed by several workers.
* **Resumable.** Each cell's rows are cached under ``<out>/.cache/<key>.json`` the moment it
  finishes (see :mod:`odebench.study.cache`); a rerun loads them instead of computing.
* **All or nothing outputs.** If any cell fails, the run raises :class:`StudyError` naming
  that cell (finished cells stay cached) and writes no CSV. Otherwise the CSV, the summary
  CSV and the figures are each written atomically.
* **Byte-identical results.** Rows go to the CSV in expansion order, columns in a fixed
  order, floats by ``repr``; cached rows round-trip exactly through JSON, so a resumed run
  writes the same bytes as a clean one, whatever backend computed which cell.

Backends: in-process (``workers=1``), a ``ProcessPoolExecutor`` with the "spawn" start
method (``workers>1``; fork is unsafe once torch has started threads), or Dask distributed
(``scheduler=ADDRESS`` or ``cluster=Client|Cluster``). Workers are sent the kind's
``run_cell`` function itself, which pickles by reference, so they only need to be able to
import the module that defines it; they never consult the registry.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import math
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import CancelledError, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import kinds
from .cache import atomic_write_text, cache_key, canonical_json, load_rows, normalize_rows
from .cache import store_rows as _store_rows
from .kinds import StudyError, StudyKind
from .limits import MAX_CELLS, PROCESS_BYTES, Estimate, check
from .lock import locked
from .orphans import die_with_parent
from .result import StudyResult
from .spec import StudySpec, load_study, parse_study

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_OUTPUT_ROOT",
    "StudyResult",
    "check_address",
    "count_cells",
    "estimate_run",
    "estimate_study",
    "expand_cells",
    "run_study",
]

#: Output folder used when neither ``out=`` nor ``study.output`` is given: ``results/<name>``.
DEFAULT_OUTPUT_ROOT = Path("results")

RunCell = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass
class _Cell:
    """One unit of work: its position in expansion order, config, cache key and rows."""

    index: int
    config: dict[str, Any]
    key: str
    rows: list[dict[str, Any]] | None = None


def expand_cells(
    spec: StudySpec, kind: StudyKind | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The cell configs of ``spec`` in expansion order (see the module docstring); the first
    ``limit`` only if given."""
    kind = kind if kind is not None else kinds.get(spec.kind)
    axes = [a for a in kind.grid if a not in kind.ladder_axes]
    split = _split_axes(spec, kind)
    cells = []
    combos = itertools.product(
        itertools.product(*(spec.grid[a] for a in axes)),
        itertools.product(*(spec.grid[a] for a in split)),
    )
    for combo, part in itertools.islice(combos, limit):
        chosen = dict(zip(axes, combo, strict=True))
        own = dict(zip(split, part, strict=True))
        config: dict[str, Any] = {}
        for axis in kind.grid:
            if axis in chosen:
                config[axis] = chosen[axis]
            else:
                config[axis] = [own[axis]] if axis in own else list(spec.grid[axis])
        config.update(spec.options)
        config["kind"] = kind.name
        if split:
            config["split_from"] = {a: list(spec.grid[a]) for a in split}
        cells.append(config)
    return cells


def _split_axes(spec: StudySpec, kind: StudyKind) -> list[str]:
    """The kind's split axes that this study gives more than one value (a one-value ladder
    stays as it is, so its cells' configs, and cache keys, do not change)."""
    return [a for a in kind.split_axes if len(spec.grid[a]) > 1]


def _execute(run_cell: RunCell, config: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one cell (in whatever process) and return plain, validated rows.

    The cell gets a deep copy, so a cell function that mutates its config (e.g. sorts the
    ladder) cannot change the config that is hashed and stored with its rows.
    """
    return normalize_rows(run_cell(copy.deepcopy(config)))


def _worker_init(threads: int, parent: int) -> None:
    """Give each pool worker a share of the cores, and make it die with its parent.

    N workers that each run torch/BLAS with every core oversubscribe the machine and run
    slower than one. Environment variables set by the user win. A parent killed outright
    (``kill -9``) cannot shut its pool down, so each worker watches it itself
    (:func:`~odebench.study.orphans.die_with_parent`).
    """
    die_with_parent(parent)
    user_set = "OMP_NUM_THREADS" in os.environ
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    torch = sys.modules.get("torch")  # already imported (e.g. by __main__): too late for env
    if torch is not None and not user_set:  # pragma: no cover
        torch.set_num_threads(threads)


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _failure(cell: _Cell, n_cells: int, exc: BaseException) -> StudyError:
    """The error for a failed cell: which one (index and full config) and why."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return StudyError(
        f"cell {cell.index + 1}/{n_cells} failed: {canonical_json(cell.config)}: "
        f"{_one_line(reason)} (finished cells are cached; rerun to resume)"
    )


Store = Callable[[_Cell, list[dict[str, Any]]], None]


def _run_in_process(pending: list[_Cell], run_cell: RunCell, store: Store, n: int) -> None:
    for cell in pending:
        try:
            rows = _execute(run_cell, cell.config)
        except Exception as exc:
            raise _failure(cell, n, exc) from exc
        store(cell, rows)


def _run_pool(pending: list[_Cell], run_cell: RunCell, store: Store, n: int, workers: int) -> None:
    """Run cells on a spawn-based process pool, caching each as it completes.

    On the first failure the cells not yet started are cancelled, the running ones are
    allowed to finish (and are cached, so their work is not lost), then the error is raised.
    """
    n_workers = min(workers, len(pending))
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    failure: tuple[_Cell, BaseException] | None = None
    with ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(threads, os.getpid()),
    ) as pool:
        futures = {pool.submit(_execute, run_cell, cell.config): cell for cell in pending}
        try:
            for fut in as_completed(futures):
                cell = futures[fut]
                if fut.cancelled():
                    continue
                exc = fut.exception()
                if exc is None:
                    store(cell, fut.result())
                elif failure is None:
                    failure = (cell, exc)
                    for other in futures:
                        other.cancel()
        except BaseException:  # KeyboardInterrupt: do not start anything new
            for other in futures:
                other.cancel()
            raise
    if failure is not None:
        raise _failure(failure[0], n, failure[1]) from failure[1]


#: Seconds to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT_S = 5
_ADDRESS_RE = re.compile(
    r"^(?:(?:tcp|tls|ucx|ws|wss)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):\d{1,5}$"
    r"|^inproc://\S+$"
)


def check_address(scheduler: str) -> None:
    """Refuse a scheduler address that is not ``[PROTOCOL://]HOST:PORT`` (one line)."""
    if not isinstance(scheduler, str) or not _ADDRESS_RE.match(scheduler):
        shown = scheduler if isinstance(scheduler, str) else type(scheduler).__name__
        raise StudyError(
            f"invalid Dask scheduler address {_one_line(repr(shown), 80)}: expected "
            "[tcp://]HOST:PORT, e.g. tcp://127.0.0.1:8786"
        )
    port = scheduler.rsplit(":", 1)[1]
    if not scheduler.startswith("inproc://") and not 0 < int(port) < 65536:
        raise StudyError(f"invalid Dask scheduler address {scheduler!r}: port {port} out of range")


def _dask_client(scheduler: str | None, cluster: Any) -> tuple[Any, bool]:
    """A distributed.Client for ``cluster`` or ``scheduler``, and whether we must close it.

    The address is checked before anything is opened, and the connection is given
    :data:`CONNECT_TIMEOUT_S` seconds: a half-made client left to the garbage collector
    would hang the interpreter's exit for a minute.
    """
    if scheduler is not None:
        check_address(scheduler)
    try:
        import distributed
    except ImportError as exc:
        raise StudyError(
            f"the Dask backend needs dask and distributed ({exc}): install odebench[dask]"
        ) from None
    if cluster is not None:
        if isinstance(cluster, distributed.Client):
            return cluster, False
        return distributed.Client(cluster, set_as_default=False), True
    try:
        return distributed.Client(
            scheduler, set_as_default=False, timeout=CONNECT_TIMEOUT_S, asynchronous=False
        ), True
    except Exception as exc:  # OSError, TimeoutError, ValueError from distributed's parser
        raise StudyError(
            f"cannot connect to the Dask scheduler {scheduler}: {_one_line(str(exc), 200)}"
        ) from None


def _run_dask(
    pending: list[_Cell],
    run_cell: RunCell,
    store: Store,
    n: int,
    scheduler: str | None,
    cluster: Any,
) -> None:
    """Run cells as Dask tasks, caching each as it completes (in this process)."""
    client, close = _dask_client(scheduler, cluster)  # raises StudyError if Dask is missing
    import distributed

    futures: dict[Any, _Cell] = {}
    try:
        for cell in pending:
            fut = client.submit(
                _execute,
                run_cell,
                cell.config,
                pure=False,
                key=f"odebench-cell-{cell.index}-{cell.key[:12]}-{os.urandom(4).hex()}",
            )
            futures[fut] = cell
        done: set[Any] = set()
        for fut in distributed.as_completed(list(futures), loop=client.loop):
            cell = futures[fut]
            done.add(fut)
            if fut.status == "finished":
                store(cell, fut.result())
                continue
            exc = fut.exception() if fut.status == "error" else CancelledError(fut.status)
            # Keep whatever else has already finished, then stop the rest.
            for other, other_cell in futures.items():
                if other not in done and other.status == "finished":
                    done.add(other)
                    store(other_cell, other.result())
            raise _failure(cell, n, exc) from exc
    finally:
        remaining = [f for f in futures if not f.done()]
        if remaining:
            client.cancel(remaining)
        if close:
            client.close()


def _csv_text(value: Any) -> str:
    """One CSV field: floats by repr (exact round trip), None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _table(kind: StudyKind, cells: list[_Cell]) -> tuple[list[str], list[list[Any]]]:
    """Columns and records of the tidy table.

    Columns: the grid axes in declared order (a ladder axis only if some row provides it,
    since its per-row value comes from the row), then the rows' own columns in order of
    first appearance. A row may repeat a non-ladder axis only with the cell's own value.
    """
    ladder = set(kind.ladder_axes)
    row_columns: dict[str, None] = {}
    ladder_seen: set[str] = set()
    for cell in cells:
        for row in cell.rows or []:
            for key, value in row.items():
                if key not in kind.grid:
                    row_columns.setdefault(key, None)
                elif key in ladder:
                    ladder_seen.add(key)
                elif value != cell.config[key]:
                    raise StudyError(
                        f"cell {cell.index + 1}: a row sets grid axis {key!r} to "
                        f"{value!r} but the cell has {cell.config[key]!r}"
                    )
    axes = [a for a in kind.grid if a not in ladder or a in ladder_seen]
    columns = axes + list(row_columns)
    records = []
    for cell in cells:
        for row in cell.rows or []:
            records.append(
                [
                    cell.config[c] if c in kind.grid and c not in ladder else row.get(c)
                    for c in columns
                ]
            )
    return columns, records


def _render_csv(columns: list[str], records: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if columns:
        writer.writerow(columns)
    for record in records:
        writer.writerow([_csv_text(v) for v in record])
    return buf.getvalue()


def _plot(kind: StudyKind, df: pd.DataFrame, summary: pd.DataFrame | None, out: Path) -> list[Path]:
    """Let the kind draw into a scratch folder, then move each figure into ``out`` atomically.

    A reader of ``out`` thus never sees a half-written figure, and a failing plot leaves
    the previous figures in place.
    """
    if kind.plot is None:
        return []
    scratch = Path(tempfile.mkdtemp(dir=out, prefix=".figures-"))
    try:
        try:
            produced = list(kind.plot(df, summary, scratch) or [])
        except Exception as exc:
            raise StudyError(f"kind {kind.name!r}: plot failed: {_one_line(repr(exc))}") from exc
        figures = []
        for path in map(Path, produced):
            try:
                rel = path.resolve().relative_to(scratch.resolve())
            except ValueError:  # written elsewhere by the kind: leave it where it is
                figures.append(path)
                continue
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            figures.append(dest)
        return figures
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def count_cells(spec: StudySpec, kind: StudyKind | None = None) -> int:
    """How many cells ``spec`` expands into (without expanding it)."""
    kind = kind if kind is not None else kinds.get(spec.kind)
    axes = [a for a in kind.grid if a not in kind.ladder_axes] + _split_axes(spec, kind)
    return math.prod(len(spec.grid[a]) for a in axes)


def longest_first(kind: StudyKind, pending: list[_Cell]) -> list[_Cell]:
    """``pending`` with the costliest cells (the kind's estimate) first, ties in expansion
    order: a pool that starts the long cells first does not end with one long cell running
    alone while the other workers idle. Only the order of computing changes; the CSV keeps
    expansion order. Without an estimate (or when one fails) the order is unchanged."""
    if kind.estimate is None or len(pending) < 2:
        return pending
    try:
        seconds = {cell.index: float(kind.estimate(cell.config).seconds) for cell in pending}
    except Exception:  # an estimate is advice: a cell it cannot cost is still computed
        return pending
    return sorted(pending, key=lambda cell: (-seconds[cell.index], cell.index))


def estimate_run(
    kind: StudyKind, configs: list[dict[str, Any]], workers: int = 1, n_cells: int | None = None
) -> Estimate:
    """Peak memory and time of computing ``configs`` (the kind's per-cell estimate).

    ``workers`` cells run at once, each worker process with its own interpreter. Where
    ``n_cells`` exceeds ``len(configs)`` the configs are a sample and the time is scaled up.
    Kinds without an estimate cost nothing but their worker processes.
    """
    n = len(configs) if n_cells is None else n_cells
    if not configs or n == 0:
        return Estimate(0.0, 0.0)
    cost = [kind.estimate(c) for c in configs] if kind.estimate is not None else []
    concurrent = min(workers, n)
    peak = max((e.memory for e in cost), default=0.0)
    seconds = sum(e.seconds for e in cost) * (n / len(configs)) / concurrent
    memory = concurrent * (peak + PROCESS_BYTES) if concurrent > 1 else peak
    steps = max((e.steps for e in cost), default=0)
    return Estimate(memory=memory, seconds=seconds, steps=steps)


def estimate_study(spec_or_path: StudySpec | Path | str, workers: int = 1) -> tuple[Estimate, int]:
    """The estimate of a whole study (cache ignored) and its number of cells; at most
    :data:`~odebench.study.limits.MAX_CELLS` cells are estimated, the rest scaled."""
    spec = spec_or_path if isinstance(spec_or_path, StudySpec) else load_study(spec_or_path)
    kind = kinds.get(spec.kind)
    n_cells = count_cells(spec, kind)
    configs = expand_cells(spec, kind, limit=MAX_CELLS)
    return estimate_run(kind, configs, workers, n_cells=n_cells), n_cells


def _check_size(spec: StudySpec, kind: StudyKind, workers: int, limits: dict[str, Any]) -> None:
    """Refuse a grid too big to expand (by cell count, with one cell's cost scaled up)."""
    n_cells = count_cells(spec, kind)
    if n_cells <= MAX_CELLS or limits["yes"]:
        return
    first = expand_cells(spec, kind, limit=1)
    check(estimate_run(kind, first, workers, n_cells=n_cells), n_cells, **limits)


def run_study(
    spec_or_path: StudySpec | Path | str,
    *,
    out: Path | str | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    cluster: Any = None,
    max_memory: float | None = None,
    yes: bool = False,
) -> StudyResult:
    """Run a study (a :class:`StudySpec` or the path of its TOML file) and write its table.

    ``out`` overrides the study's ``output`` folder (default ``results/<name>``). ``workers``
    > 1 uses a spawn process pool; ``scheduler`` (a Dask scheduler address) or ``cluster``
    (a ``distributed.Client`` or cluster object) runs cells on Dask instead, and ``workers``
    is then ignored. Writes ``<out>/<name>.csv``, ``<out>/<name>_summary.csv`` if the kind
    summarizes, and the kind's figures. Raises :class:`StudyError` on any failure.

    Before computing, the cells still to compute are estimated (:mod:`odebench.study.limits`):
    above ``max_memory`` bytes (default half the machine's memory) the run is refused; above
    an hour of compute or :data:`~odebench.study.limits.MAX_CELLS` cells too, unless ``yes``.
    The output folder is locked for the run: a second run into it is refused.
    """
    if isinstance(spec_or_path, StudySpec):
        spec = parse_study(spec_or_path.to_dict(), path=spec_or_path.path)  # re-validate
    else:
        spec = load_study(spec_or_path)
    kind = kinds.get(spec.kind)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise StudyError(f"workers must be a positive int, got {workers!r}")
    if scheduler is not None and cluster is not None:
        raise StudyError("give either scheduler (an address) or cluster, not both")
    if scheduler is not None:
        check_address(scheduler)
    limits = {"max_memory": max_memory, "yes": yes, "what": f"study {spec.name!r}"}
    at_once = workers if scheduler is None and cluster is None else 1  # Dask's are not ours
    _check_size(spec, kind, at_once, limits)
    out_dir = Path(out) if out is not None else (spec.output or DEFAULT_OUTPUT_ROOT / spec.name)
    if not out_dir.exists():  # nothing cached: refuse before leaving an empty folder behind
        check(*estimate_study(spec, at_once), **limits)
    out_dir.mkdir(parents=True, exist_ok=True)
    with locked(out_dir):
        return _run_locked(spec, kind, out_dir, workers, scheduler, cluster, progress, limits)


def _run_locked(
    spec: StudySpec,
    kind: StudyKind,
    out_dir: Path,
    workers: int,
    scheduler: str | None,
    cluster: Any,
    progress: bool,
    limits: dict[str, Any],
) -> StudyResult:
    """:func:`run_study` once its output folder is held; the cells not cached yet are
    checked against ``limits`` (:func:`~odebench.study.limits.check`) first."""
    import pandas as pd
    from tqdm import tqdm

    cells = [
        _Cell(i, config, cache_key(config, kind.version))
        for i, config in enumerate(expand_cells(spec, kind))
    ]
    for cell in cells:
        cell.rows = load_rows(out_dir, cell.key, cell.config)
    pending = [cell for cell in cells if cell.rows is None]
    n_cells, n_cached = len(cells), len(cells) - len(pending)
    at_once = workers if scheduler is None and cluster is None else 1
    check(estimate_run(kind, [c.config for c in pending], at_once), len(pending), **limits)

    bar = tqdm(
        total=n_cells,
        initial=n_cached,
        desc=spec.name,
        unit="cell",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )

    def store(cell: _Cell, rows: list[dict[str, Any]]) -> None:
        _store_rows(out_dir, cell.key, kind.name, kind.version, cell.config, rows)
        cell.rows = rows
        bar.update(1)

    try:
        if pending:
            if scheduler is not None or cluster is not None:
                ordered = longest_first(kind, pending)
                _run_dask(ordered, kind.run_cell, store, n_cells, scheduler, cluster)
            elif workers > 1 and len(pending) > 1:
                _run_pool(longest_first(kind, pending), kind.run_cell, store, n_cells, workers)
            else:
                _run_in_process(pending, kind.run_cell, store, n_cells)
    finally:
        bar.close()

    columns, records = _table(kind, cells)
    text = _render_csv(columns, records)
    df = pd.read_csv(io.StringIO(text)) if columns else pd.DataFrame()
    summary = None
    if kind.summarize is not None:
        try:
            summary = kind.summarize(df.copy())
        except Exception as exc:
            raise StudyError(
                f"kind {kind.name!r}: summarize failed: {_one_line(repr(exc))}"
            ) from exc
        if not isinstance(summary, pd.DataFrame):
            raise StudyError(
                f"kind {kind.name!r}: summarize must return a DataFrame, "
                f"got {type(summary).__name__}"
            )

    csv_path = out_dir / f"{spec.name}.csv"
    atomic_write_text(csv_path, text)
    summary_path = None
    if summary is not None:
        summary_path = out_dir / f"{spec.name}_summary.csv"
        atomic_write_text(summary_path, summary.to_csv(index=False, lineterminator="\n"))
    figures = _plot(kind, df.copy(), summary, out_dir)
    return StudyResult(
        csv=csv_path,
        summary_csv=summary_path,
        figures=figures,
        n_cells=n_cells,
        n_cached=n_cached,
        n_computed=len(pending),
        dataframe=df,
        kind=kind.name,
    )
