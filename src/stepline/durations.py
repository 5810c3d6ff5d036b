"""The one parser for durations, shared by workflow code, the engine, the API and the CLI.

A duration is a number of milliseconds, a numeric string (milliseconds too), or
``"<number> <unit>"`` where unit is second, minute, hour, day, week, month (30 days) or
year (365.25 days), singular or plural: ``"10 seconds"``, ``"1 day"``, ``"1.5 hours"``.
Unknown units are errors (Cloudflare's own parser multiplies them by one; we refuse). So is
a duration over 100,000 years: every time Stepline keeps is a 64-bit count of milliseconds,
and a time so far off would not fit it.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

from stepline.errors import InvalidDuration

__all__ = [
    "MAX_DURATION_MS",
    "MAX_WAIT_MS",
    "Duration",
    "format_duration_ms",
    "parse_duration_ms",
]

Duration = int | float | str | timedelta

_UNIT_MS = {
    "millisecond": 1,
    "ms": 1,
    "second": 1_000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 7 * 86_400_000,
    "month": 30 * 86_400_000,
    "year": int(365.25 * 86_400_000),
}
MAX_DURATION_MS = 100_000 * _UNIT_MS["year"]
MAX_WAIT_MS = 365 * _UNIT_MS["day"]
"""The longest an instance waits in one go: a sleep, an event's timeout (as Cloudflare's
limits), and a retry's backoff, however far its doubling goes."""
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s+([A-Za-z]+)\s*$")


def parse_duration_ms(value: object, *, what: str = "duration") -> int:
    """Return ``value`` as whole milliseconds, or raise ``InvalidDuration``.

    >>> parse_duration_ms("2 minutes")
    120000
    >>> parse_duration_ms(1500)
    1500
    """
    if isinstance(value, bool):
        raise InvalidDuration(f"{what} must be milliseconds or a string like '10 seconds'")
    if isinstance(value, timedelta):
        return _checked(value.total_seconds() * 1000, what, value)
    if isinstance(value, int | float):
        return _checked(value, what, value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return _checked(float(text), what, value)
        except ValueError:
            pass
        match = _PATTERN.match(text)
        if match is None:
            raise InvalidDuration(
                f"{what} {value!r} is not a duration: use milliseconds or '<number> <unit>' "
                f"with unit one of second, minute, hour, day, week, month, year"
            )
        number, unit = match.groups()
        unit = unit.lower()
        if unit not in _UNIT_MS and unit.endswith("s") and unit[:-1] in _UNIT_MS:
            unit = unit[:-1]
        if unit not in _UNIT_MS:
            raise InvalidDuration(
                f"{what} {value!r} has an unknown unit {unit!r}: use second, minute, hour, "
                f"day, week, month or year"
            )
        return _checked(float(number) * _UNIT_MS[unit], what, value)
    raise InvalidDuration(f"{what} must be milliseconds or a string like '10 seconds'")


def _checked(ms: float, what: str, original: object) -> int:
    # An int is compared as it is: one past a float's range (10**400) has no float to check.
    if (isinstance(ms, float) and not math.isfinite(ms)) or ms < 0:
        raise InvalidDuration(f"{what} {original!r} must be a finite, non-negative duration")
    if ms > MAX_DURATION_MS:
        raise InvalidDuration(f"{what} {original!r} is longer than 100,000 years")
    return round(ms)


def format_duration_ms(ms: int) -> str:
    """Milliseconds as :func:`parse_duration_ms` reads them back: in the largest of days,
    hours and minutes that divides them (``"2 days"``), else in ms (``"90,000 ms"``)."""
    for unit in ("day", "hour", "minute"):
        size = _UNIT_MS[unit]
        if ms >= size and ms % size == 0:
            count = ms // size
            return f"{count:,} {unit}" + ("" if count == 1 else "s")
    return f"{ms:,} ms"
