"""Subcommands generated from the study kinds: ``odebench KIND [flags]``.

Each field a kind declares becomes a flag named after it (``t_min`` -> ``--t-min``):

- a grid axis takes a comma-separated list of its type (``--steps 25,50,100``);
- an option takes one value of its type; a list option a comma-separated list; a bool option
  is a pair ``--NAME`` / ``--no-NAME``; an option with fixed choices offers exactly those;
- a flag not given leaves the field to the kind's command-line default
  (``Command.defaults``) or else to the field's own default, as a study file would.

The kind's :class:`~odebench.study.Command` adds extra spellings (``--solvers``), shortcut
flags (``--local``), the help line and the output folder; every subcommand also takes the run
options ``--out``, ``--workers``, ``--scheduler``, ``--no-progress``, the limits ``--max-memory``
and ``--yes`` and the dry run ``--estimate``. Values are checked by
the same validation as study files, so a bad value names its key in one line.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ..study import REQUIRED, Command, Field, StudyError, StudyKind
from ..study.limits import add_limit_options

#: Subcommands that are not study kinds; a kind of the same name gets no subcommand.
RESERVED = ("list", "run")


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def csv_list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """An argparse type: a comma-separated list, each item parsed by ``kind``."""
    name = getattr(kind, "__name__", "value")

    def parse(text: str) -> list[Any]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        try:
            return [kind(s) for s in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {name}, got {text!r}"
            ) from None

    return parse


def joined(values: Sequence[Any]) -> str:
    """Values as a comma-separated list, floats in %g."""
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def add_run_options(parser: argparse.ArgumentParser, default_out: str | None) -> None:
    """``--out``, ``--workers``, ``--scheduler``, ``--no-progress``, the limits and
    ``--estimate``: how a study runs."""
    where = f"(default {default_out})" if default_out else "(default: the study's output)"
    parser.add_argument("--out", type=Path, default=default_out, help=f"output folder {where}")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes")
    parser.add_argument(
        "--scheduler", default=None, help="address of a Dask scheduler to run the cells on"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_limit_options(parser)
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="print the run's estimated memory and time, check the limits, run nothing",
    )


def add_kind_commands(subparsers: Any) -> None:
    """One subcommand per registered, declared or advertised kind ("orders" first)."""
    from ..study import get, names

    for name in sorted(names(), key=lambda n: (n != "orders", n)):
        if name in RESERVED:
            continue
        try:
            kind = get(name)
        except StudyError:  # a kind that cannot be imported here; `odebench run` says why
            continue
        add_kind_command(subparsers, kind)


def add_kind_command(subparsers: Any, kind: StudyKind) -> argparse.ArgumentParser:
    """The subcommand ``odebench KIND``, its flags generated from the kind's fields."""
    command = kind.command or Command()
    if command.parser is not None:
        return command.parser(subparsers)
    parser = subparsers.add_parser(
        kind.name,
        help=command.help or kind.description,
        description=kind.description or None,
    )
    for fields, is_axis in ((kind.grid, True), (kind.options, False)):
        for name, spec in fields.items():
            _add_field(parser, name, spec, is_axis, command)
    for i, shortcut in enumerate(command.shortcuts):
        if shortcut.switch:
            parser.add_argument(
                shortcut.flag, dest=f"shortcut_{i}", action="store_true", help=shortcut.help
            )
        else:
            parser.add_argument(
                shortcut.flag,
                dest=f"shortcut_{i}",
                default=None,
                metavar=shortcut.metavar,
                help=shortcut.help,
            )
    add_run_options(parser, default_out=command.out or f"results/{kind.name}")
    parser.set_defaults(handler=functools.partial(run_kind, kind))
    return parser


def _dest(name: str) -> str:
    return f"field_{name}"


def _add_field(
    parser: argparse.ArgumentParser, name: str, spec: Field, is_axis: bool, command: Command
) -> None:
    flags = ["--" + name.replace("_", "-"), *command.aliases.get(name, ())]
    default = command.defaults.get(name, spec.default)
    required = default is REQUIRED
    shown = "required" if required else f"default {_shown(default, is_axis)}"
    text = f"{spec.help} ({shown})" if spec.help else f"({shown})"
    metavar = name.upper()
    if is_axis:
        parser.add_argument(
            *flags,
            dest=_dest(name),
            type=csv_list(_scalar(spec.types)),
            default=None,
            required=required,
            metavar=f"{metavar}[,...]",
            help=text,
        )
    elif bool in spec.types:
        parser.add_argument(
            *flags,
            dest=_dest(name),
            action=argparse.BooleanOptionalAction,
            default=None,
            required=required,
            help=text,
        )
    elif list in spec.types or tuple in spec.types:
        parser.add_argument(
            *flags,
            dest=_dest(name),
            type=csv_list(str),
            default=None,
            required=required,
            metavar=f"{metavar}[,...]",
            help=text,
        )
    else:
        fixed = spec.choices if spec.choices is not None and not callable(spec.choices) else None
        parser.add_argument(
            *flags,
            dest=_dest(name),
            type=_scalar(spec.types),
            choices=list(fixed) if fixed is not None else None,
            default=None,
            required=required,
            metavar=None if fixed is not None else metavar,
            help=text,
        )


def _scalar(types: tuple[type, ...]) -> Callable[[str], Any]:
    """An argparse type for one value of ``types`` (the first that parses, in order)."""
    usable = [t for t in types if t is not bool]
    if len(usable) == 1:
        return usable[0]

    def parse(text: str) -> Any:
        for t in usable:
            try:
                return t(text)
            except ValueError:
                continue
        raise ValueError(text)

    parse.__name__ = " or ".join(t.__name__ for t in usable)
    return parse


def _shown(default: Any, is_axis: bool) -> str:
    if is_axis and isinstance(default, (list, tuple)):
        return joined(default)
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, (list, tuple)):
        return joined(default)
    return f"{default:g}" if isinstance(default, float) else str(default)


def study_data(kind: StudyKind, args: argparse.Namespace) -> dict[str, Any]:
    """The study (as study-file data) that the flags of ``args`` describe."""
    command = kind.command or Command()
    grid: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for fields, target in ((kind.grid, grid), (kind.options, options)):
        for name in fields:
            value = getattr(args, _dest(name), None)
            if value is None and name in command.defaults:
                value = command.defaults[name]
            if value is not None:
                target[name] = list(value) if isinstance(value, (list, tuple)) else value
    for i, shortcut in enumerate(command.shortcuts):
        value = getattr(args, f"shortcut_{i}", None)
        if value is None or value is False:
            continue
        for name, field_value in shortcut.sets(value).items():
            (grid if name in kind.grid else options)[name] = field_value
    description = f"odebench {kind.name} (command line)"
    return {
        "study": {"name": kind.name, "kind": kind.name, "description": description},
        "grid": grid,
        "options": options,
    }


def run_kind(kind: StudyKind, args: argparse.Namespace) -> None:
    """``odebench KIND [flags]``: validate the study the flags describe, run it, report."""
    from ..study import parse_study
    from .run import run_spec

    run_spec(parse_study(study_data(kind, args)), args)
