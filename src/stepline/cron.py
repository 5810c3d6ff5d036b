"""Cron schedules: the one place that reads cron expressions (five fields, UTC).

A workflow may carry schedules (``PUT`` ``{"schedules": [{"cron": "*/5 * * * *"}]}`` or
``schedules = [...]`` in ``stepline.toml``); the engine creates an instance at each firing.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from croniter import CroniterBadDateError, croniter

from stepline.errors import InvalidRequest

__all__ = [
    "MAX_CRON_LENGTH",
    "MAX_SCHEDULES_PER_ACCOUNT",
    "check_cron",
    "cron_instance_id",
    "next_fire",
]

MAX_CRON_LENGTH = 256
MAX_SCHEDULES_PER_ACCOUNT = 100
_DRAWN_FIELD = re.compile(r"[HhRr]")
"""croniter's hashed (``H``) and random (``R``) fields, no cron's: ``R`` is drawn afresh at
each firing, so such a schedule fired at random times. No standard field starts with H or R."""


def check_cron(expression: object) -> str:
    """A valid five-field cron expression that fires, or ``InvalidRequest`` saying why not."""
    if not isinstance(expression, str) or not 1 <= len(expression) <= MAX_CRON_LENGTH:
        raise InvalidRequest(f"cron must be a string of 1-{MAX_CRON_LENGTH} characters")
    text = " ".join(expression.split())
    fields = text.split(" ")
    if (
        len(fields) != 5
        or any(_DRAWN_FIELD.match(field) for field in fields)
        or not croniter.is_valid(text)
    ):
        raise InvalidRequest(
            f"cron {expression!r} is not a valid five-field expression (minute hour "
            "day-of-month month day-of-week)"
        )
    try:
        croniter(text, datetime.now(UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidRequest(
            f"cron {expression!r} names a date that never comes (the 31st of a month of 30 "
            "days, say)"
        ) from None
    return text


def next_fire(expression: str, after_ms: int) -> int:
    """The first firing strictly after ``after_ms``, in epoch milliseconds (UTC)."""
    start = datetime.fromtimestamp(after_ms / 1000, UTC)
    following = croniter(expression, start).get_next(datetime)
    return int(following.timestamp() * 1000)


def cron_instance_id(expression: str, fire_ms: int) -> str:
    """The id of the instance a firing creates: the same firing always gets the same id, so
    engines sharing a database create it once. Cloudflare's own ids embed the expression
    (with spaces and '/'); these stay within the instance id pattern, so every client and
    every path can address them."""
    digest = hashlib.sha1(expression.encode()).hexdigest()[:8]
    return f"cron-{fire_ms}-{digest}"
