"""Reading a request body as strict JSON, whatever ``Content-Type`` says.

Clients disagree on the header (wrangler sends none on some requests, the Python SDK sends
``application/json`` on body-less DELETEs; clients.md Q6), so it is ignored and the bytes decide.
Strict means: UTF-8 JSON as RFC 8259 defines it (no ``NaN``/``Infinity``), no lone surrogates
(they could not be stored as UTF-8), and a bounded nesting depth, so every accepted value can be
serialised again by the engine without surprises.
"""

from __future__ import annotations

import json
import math
import re
from typing import NoReturn

from fastapi import Request

from stepline.client.base import JSON
from stepline.errors import InvalidRequest, PayloadTooLarge
from stepline.validation import MAX_PAYLOAD_BYTES, dump_json

__all__ = [
    "EMPTY",
    "MAX_BATCH_BODY_BYTES",
    "MAX_BODY_BYTES",
    "decode_json",
    "read_json_body",
    "read_raw_body",
]

# A whole request may carry some whitespace and a wrapper around a 1 MiB payload; the payload
# limit itself is checked on the decoded value. Batches carry up to 100 items.
MAX_BODY_BYTES = 8 * MAX_PAYLOAD_BYTES
MAX_BATCH_BODY_BYTES = 32 * MAX_PAYLOAD_BYTES
_MAX_DEPTH = 256


class _Empty:
    """The marker for a request without a body, distinct from a JSON ``null``."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise ValueError(f"the number {literal[:40]} is too large for a JSON number")
    return value


# Only a \uD800-\uDFFF escape can make a lone surrogate: the bytes are strict UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _depth(value: JSON) -> int:
    depth = 0
    level: list[JSON] = [value]
    while level:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            return depth
        depth += 1
        if depth > _MAX_DEPTH:
            return depth
        level = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
        ]
    return depth


def decode_json(raw: bytes) -> JSON:
    """Decode ``raw`` or raise ``InvalidRequest`` saying why. Each walk over the decoded value
    runs only when the bytes could hold what it looks for: the depth walk when they have more
    ``[`` and ``{`` than the depth allowed, the surrogate check when they have a surrogate
    escape. (A batch of 100 small creates needs neither.)"""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the body is not UTF-8: {exc}") from exc
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise InvalidRequest("the body nests too deeply") from exc
    except ValueError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc
    if raw.count(b"[") + raw.count(b"{") > _MAX_DEPTH and _depth(value) > _MAX_DEPTH:
        raise InvalidRequest(f"the body nests deeper than {_MAX_DEPTH} levels")
    if _SURROGATE_ESCAPE.search(raw):
        try:
            dump_json(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest("the body holds a lone UTF-16 surrogate escape") from exc
    return value


async def read_raw_body(request: Request, *, limit: int) -> bytes:
    """The body bytes, refused with 413 as soon as they pass ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_body(request: Request, *, limit: int = MAX_BODY_BYTES) -> JSON | _Empty:
    """The decoded body, or :data:`EMPTY` when the request has no body (or only whitespace)."""
    raw = await read_raw_body(request, limit=limit)
    if not raw.strip():
        return EMPTY
    return decode_json(raw)
