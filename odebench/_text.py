"""Fixed-width text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence


def fixed_width(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, rule: bool = True, indent: str = ""
) -> str:
    """Left-aligned columns as wide as their widest cell, optionally a rule under the header."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    fmt = indent + "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header)]
    if rule:
        lines.append(fmt.format(*("-" * w for w in widths)))
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
