"""The cloudflare TypeScript SDK (7.3.0, from npm) against a running ``stepline serve``.

``node/ts_sdk.mjs`` makes the calls (create, batch, describe, status edit, events.create, and
two errors) and prints what the SDK returned; this test checks it.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from .node_tools import NODE_DIR, clean_env, ensure_node_clients
from .server import RunningServer

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def ts_results(server: RunningServer) -> dict[str, Any]:
    node = ensure_node_clients()
    env = clean_env()
    env.update(
        STEPLINE_BASE_URL=server.base_url,
        STEPLINE_TOKEN=server.token,
        STEPLINE_ACCOUNT=server.account_id,
    )
    done = subprocess.run(
        [node, str(NODE_DIR / "ts_sdk.mjs")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    results: dict[str, Any] = json.loads(done.stdout)
    return results


def test_create_and_describe(ts_results: dict[str, Any], server: RunningServer) -> None:
    created = ts_results["create"]
    with server.http() as http:
        workflow = http.get("/workflows/ts-quick").json()["result"]
    assert created["id"] == "ts-one"
    assert created["status"] == "queued"
    assert created["workflow_id"] == workflow["id"]
    assert created["trigger_source"] == "api"

    detail = ts_results["get"]
    assert detail["status"] == "complete" and detail["success"] is True
    assert detail["params"] == {"numbers": [10, 20], "label": "ts"}
    assert detail["output"] == {"total": 30, "label": "ts"}
    assert detail["versionId"] == created["version_id"]
    assert detail["trigger"] == {"source": "api"}
    assert [(s["type"], s["name"], s["output"]) for s in detail["steps"]] == [
        ("step", "fetch data-1", {"numbers": [10, 20]}),
        ("step", "add up-1", 30),
    ]


def test_step_output_and_list_iteration(ts_results: dict[str, Any]) -> None:
    assert ts_results["step"] == {
        "status": "complete",
        "error": None,
        "output": {"numbers": [10, 20]},
    }
    listed = ts_results["listed"]
    assert {"ts-one", "ts-bulk-1", "ts-bulk-2", ts_results["bulk"][1]["id"]} == set(listed)
    assert len(listed) == len(set(listed)) == 4
    # Two full pages of 2, then the empty page that stops the iteration.
    assert ts_results["list_requests"] == 3


def test_batch(ts_results: dict[str, Any]) -> None:
    batch = ts_results["bulk"]
    assert [b["id"] for b in batch][:1] == ["ts-bulk-1"]
    assert len(batch) == 2 and batch[1]["id"] != "ts-bulk-1"
    assert {b["status"] for b in batch} == {"queued"}
    assert ts_results["bulk_iterated"] == ["ts-bulk-2"]


def test_status_edit(ts_results: dict[str, Any]) -> None:
    assert ts_results["sleeper_before"] == "waiting"
    assert ts_results["pause"]["status"] == "paused"
    assert ts_results["resume"]["status"] in ("queued", "running", "waiting")
    assert ts_results["terminate"]["status"] == "terminated"
    assert all(ts_results[k]["timestamp"].endswith("Z") for k in ("pause", "resume", "terminate"))
    assert ts_results["sleeper_after"] == "terminated"


def test_events_create(ts_results: dict[str, Any]) -> None:
    event = ts_results["event"]
    assert event["instanceId"] == "ts-approver"
    assert event["timestamp"].endswith("Z")
    approved = ts_results["approved"]
    assert approved["status"] == "complete"
    assert approved["output"] == {"approved_by": {"by": "grace"}}
    wait = approved["steps"][0]
    assert (wait["type"], wait["event_type"], wait["output"]) == (
        "waitForEvent",
        "approved",
        {"by": "grace"},
    )


def test_errors(ts_results: dict[str, Any]) -> None:
    missing = ts_results["not_found"]
    assert (missing["ok"], missing["class"], missing["status"]) == (False, "NotFoundError", 404)
    assert missing["errors"] == [
        {"code": 10400, "message": "workflows.api.error.instance.not_found"}
    ]
    conflict = ts_results["conflict"]
    assert (conflict["class"], conflict["status"]) == ("ConflictError", 409)
    assert conflict["errors"][0]["code"] == 10405
    # x-should-retry: false: the SDK sent the conflicting POST once, not three times (Q9).
    assert ts_results["conflict_requests"] == 1
