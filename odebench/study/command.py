"""How a study kind appears on the command line: ``odebench KIND [flags]``.

The flags are generated from the kind's fields (see :mod:`odebench.cli.generate`): a grid axis
``t_min`` becomes ``--t-min`` taking a comma-separated list, an option ``n_samples`` becomes
``--n-samples`` taking one value, a bool option ``paired`` becomes ``--paired/--no-paired``.
A :class:`Command` only says what the fields cannot: the help line, the default output
folder, command-line defaults (e.g. for axes a study file must give), extra spellings of a
flag, and *shortcuts*, hand-made flags that set fields (``--local`` sets ``mode = "local"``).
A kind whose command is not a study at all (``odebench audit SAMPLER``) gives ``parser``, a
function that adds its own subcommand.

This module imports nothing from odebench: it only describes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Command", "Shortcut"]


@dataclass(frozen=True)
class Shortcut:
    """A hand-made flag that sets fields, applied after the generated flags.

    ``sets(value)`` returns the field values the flag stands for; ``value`` is the flag's
    text, or True for a ``switch`` (a flag without a value). It may raise ValueError with a
    one-line message for a malformed value.
    """

    flag: str
    help: str
    sets: Callable[[Any], Mapping[str, Any]]
    switch: bool = False
    metavar: str | None = None


@dataclass(frozen=True)
class Command:
    """The command line of a kind (``odebench NAME``), beyond what its fields declare.

    ``defaults`` are used for fields whose flag is not given, instead of the fields' own
    defaults (e.g. ``problem = ["gmm-2d"]`` where a study file must name its problems).
    ``aliases`` are extra spellings of a field's flag (``{"solver": ("--solvers",)}``).
    ``out`` is the default output folder (``results/NAME`` if empty). ``parser``, if given,
    replaces the generated subcommand: ``parser(subparsers)`` adds its own and sets the
    ``handler`` default to the function that runs it.
    """

    help: str = ""
    out: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    shortcuts: tuple[Shortcut, ...] = ()
    parser: Callable[[Any], Any] | None = None
