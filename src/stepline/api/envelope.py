"""Cloudflare's v4 response envelope, written compactly.

Every answer, success or failure, is ``{"success", "errors", "messages", "result"}``, plus
``result_info`` on lists. ``success`` always agrees with the HTTP status (clients.md Q7):
wrangler trusts only ``success``, the SDKs only the status, so a mismatch fools one of them.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from stepline.client.base import JSON, Page
from stepline.errors import ApiError

__all__ = ["CompactJSONResponse", "error_response", "list_response", "success_response"]


class CompactJSONResponse(Response):
    """JSON without spaces, non-ASCII kept as UTF-8, and NaN refused (it is not JSON)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")


def success_response(
    result: JSON, *, result_info: dict[str, JSON] | None = None, status_code: int = 200
) -> CompactJSONResponse:
    body: dict[str, JSON] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return CompactJSONResponse(body, status_code=status_code)


def list_response(page: Page) -> CompactJSONResponse:
    return success_response(page.items, result_info=page.result_info())


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> CompactJSONResponse:
    """The failure envelope for ``error``, with the status and retry hint from the error table.

    ``x-should-retry: false`` stops the SDKs from resending a conflict three times
    (clients.md Q9); a ``None`` hint leaves the decision to the SDK's status rules.
    """
    body = {
        "success": False,
        "errors": [{"code": error.code, "message": error.message}],
        # The key in errors[] is Cloudflare's; the sentence for people goes in messages[],
        # which wrangler prints after the error.
        "messages": [{"code": error.code, "message": error.detail}] if error.detail else [],
        "result": None,
    }
    response_headers = dict(headers or {})
    if error.should_retry is not None:
        response_headers["x-should-retry"] = "true" if error.should_retry else "false"
    return CompactJSONResponse(body, status_code=error.http_status, headers=response_headers)
