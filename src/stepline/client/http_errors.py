"""How the HTTP client reports failure: transport errors, and API errors from envelopes.

A ``success: false`` envelope becomes the :mod:`stepline.errors` class with the same code and
HTTP status (the error table is the single source); a code this version does not know becomes
an :class:`UnrecognizedApiError` that keeps the server's code, message and status.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from stepline.errors import ApiError, SteplineError

__all__ = [
    "MalformedResponse",
    "ServerUnreachable",
    "UnrecognizedApiError",
    "api_error_from_response",
    "as_int",
]


class ServerUnreachable(SteplineError):
    """The API could not be reached: connection refused, DNS failure, time-out.

    ``delivered_maybe``: the request may have reached the server, and been carried out,
    before its answer was lost (a read time-out, a connection closed mid-answer); False
    when no connection was made."""

    def __init__(self, message: str, *, delivered_maybe: bool = True) -> None:
        super().__init__(message)
        self.delivered_maybe = delivered_maybe


class MalformedResponse(SteplineError):
    """The server answered with something that is not a Cloudflare envelope."""


class UnrecognizedApiError(ApiError):
    """An API error whose code this client does not know; a subclass per code keeps it."""


# --- choosing the error class --------------------------------------------------------------


def _api_error_classes() -> list[type[ApiError]]:
    """Every concrete ApiError class, parents before children (breadth first)."""
    ordered: list[type[ApiError]] = []
    frontier: list[type[ApiError]] = [ApiError]
    while frontier:
        children = [sub for cls in frontier for sub in cls.__subclasses__()]
        ordered.extend(c for c in children if c is not UnrecognizedApiError)
        frontier = [c for c in children if not issubclass(c, UnrecognizedApiError)]
    return ordered


def _depth(cls: type[ApiError]) -> int:
    return len(cls.__mro__)


@cache
def _error_lookup() -> dict[tuple[object, ...], type[ApiError]]:
    """Keys, from most to least specific: (code, status, key), (code, status), (code, key), (code,).

    Several classes share a key (``InvalidName`` and ``InvalidRequest`` both say 10002/400); the
    most general one wins, then the lowest HTTP status, so a 10001 seen with HTTP 200 (which
    Cloudflare does send) becomes ``InternalServerError``, not ``StoreUnavailable``.
    """
    lookup: dict[tuple[object, ...], type[ApiError]] = {}
    for cls in sorted(_api_error_classes(), key=lambda c: (_depth(c), c.http_status)):
        if cls.__name__.startswith("_"):
            continue
        for key in (
            (cls.code, cls.http_status, cls.key),
            (cls.code, cls.http_status),
            (cls.code, cls.key),
            (cls.code,),
        ):
            lookup.setdefault(key, cls)
    return lookup


def _matching_error_class(code: int, status: int, message: str) -> type[ApiError] | None:
    lookup = _error_lookup()
    for key in ((code, status, message), (code, status), (code, message), (code,)):
        if key in lookup:
            return lookup[key]
    return None


@cache
def _unrecognized_error_class(code: int, message: str, status: int) -> type[ApiError]:
    # ApiError keeps code, key and status on the class (the error table is class-level), so a
    # code we do not know gets its own small subclass rather than instance attributes.
    attributes = {"code": code, "key": message, "http_status": status}
    return type("UnrecognizedApiError", (UnrecognizedApiError,), attributes)


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _describe_entry(entry: object) -> str:
    if isinstance(entry, Mapping):
        text = str(entry.get("message", ""))
        code = entry.get("code")
        return f"{text} [code: {code}]" if code is not None else text
    return str(entry)


def api_error_from_response(status: int, body: Mapping[str, Any]) -> ApiError:
    """Turn a ``success: false`` envelope into the matching ApiError, keeping the server's words.

    The human detail comes from ``errors[0].detail`` when the server adds one, else from the
    envelope's ``messages`` (which wrangler prints too); further ``errors`` entries are appended.
    When the code is known but the server's message differs from the table's key, the server's
    message leads the detail so nothing it said is lost.
    """
    errors = body.get("errors")
    entries = [e for e in errors if isinstance(e, Mapping)] if isinstance(errors, list) else []
    first: Mapping[str, Any] = entries[0] if entries else body
    code = as_int(first.get("code"))
    message = first.get("message") if entries else first.get("error")
    message = str(message) if message else f"HTTP {status}"
    if code is None:
        code = 0

    details: list[str] = []
    if isinstance(first.get("detail"), str) and first["detail"]:
        details.append(first["detail"])
    messages = body.get("messages")
    if isinstance(messages, list):
        for entry in messages:
            text = entry.get("message") if isinstance(entry, Mapping) else entry
            if text:
                details.append(str(text))
    details.extend(_describe_entry(e) for e in entries[1:])

    cls = _matching_error_class(code, status, message)
    if cls is None:
        cls = _unrecognized_error_class(code, message, status)
    elif message != cls.key:
        details.insert(0, message)
    return cls("; ".join(details) or None)
