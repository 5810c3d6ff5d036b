"""Assertions on Cloudflare envelopes shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_envelope(response: httpx.Response) -> dict[str, Any]:
    """Any answer: JSON, the four envelope keys, and ``success`` agreeing with the status."""
    assert response.headers["content-type"] == "application/json", response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body, dict)
    assert {"success", "errors", "messages", "result"} <= body.keys(), body
    assert body["success"] is (response.status_code < 400), (response.status_code, body)
    if body["success"]:
        assert body["errors"] == []
    else:
        assert body["result"] is None
        assert body["errors"] and all(
            isinstance(error["code"], int) and isinstance(error["message"], str)
            for error in body["errors"]
        )
    return body


def assert_failure(response: httpx.Response, status: int, code: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert_envelope(response)
    body = response.json()
    assert body["errors"] == [{"code": code, "message": message}]
    assert body["result"] is None and body["success"] is False
    # A human sentence may follow in messages[], under the same code.
    assert all(m["code"] == code and isinstance(m["message"], str) for m in body["messages"])
