"""Query parameters read the way the clients write them (clients.md Q4).

Starlette decodes the query string with form semantics, so ``name=fetch+data-1`` (Python SDK)
and ``name=fetch%20data-1`` (TS SDK) both read ``fetch data-1``. On top of that:

- numbers may come as floats (``page=2.0``: the Python SDK types them ``float``);
- an empty value (``status=``) reads as absent, as if the client had left the key out;
- a repeated key keeps its last value;
- timestamps are normalised to ``YYYY-MM-DDTHH:MM:SS.sssZ`` in UTC, so the client can compare
  them as strings; a ``+`` in an offset that arrived unencoded (and so reads as a space) is
  restored, and a timestamp without an offset is UTC (spec §1.3, list instances).

Every refusal is a 400 10002 naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from starlette.datastructures import QueryParams

from stepline.errors import InvalidRequest
from stepline.validation import has_control_characters

__all__ = ["MAX_PAGE", "QueryReader", "format_timestamp"]

_INTEGER = re.compile(r"-?[0-9]+(\.0+)?")
"""A whole number in ASCII digits; ``2.0`` too, as the Python SDK writes its numbers."""

# Beyond this an offset no longer fits the stores' 64-bit integers; nobody pages that far.
MAX_PAGE = 2**31 - 1


def format_timestamp(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.sssZ``: fixed width, so string order is time order (Q10)."""
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


class QueryReader:
    """Typed access to one request's query parameters."""

    def __init__(self, params: QueryParams) -> None:
        self._params = params

    def text(self, name: str, *, max_length: int = 1024) -> str | None:
        value = self._params.get(name)
        if not value:
            return None
        if len(value) > max_length:
            raise InvalidRequest(f"query parameter {name} is longer than {max_length} characters")
        if has_control_characters(value):
            raise InvalidRequest(f"query parameter {name} holds a control character")
        return value

    def has(self, name: str) -> bool:
        return self.text(name) is not None

    def integer(self, name: str, *, minimum: int, maximum: int) -> int | None:
        value = self.text(name, max_length=64)
        if value is None:
            return None
        if not _INTEGER.fullmatch(value):
            raise InvalidRequest(f"query parameter {name} must be an integer, not {value!r}")
        number = int(value.partition(".")[0])  # ASCII digits, by the pattern
        if not minimum <= number <= maximum:
            raise InvalidRequest(
                f"query parameter {name} must be between {minimum} and {maximum}, not {value!r}"
            )
        return number

    def choice(self, name: str, choices: Iterable[str]) -> str | None:
        value = self.text(name, max_length=64)
        allowed = tuple(choices)
        if value is not None and value not in allowed:
            raise InvalidRequest(
                f"query parameter {name} must be one of {', '.join(allowed)}, not {value!r}"
            )
        return value

    def timestamp(self, name: str) -> str | None:
        value = self.text(name, max_length=64)
        if value is None:
            return None
        for candidate in (value, value.replace(" ", "+")):
            try:
                moment = datetime.fromisoformat(candidate)
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            try:
                return format_timestamp(moment)
            except OverflowError:
                break
        raise InvalidRequest(
            f"query parameter {name} must be an ISO 8601 date-time such as "
            f"2024-01-01T00:00:00.000Z, not {value!r}"
        )
