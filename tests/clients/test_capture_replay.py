"""Replay the batch-create and send-event requests recorded from the real clients.

``captures/batch-and-events.json`` holds, verbatim, every such request in
``shared/spec/client-captures`` (Python SDK 5.9.0, TS SDK 7.3.0, wrangler 4.86.0): method, path,
headers and body bytes. Each is sent again to the server with only the account, workflow,
instance (and, for events, the event type the test workflow waits for) substituted, and the
answer is checked against what the clients parse: status, envelope, result shape.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server import TERMINAL, RunningServer, wait_for_status

pytestmark = pytest.mark.clients

HERE = Path(__file__).resolve().parent
VENDORED = HERE / "captures" / "batch-and-events.json"
SHARED = HERE.parents[2] / "shared" / "spec" / "client-captures"
RECORDED_PREFIX = "/client/v4/accounts/0123456789abcdef0123456789abcdef/workflows/my-workflow/"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# Transport details the HTTP client sets for itself; everything else is replayed as recorded.
NOT_REPLAYED = {"host", "content-length", "connection", "accept-encoding", "authorization"}


def recorded() -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = json.loads(VENDORED.read_text())["requests"]
    return requests


def replay(server: RunningServer, record: dict[str, Any], path: str) -> httpx.Response:
    headers = {k: v for k, v in record["headers"].items() if k.lower() not in NOT_REPLAYED}
    headers["Authorization"] = f"Bearer {server.token}"
    url = f"http://127.0.0.1:{server.port}{path}"
    with httpx.Client(timeout=30) as http:
        return http.request(
            record["method"], url, headers=headers, content=record["body_text"].encode()
        )


def our_path(server: RunningServer, record: dict[str, Any], workflow: str, rest: str) -> str:
    assert record["path"].startswith(RECORDED_PREFIX), record["path"]
    return f"/client/v4/accounts/{server.account_id}/workflows/{workflow}/{rest}"


def check_envelope(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["success"] is True
    assert body["errors"] == [] and body["messages"] == []
    return body["result"]


def test_the_vendored_records_match_the_shared_captures() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not beside this checkout")
    for record in recorded():
        source = json.loads((SHARED / record["file"]).read_text())
        requests = source["requests"] if isinstance(source, dict) else source
        original = next(r for r in requests if r["seq"] == record["seq"])
        for key in ("method", "path", "headers", "body_text", "answered"):
            assert original[key] == record[key], (record["label"], key)
    labels = [r["label"] for r in recorded()]
    assert sum("bulk" in label for label in labels) == 2
    assert sum("event" in label for label in labels) == 6


def test_batch_create_replayed(server: RunningServer) -> None:
    batches = [r for r in recorded() if r["path"].endswith("/instances/batch")]
    assert len(batches) == 2
    for record in batches:
        sent = json.loads(record["body_text"])
        answer = replay(server, record, our_path(server, record, "rp-quick", "instances/batch"))
        result = check_envelope(answer)
        expected = record["answered"]["body"]["result"]
        assert isinstance(result, list) and len(result) == len(sent) == len(expected)
        for item, row, seen in zip(sent, result, expected, strict=True):
            assert set(seen) <= set(row), row
            assert row["status"] == "queued"
            if "instance_id" in item:
                assert row["id"] == item["instance_id"]
            else:
                assert re.fullmatch(r"[0-9a-f-]{36}", row["id"]), row
        for item, row in zip(sent, result, strict=True):
            done = wait_for_status(server, "rp-quick", row["id"], TERMINAL)
            assert done["status"] == "complete"
            assert done["params"] == item.get("params")

        # The same batch again: every named id exists, so those are skipped silently.
        again = check_envelope(
            replay(server, record, our_path(server, record, "rp-quick", "instances/batch"))
        )
        assert len(again) == sum("instance_id" not in item for item in sent)


def test_send_event_replayed(server: RunningServer) -> None:
    events = [r for r in recorded() if "/events/" in r["path"]]
    assert len(events) == 6
    with server.http() as http:
        for n in range(len(events)):
            created = http.post(
                "/workflows/rp-approval/instances", json={"instance_id": f"rp-wait-{n}"}
            )
            assert created.status_code == 200, created.text
    for n, record in enumerate(events):
        instance_id = f"rp-wait-{n}"
        wait_for_status(server, "rp-approval", instance_id, ("waiting", "running"))
        path = our_path(server, record, "rp-approval", f"instances/{instance_id}/events/approved")
        result = check_envelope(replay(server, record, path))
        assert set(result) == {"instanceId", "timestamp"}
        assert result["instanceId"] == instance_id
        assert TIMESTAMP.match(result["timestamp"]), result
        done = wait_for_status(server, "rp-approval", instance_id, TERMINAL)
        # The body reached the workflow as the event payload, whatever JSON it was.
        assert done["output"] == {"approved_by": json.loads(record["body_text"])}
