"""What the whole server takes and refuses as a create's body: the JSON edge cases the API
decodes, and the 1 MiB limit on params, which the engine checks for every trigger; and what
it holds of a request's head (request line and headers) before it ends, token or not."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stepline.http_protocol import HEAD_TIMEOUT_S, MAX_HEAD_BYTES
from tests.clients.server import RunningServer

pytestmark = pytest.mark.clients

WORKFLOW = "lim-quick"
MIB = 1 << 20


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.token}"}
    base = f"{server.base_url}/accounts/{server.account_id}/workflows/{WORKFLOW}"
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        yield client


def _refused(answer: httpx.Response, status: int) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"] == [{"code": 10002, "message": "workflows.api.error.body"}]


def _params_of(http: httpx.Client, instance_id: str) -> Any:
    answer = http.get(f"/instances/{instance_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]["params"]


def test_params_over_one_mib_are_413_and_nothing_of_the_batch_is_created(
    http: httpx.Client,
) -> None:
    # Serialised, "x" * (MIB - 2) with its quotes is exactly 1 MiB: the largest allowed.
    _refused(http.post("/instances", json={"instance_id": "big-1", "params": "x" * MIB}), 413)
    batch = [
        {"instance_id": "lim-small-1", "params": {"n": 1}},
        {"instance_id": "lim-big-2", "params": "x" * (MIB - 1)},
        {"instance_id": "lim-small-3"},
    ]
    _refused(http.post("/instances/batch", json=batch), 413)
    for instance_id in ("big-1", "lim-small-1", "lim-big-2", "lim-small-3"):
        assert http.get(f"/instances/{instance_id}").status_code == 404

    answer = http.post("/instances", json={"instance_id": "lim-max", "params": "x" * (MIB - 2)})
    assert answer.status_code == 200, answer.text
    assert _params_of(http, "lim-max") == "x" * (MIB - 2)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"params": {"x": 1e400}}',
        b'[{"params": -1E999}]',
        b'{"params": "\\ud800"}',
        b'[{"params": ["\\uDFFF"]}]',
        b"[" * 300 + b"]" * 300,
    ],
    ids=["huge-number", "huge-negative", "lone-high-surrogate", "lone-low-surrogate", "deep"],
)
def test_json_that_cannot_be_kept_is_400(http: httpx.Client, raw: bytes) -> None:
    path = "/instances/batch" if raw.startswith(b"[") else "/instances"
    _refused(http.post(path, content=raw), 400)


def test_what_json_allows_comes_back_as_sent(http: httpx.Client) -> None:
    nested: Any = "deep"
    for _ in range(200):
        nested = [nested]
    cases = {
        "lim-pair": (b'"\\ud83d\\ude00 \\u00e9"', "\U0001f600 \u00e9"),
        "lim-numbers": (
            b"[1e308, -2.5E-300, 12345678901234567890123, 1e5]",
            [1e308, -2.5e-300, 12345678901234567890123, 100000.0],
        ),
        "lim-brackets": (json.dumps("[[{{" + "[" * 300).encode(), "[[{{" + "[" * 300),
        "lim-nested": (json.dumps(nested).encode(), nested),
    }
    body = (
        b"["
        + b",".join(
            b'{"instance_id": "%s", "params": %s}' % (instance_id.encode(), raw)
            for instance_id, (raw, _) in cases.items()
        )
        + b"]"
    )
    answer = http.post("/instances/batch", content=body)
    assert answer.status_code == 200, answer.text
    assert sorted(item["id"] for item in answer.json()["result"]) == sorted(cases)
    for instance_id, (_, params) in cases.items():
        assert _params_of(http, instance_id) == params


def _answer_of(sock: socket.socket) -> bytes:
    """All the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_head_over_64_kib_is_431_and_its_connection_closed(server: RunningServer) -> None:
    # Unbounded, a header of 200 MB held the event loop for 40 s (the parser copies it whole
    # at each read) and the process's memory grew by as much: no request was answered.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 * MAX_HEAD_BYTES)
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed before the rest was read
        answer = _answer_of(sock)
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431 "), answer[:300]
    envelope = json.loads(body)
    assert envelope["success"] is False and envelope["result"] is None
    assert envelope["errors"] == [{"code": 10002, "message": "workflows.api.error.body"}]
    with httpx.Client(timeout=10) as client:
        # A head under the bound is served as before.
        fine = client.get(f"http://127.0.0.1:{server.port}/healthz", headers={"X-Big": "a" * 8000})
        assert fine.status_code == 200


def test_a_head_left_unfinished_has_its_connection_closed(server: RunningServer) -> None:
    # Each such connection was held forever: a client could use up the server's descriptors.
    with socket.create_connection(("127.0.0.1", server.port), timeout=HEAD_TIMEOUT_S + 10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert _answer_of(sock) == b""
        assert HEAD_TIMEOUT_S - 1 < time.monotonic() - started < HEAD_TIMEOUT_S + 5
