"""Names, ids, event types and sizes, checked the way Cloudflare checks them (spec §1.1, §4)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from stepline.errors import (
    InvalidEventType,
    InvalidName,
    InvalidRequest,
    PayloadTooLarge,
)
from stepline.step_config import MAX_RETRY_LIMIT

__all__ = [
    "MAX_CONCURRENCY_LIMIT",
    "MAX_INSTANCE_STORAGE_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_STEP_DEPTH",
    "MAX_STEP_LIMIT",
    "STEP_FULL_NAME_MAX_BYTES",
    "STEP_SHOWN_NAME_MAX_BYTES",
    "STORED_TEXT_MAX_CHARS",
    "check_account_id",
    "check_event_type",
    "check_instance_id",
    "check_json_size",
    "check_step_full_name",
    "check_step_name",
    "check_workflow_name",
    "dump_json",
    "has_control_characters",
    "shown_step_name",
    "storable_text",
    "utf8_size",
]

MAX_PAYLOAD_BYTES = 1 << 20
MAX_INSTANCE_STORAGE_BYTES = 1 << 30
"""The state one instance may persist by default (Cloudflare's paid plan)."""
MAX_STEP_LIMIT = 25_000
"""The most a workflow's ``limits.steps`` may allow (§4)."""
MAX_CONCURRENCY_LIMIT = 50_000
"""The most a workflow's ``concurrency.limit`` may be: Cloudflare's cap for an account (§4)."""
_NAME = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9\-_]*$")
_RESERVED_ID = re.compile(r"^cf_[0-9a-f]{64}$")
_ROUTE_WORDS = frozenset({"batch", "terminate"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
"""Control characters, and the lone surrogates that no UTF-8 store can hold."""


_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_account_id(account_id: object) -> str:
    """wrangler 4.164 refuses account ids outside ``[A-Za-z0-9_-]``; so do we."""
    if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
        raise InvalidName(f"account id {account_id!r} must be 1-64 letters, digits, '-' or '_'")
    return account_id


def check_workflow_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not _NAME.fullmatch(name):
        raise InvalidName(
            f"workflow name {name!r} must be 1-64 characters of letters, digits, '-' and '_', "
            "not starting with '-'"
        )
    return name


def check_instance_id(instance_id: object) -> str:
    if (
        not isinstance(instance_id, str)
        or not 1 <= len(instance_id) <= 100
        or not _NAME.fullmatch(instance_id)
    ):
        raise InvalidName(
            f"instance id {instance_id!r} must be 1-100 characters of letters, digits, '-' and "
            "'_', not starting with '-'"
        )
    if instance_id in _ROUTE_WORDS:
        raise InvalidName(
            f"instance id {instance_id!r} is reserved: it clashes with the API route "
            f".../instances/{instance_id}"
        )
    if _RESERVED_ID.fullmatch(instance_id):
        raise InvalidName(f"instance id {instance_id!r} is reserved (cf_ followed by 64 hex)")
    return instance_id


def check_event_type(event_type: object) -> str:
    if not isinstance(event_type, str) or not 1 <= len(event_type) <= 100:
        raise InvalidEventType(f"event type {event_type!r} must be 1-100 characters")
    if not _NAME.fullmatch(event_type):
        raise InvalidEventType(
            f"event type {event_type!r} may hold only letters, digits, '-' and '_'"
        )
    return event_type


STEP_FULL_NAME_MAX_BYTES = 2048
"""The most UTF-8 bytes a step's full name may take: its name within the steps whose bodies
call it (``process-2/fetch``), which add up, not counting their attempt numbers (the ``#2``
of ``process-2#2/fetch``: a retry must not refuse what its first attempt ran)."""
MAX_STEP_DEPTH = 64
"""How many steps a step may be inside, each in its body: with the attempt numbers each may
add, this bounds a full name as shown and as keyed (``STEP_SHOWN_NAME_MAX_BYTES``)."""
STEP_SHOWN_NAME_MAX_BYTES = STEP_FULL_NAME_MAX_BYTES + MAX_STEP_DEPTH * len(
    f"#{MAX_RETRY_LIMIT + 1}"
)
"""The most UTF-8 bytes of a full name as shown, or in a step's key, attempt numbers and all
(2,432). PostgreSQL indexes a step's key in a btree, whose entries may be at most 2,704
bytes: the longest key, a full name after ``sleep:@<epoch ms>:<count>:`` (32 bytes), fits
with some 200 bytes to spare."""
STEP_LABEL_MAX = STEP_SHOWN_NAME_MAX_BYTES + len("-999999999")
"""The longest step name as the describe view gives it: a full name, a dash and its count
(in characters, which a full name has no more of than bytes)."""


def check_step_name(name: object) -> str:
    """A name that workflow code gives a step: 1-256 characters, counted as JavaScript counts
    them (UTF-16 units: an emoji past U+FFFF is two)."""
    if isinstance(name, str) and not _CONTROL.search(name):
        length = _js_length(name)
        if 1 <= length <= 256:
            return name
        if length > len(name):  # else the count the refusal quotes says it fits
            raise InvalidRequest(
                f"step name {shown_step_name(name)} is {length} characters as JavaScript "
                "counts them (one past U+FFFF, an emoji, counts as two): it must be 1-256"
            )
    raise InvalidRequest(
        f"step name {shown_step_name(name)} must be 1-256 characters without control "
        "characters or lone surrogates"
    )


def _js_length(text: str) -> int:
    """``text.length`` in JavaScript; only a string over 128 characters can count past 256."""
    if len(text) <= 128:
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def check_step_full_name(name: object) -> str:
    """A step's name as the API addresses it: its full name as shown, which for a step inside
    others' bodies holds their names and attempt numbers (``process-2#2/fetch``) and may be
    longer than 256 characters."""
    if (
        not isinstance(name, str)
        or not name
        or _CONTROL.search(name)
        or utf8_size(name) > STEP_SHOWN_NAME_MAX_BYTES
    ):
        raise InvalidRequest(
            f"step name {shown_step_name(name)} must be 1-{STEP_SHOWN_NAME_MAX_BYTES} bytes of "
            "UTF-8 without control characters or lone surrogates"
        )
    return name


def shown_step_name(name: object) -> str:
    """``name`` as an error message quotes it: a long one cut short, with its length."""
    if isinstance(name, str) and len(name) > 60:
        return f"{name[:40]!r}... ({len(name)} characters)"
    return repr(name)


def _javascript_form(value: Any) -> Any:
    """What ``JSON.stringify`` makes of a ``Date``, for a ``datetime`` that says its zone (the
    timestamp of an event a wait returns, say): UTC to the millisecond, ``Z``. Anything else
    the encoder does not know is refused."""
    if isinstance(value, datetime) and value.utcoffset() is not None:
        utc = value.astimezone(UTC).replace(tzinfo=None)
        return utc.isoformat(timespec="milliseconds") + "Z"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_javascript_form
)


def dump_json(value: Any) -> str:
    """Serialise a value that crosses a durable boundary; raise ``TypeError`` or
    ``ValueError`` when it cannot. A string with a lone surrogate (``"\\ud800"``, as
    ``json.loads`` makes from such an escape) is refused here: it has no UTF-8 form, so no
    store could keep it."""
    kind = type(value)
    if kind is int:  # the commonest step result, and str() is what the encoder would do
        return str(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    # One encoder for all: json.dumps with options builds a new one on every call.
    text = _ENCODER.encode(value)
    if not text.isascii():  # a flag CPython keeps: free for ASCII text
        text.encode()  # raises UnicodeEncodeError (a ValueError) on a lone surrogate
    return text


def utf8_size(text: str) -> int:
    """``text``'s size in UTF-8 bytes, without encoding it when it is ASCII (a flag
    CPython keeps)."""
    return len(text) if text.isascii() else len(text.encode())


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a control character or a lone surrogate, as no name, id or step
    name may (a NUL ends SQLite's ``LIKE`` pattern early, and PostgreSQL's text cannot hold one)."""
    return _CONTROL.search(text) is not None


def storable_text(text: str) -> str:
    """``text`` as a name or message taken from an exception is stored, never refused: one
    over ``STORED_TEXT_MAX_CHARS`` cut short and saying how much was left out, and each lone
    surrogate and each NUL replaced by ``?``. No UTF-8 holds a lone surrogate, and
    PostgreSQL's text holds no NUL (SQLite's does, but an instance reads the same on either
    store). A text kept so is kept as it is (a failure rebuilt from its stored message)."""
    if len(text) > STORED_TEXT_MAX_CHARS:
        room = STORED_TEXT_MAX_CHARS - len(f"… [{len(text):,} more characters]")
        text = f"{text[:room]}… [{len(text) - room:,} more characters]"
    if "\x00" in text:
        text = text.replace("\x00", "?")
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


STORED_TEXT_MAX_CHARS = 64 * 1024
"""A failure's name and message are kept up to this many characters, then cut: each attempt
keeps its own, and a step's row is written again, with all of them, at every attempt."""


def check_json_size(value: Any, *, what: str) -> str:
    """Serialise ``value`` and refuse it when it is not JSON or is over 1 MiB."""
    try:
        text = dump_json(value)
        size = len(text.encode())  # a lone surrogate cannot be UTF-8: not JSON we can keep
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"{what} must be JSON: {exc}") from exc
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"{what} is larger than 1 MiB")
    return text
