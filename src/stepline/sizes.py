"""The one parser for sizes in bytes, as a user writes them: ``1073741824``, ``100MB``,
``1 GiB``, ``512KiB``. Decimal units (kB, MB, GB) are powers of 1,000 and binary units (KiB,
MiB, GiB) powers of 1,024, as the units say; case does not matter. A fraction is allowed
with a unit (``1.5GiB``) and rounded down to whole bytes."""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1_000,
    "mb": 1_000_000,
    "gb": 1_000_000_000,
    "tb": 1_000_000_000_000,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_PATTERN = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str, *, what: str = "size") -> int:
    """``text`` as whole bytes, at least one; ``ValueError`` naming ``what`` otherwise.

    >>> parse_size("100MB"), parse_size("1 GiB"), parse_size("4096")
    (100000000, 1073741824, 4096)
    """
    match = _PATTERN.match(text)
    scale = None if match is None else _UNITS.get(match.group(2).lower())
    if match is None or scale is None:
        raise ValueError(
            f"{what} {text!r} is not a size: use bytes, or a number with a unit such as "
            f"100MB or 1GiB (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    number = match.group(1)
    if "." in number and scale == 1:
        raise ValueError(f"{what} {text!r} is not a whole number of bytes")
    whole, _, fraction = number.partition(".")
    # Exact arithmetic: 1.1GB is 1,100,000,000 bytes, not what a float makes of it.
    places: int = 10 ** len(fraction)
    size = int(whole) * scale + int(fraction or "0") * scale // places
    if size < 1:
        raise ValueError(f"{what} must be at least 1 byte, not {text!r}")
    return size


def format_size(size: int) -> str:
    """``size`` bytes in the largest binary unit that holds it whole: ``1GiB``, ``4KiB``,
    ``1500B`` (what ``parse_size`` reads back)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"
