"""Bad input of every kind is a 400 10002 envelope (or 413 for size), never FastAPI's 422."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stepline.client.base import RestartFrom
from stepline.validation import STEP_SHOWN_NAME_MAX_BYTES as SHOWN

from api_asserts import assert_failure
from conftest import ACCOUNT, BASE
from http_fakes import FakeClient

WF = "my-workflow"
BODY_ERROR = (400, 10002, "workflows.api.error.body")


@pytest.fixture(autouse=True)
def seeded(fake: FakeClient) -> None:
    fake.seed_instance(ACCOUNT, WF, "inst-1", status="running")


BAD_BODIES: list[tuple[str, str, Any]] = [
    # create
    ("POST", f"{BASE}/{WF}/instances", []),
    ("POST", f"{BASE}/{WF}/instances", "just a string"),
    ("POST", f"{BASE}/{WF}/instances", {"instance_id": 5}),
    ("POST", f"{BASE}/{WF}/instances", {"instance_id": "-starts-with-dash"}),
    ("POST", f"{BASE}/{WF}/instances", {"instance_id": "x" * 101}),
    ("POST", f"{BASE}/{WF}/instances", {"instance_id": "abc\n"}),  # `$` matches before it
    ("PUT", f"{BASE}/{WF}%0A", {"class_name": "C", "script_name": "s"}),
    ("POST", f"{BASE}/{WF}/instances", {"instance_id": "cf_" + "a" * 64}),
    ("POST", f"{BASE}/{WF}/instances", {"location_hint": "mars"}),
    ("POST", f"{BASE}/{WF}/instances", {"location_hint": ["enam"]}),
    ("POST", f"{BASE}/{WF}/instances", {"instance_retention": "1 day"}),
    ("POST", f"{BASE}/{WF}/instances", {"instance_retention": {"error_retention": "1 fortnight"}}),
    ("POST", f"{BASE}/{WF}/instances", {"instance_retention": {"success_retention": -1}}),
    ("POST", f"{BASE}/{WF}/instances", {"instance_retention": {"success_retention": True}}),
    ("POST", f"{BASE}/{WF}/instances", {"instance_retention": {"success_retention": 1e300}}),
    (
        "POST",
        f"{BASE}/{WF}/instances",
        {"instance_retention": {"error_retention": "100000000000 years"}},
    ),
    # batch create
    ("POST", f"{BASE}/{WF}/instances/batch", None),
    ("POST", f"{BASE}/{WF}/instances/batch", []),
    ("POST", f"{BASE}/{WF}/instances/batch", {"instance_id": "a"}),
    ("POST", f"{BASE}/{WF}/instances/batch", [{}] * 101),
    ("POST", f"{BASE}/{WF}/instances/batch", [{}, {"instance_id": "bad id"}]),
    ("POST", f"{BASE}/{WF}/instances/batch", [{"instance_retention": {"error_retention": 1e300}}]),
    # status
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", None),
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", {}),
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", {"status": "stop"}),
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", {"status": ["pause"]}),
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", {"status": "terminate", "rollback": "yes"}),
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", {"status": "pause", "rollback": True}),
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", {"status": "pause", "rollback": False}),
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", {"status": "restart", "form": {"name": "a"}}),
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", {"status": "pause", "from": {"name": "a"}}),
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", {"status": "restart", "from": "a"}),
    ("PATCH", f"{BASE}/{WF}/instances/inst-1/status", {"status": "restart", "from": {}}),
    (
        "PATCH",
        f"{BASE}/{WF}/instances/inst-1/status",
        {"status": "restart", "from": {"name": "a", "count": 0}},
    ),
    (
        "PATCH",
        f"{BASE}/{WF}/instances/inst-1/status",
        {"status": "restart", "from": {"name": "a", "count": 1.5}},
    ),
    (
        "PATCH",
        f"{BASE}/{WF}/instances/inst-1/status",
        {"status": "restart", "from": {"name": "a", "type": "step"}},
    ),
    (
        "PATCH",
        f"{BASE}/{WF}/instances/inst-1/status",
        {"status": "restart", "from": {"name": "bad\nname"}},
    ),
    # workflow upsert
    ("PUT", f"{BASE}/{WF}", None),
    ("PUT", f"{BASE}/{WF}", {"class_name": "C"}),
    (
        "PUT",
        f"{BASE}/{WF}",
        {"class_name": "C", "script_name": "s", "default_retention": {"success_retention": 1e300}},
    ),
    ("PUT", f"{BASE}/{WF}", {"class_name": "", "script_name": "s"}),
    ("PUT", f"{BASE}/{WF}", {"class_name": "C", "script_name": "s", "limits": {"steps": 0}}),
    ("PUT", f"{BASE}/{WF}", {"class_name": "C", "script_name": "s", "limits": {"steps": 25001}}),
    ("PUT", f"{BASE}/{WF}", {"class_name": "C", "script_name": "s", "limits": []}),
    ("PUT", f"{BASE}/{WF}", {"class_name": "C", "script_name": "s", "concurrency": {"limit": 0}}),
    (
        "PUT",
        f"{BASE}/{WF}",
        {"class_name": "C", "script_name": "s", "concurrency": {"limit": 50_001}},
    ),
    (  # past what a database integer holds: it was a 500 from the store
        "PUT",
        f"{BASE}/{WF}",
        {"class_name": "C", "script_name": "s", "concurrency": {"limit": 2**63}},
    ),
    (
        "PUT",
        f"{BASE}/{WF}",
        {"class_name": "C", "script_name": "s", "schedules": [{"cron": "* * * *"}]},
    ),
    ("PUT", f"{BASE}/{WF}", {"class_name": "C", "script_name": "s", "schedules": [{}]}),
    ("PUT", f"{BASE}/{WF}", {"class_name": "C", "script_name": "s", "schedules": {"cron": "*"}}),
    # batch delete / terminate
    ("POST", f"{BASE}/{WF}/instances/batch/delete", None),
    ("POST", f"{BASE}/{WF}/instances/batch/delete", {"instances": []}),
    ("POST", f"{BASE}/{WF}/instances/batch/delete", {"instances": ["ok", "not ok"]}),
    ("POST", f"{BASE}/{WF}/instances/batch/delete", {"instances": ["a"] * 101}),
    ("POST", f"{BASE}/{WF}/instances/batch/delete", ["a"]),
    ("POST", f"{BASE}/{WF}/instances/batch/terminate", {"instances": ["a"]}),
    ("POST", f"{BASE}/{WF}/instances/batch/terminate", [1, 2]),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_BODIES)
async def test_bad_body_is_400_and_reaches_no_client_method(
    http: httpx.AsyncClient, fake: FakeClient, method: str, path: str, body: Any
) -> None:
    calls_before = len(fake.calls)
    response = await http.request(method, path, json=body)
    assert_failure(response, *BODY_ERROR)
    assert len(fake.calls) == calls_before


async def test_a_bad_id_in_a_batch_delete_deletes_nothing(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    await http.post(f"{BASE}/{WF}/instances/batch/delete", json={"instances": ["inst-1", "a b"]})
    assert "inst-1" in fake.instances[(ACCOUNT, WF)]


BAD_QUERIES = [
    f"{BASE}?search=%00",
    f"{BASE}?search=f%00zzzz",
    f"{BASE}?search=a%0Ab",
    f"{BASE}?page=0",
    f"{BASE}?page=abc",
    f"{BASE}?page=1.5",
    f"{BASE}?page=nan",
    f"{BASE}?page=1e400",
    f"{BASE}?per_page=5_0",
    f"{BASE}?per_page=%EF%BC%91%EF%BC%90",  # full-width digits
    f"{BASE}?page=%D9%A1",  # an Arabic-Indic one
    f"{BASE}?per_page=%2B5",
    f"{BASE}?per_page=%205%20",
    f"{BASE}?per_page=101",
    f"{BASE}?search={'x' * 65}",
    f"{BASE}/{WF}/versions?per_page=-1",
    f"{BASE}/{WF}/instances?status=finished",
    f"{BASE}/{WF}/instances?status=unknown",
    f"{BASE}/{WF}/instances?direction=up",
    f"{BASE}/{WF}/instances?date_start=yesterday",
    f"{BASE}/{WF}/instances?date_end=2024-13-01",
    f"{BASE}/{WF}/instances?cursor=abc&page=2",
    f"{BASE}/{WF}/instances/inst-1?simple=yes",
    f"{BASE}/{WF}/instances/inst-1?simple=True",
    f"{BASE}/{WF}/instances/inst-1?order=random",
    f"{BASE}/{WF}/instances/inst-1/step",
    f"{BASE}/{WF}/instances/inst-1/step?name=a",
    f"{BASE}/{WF}/instances/inst-1/step?name=a&type=sleep",
    f"{BASE}/{WF}/instances/inst-1/step?name=a&type=step&attempt=0",
    f"{BASE}/{WF}/instances/inst-1/step?name=a%00b&type=step",
]


@pytest.mark.parametrize("path", BAD_QUERIES)
async def test_bad_query_is_400(http: httpx.AsyncClient, fake: FakeClient, path: str) -> None:
    calls_before = len(fake.calls)
    assert_failure(await http.get(path), *BODY_ERROR)
    assert len(fake.calls) == calls_before


LONGEST_FULL_NAMES = pytest.mark.parametrize(
    "name",
    ["x" * SHOWN, "x" * (SHOWN - 2) + "é", "é" * (SHOWN // 2)],
    ids=["ascii", "accented", "all-accented"],
)
"""Full names of as many bytes as the API takes: ASCII, with a 2-byte character, all 2-byte."""


@LONGEST_FULL_NAMES
async def test_step_takes_the_longest_full_step_name_with_its_count(
    http: httpx.AsyncClient, fake: FakeClient, name: str
) -> None:
    """``name`` is the step's name as the describe view gives it, its count included: the
    full name of a step inside others' bodies, with their attempt numbers, may be 2,432
    bytes, 2,442 with ``-123456789``."""
    for count in ("1", "123456789"):
        response = await http.get(
            f"{BASE}/{WF}/instances/inst-1/step", params={"name": f"{name}-{count}", "type": "step"}
        )
        assert response.status_code == 200
        assert fake.last_call().kwargs["step_name"] == f"{name}-{count}"
    too_long = await http.get(
        f"{BASE}/{WF}/instances/inst-1/step",
        params={"name": "x" * (SHOWN + 1) + "-1234567890", "type": "step"},
    )
    assert_failure(too_long, *BODY_ERROR)


@LONGEST_FULL_NAMES
async def test_restart_takes_the_longest_full_step_name(
    http: httpx.AsyncClient, fake: FakeClient, name: str
) -> None:
    """A restart's ``from.name`` is a full name as shown (``process-2#2/fetch``): 2,432
    bytes, not the 256 characters a name given in code may have; a byte more is refused."""
    status = f"{BASE}/{WF}/instances/inst-1/status"
    response = await http.patch(status, json={"status": "restart", "from": {"name": name}})
    assert response.status_code == 200
    assert fake.last_call().kwargs["restart_from"] == RestartFrom(name)
    too_long = await http.patch(status, json={"status": "restart", "from": {"name": name + "x"}})
    assert_failure(too_long, *BODY_ERROR)


async def test_terminate_all_refuses_a_finished_status(http: httpx.AsyncClient) -> None:
    response = await http.put(f"{BASE}/{WF}/instances/terminate?status=complete")
    assert_failure(response, *BODY_ERROR)


async def test_empty_query_values_read_as_absent(http: httpx.AsyncClient, fake: FakeClient) -> None:
    response = await http.get(f"{BASE}/{WF}/instances?status=&cursor=&page=")
    assert response.status_code == 200
    assert fake.last_call().kwargs["status"] is None


@pytest.mark.parametrize("name", ["-dash", "a.b", "x" * 65, "has space"])
async def test_bad_workflow_name_is_400(http: httpx.AsyncClient, name: str) -> None:
    assert_failure(await http.get(f"{BASE}/{name}"), *BODY_ERROR)


async def test_bad_event_type_has_its_own_key(http: httpx.AsyncClient) -> None:
    for event_type in ("with.dot", "x" * 101, "approved%0A"):
        response = await http.post(f"{BASE}/{WF}/instances/inst-1/events/{event_type}", json={})
        assert_failure(response, 400, 10002, "workflow.invalid_event_type")


async def test_event_payload_over_one_mib_is_413(http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{BASE}/{WF}/instances/inst-1/events/big", json={"blob": "x" * (1 << 20)}
    )
    assert_failure(response, 413, 10002, "workflows.api.error.body")
