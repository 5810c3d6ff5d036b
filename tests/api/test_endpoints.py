"""Each of the spec's endpoints 1-18 reaches the matching Client method with parsed arguments."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stepline.client.base import RestartFrom

from api_asserts import assert_envelope, assert_failure
from conftest import ACCOUNT, BASE
from http_fakes import FakeClient

WF = "my-workflow"


@pytest.fixture(autouse=True)
def seeded(fake: FakeClient) -> None:
    fake.seed_instance(ACCOUNT, WF, "inst-1", status="running")


CASES: list[tuple[str, str, Any, str, tuple[Any, ...], dict[str, Any]]] = [
    ("GET", BASE, None, "list_workflows", (ACCOUNT,), {"page": 1, "per_page": 10, "search": None}),
    ("GET", f"{BASE}/{WF}", None, "get_workflow", (ACCOUNT, WF), {}),
    (
        "PUT",
        f"{BASE}/{WF}",
        {
            "class_name": "C",
            "script_name": "s",
            "limits": {"steps": 500},
            "default_retention": {"success_retention": "1 day", "error_retention": 60000},
            "concurrency": {"limit": 5},
            "schedules": [{"cron": "*/5  * * * *"}],
        },
        "put_workflow",
        (ACCOUNT, WF),
        {
            "class_name": "C",
            "script_name": "s",
            "limits": {"steps": 500},
            "default_retention": {"success_retention": 86_400_000, "error_retention": 60000},
            "concurrency": {"limit": 5},
            "schedules": ["*/5 * * * *"],
        },
    ),
    ("DELETE", f"{BASE}/{WF}", None, "delete_workflow", (ACCOUNT, WF), {}),
    (
        "GET",
        f"{BASE}/{WF}/instances",
        None,
        "list_instances",
        (ACCOUNT, WF),
        {
            "page": None,
            "per_page": 50,
            "cursor": None,
            "direction": "desc",
            "status": None,
            "date_start": None,
            "date_end": None,
        },
    ),
    (
        "POST",
        f"{BASE}/{WF}/instances",
        {"instance_id": "new-1", "params": {"a": 1}, "instance_retention": {"error_retention": 5}},
        "create_instance",
        (ACCOUNT, WF),
        {
            "instance_id": "new-1",
            "params": {"a": 1},
            "retention": {"error_retention": 5},
            "trigger_source": "api",
        },
    ),
    (
        "POST",
        f"{BASE}/{WF}/instances/batch",
        [{"instance_id": "b-1", "params": [1]}, {"location_hint": "enam"}],
        "create_batch",
        (ACCOUNT, WF, [{"instance_id": "b-1", "params": [1]}, {}]),
        {},
    ),
    (
        "GET",
        f"{BASE}/{WF}/instances/inst-1",
        None,
        "describe_instance",
        (ACCOUNT, WF, "inst-1"),
        {"simple": False, "order": "asc"},
    ),
    (
        "PATCH",
        f"{BASE}/{WF}/instances/inst-1/status",
        {"status": "pause"},
        "change_status",
        (ACCOUNT, WF, "inst-1", "pause"),
        {"restart_from": None, "rollback": False},
    ),
    (
        "POST",
        f"{BASE}/{WF}/instances/inst-1/events/approval",
        [1, 2, 3],
        "send_event",
        (ACCOUNT, WF, "inst-1", "approval", [1, 2, 3]),
        {},
    ),
    (
        "GET",
        f"{BASE}/{WF}/versions",
        None,
        "list_versions",
        (ACCOUNT, WF),
        {"page": 1, "per_page": 50},
    ),
    (
        "POST",
        f"{BASE}/{WF}/instances/batch/terminate",
        ["inst-1", "inst-2"],
        "terminate_batch",
        (ACCOUNT, WF, ["inst-1", "inst-2"]),
        {},
    ),
    ("GET", f"{BASE}/{WF}/instances/terminate", None, "terminate_all_status", (ACCOUNT, WF), {}),
    (
        "PUT",
        f"{BASE}/{WF}/instances/terminate?status=running",
        None,
        "terminate_all",
        (ACCOUNT, WF),
        {"status": "running"},
    ),
    (
        "DELETE",
        f"{BASE}/{WF}/instances/inst-1",
        None,
        "delete_instance",
        (ACCOUNT, WF, "inst-1"),
        {},
    ),
    (
        "POST",
        f"{BASE}/{WF}/instances/batch/delete",
        {"instances": ["inst-1", "gone"]},
        "delete_batch",
        (ACCOUNT, WF, ["inst-1", "gone"]),
        {},
    ),
    (
        "GET",
        f"{BASE}/{WF}/instances/inst-1/step?name=fetch+data-1&type=step&attempt=2.0",
        None,
        "step_output",
        (ACCOUNT, WF, "inst-1"),
        {"step_name": "fetch data-1", "step_type": "step", "attempt": 2},
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "client_method", "args", "kwargs"),
    CASES,
    ids=[f"{case[0]} {case[3]}" for case in CASES],
)
async def test_endpoint_calls_the_client(
    http: httpx.AsyncClient,
    fake: FakeClient,
    method: str,
    path: str,
    body: Any,
    client_method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    response = await http.request(method, path, json=body)
    assert response.status_code == 200, response.text
    assert_envelope(response)
    call = fake.last_call()
    assert (call.method, call.args, call.kwargs) == (client_method, args, kwargs)


async def test_version_is_fetched_by_id(http: httpx.AsyncClient, fake: FakeClient) -> None:
    version_id = fake.versions[(ACCOUNT, WF)][0]["id"]
    response = await http.get(f"{BASE}/{WF}/versions/{version_id}")
    assert response.json()["result"]["id"] == version_id
    missing = await http.get(f"{BASE}/{WF}/versions/00000000-0000-0000-0000-000000000000")
    assert missing.json()["errors"][0]["code"] == 10300


async def test_describe_simple_and_order(http: httpx.AsyncClient, fake: FakeClient) -> None:
    response = await http.get(f"{BASE}/{WF}/instances/inst-1?simple=true&order=desc")
    assert "steps" not in response.json()["result"]
    assert fake.last_call().kwargs == {"simple": True, "order": "desc"}


async def test_restart_from_a_step_and_terminate_with_rollback(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    status = f"{BASE}/{WF}/instances/inst-1/status"
    body = {"status": "restart", "from": {"name": "fetch data", "count": 2, "type": "do"}}
    response = await http.patch(status, json=body)
    assert response.json()["result"]["status"] == "queued"
    assert fake.last_call().kwargs["restart_from"] == RestartFrom("fetch data", 2, "do")
    await http.patch(status, json={"status": "restart", "from": {"name": "wait"}})
    assert fake.last_call().kwargs["restart_from"] == RestartFrom("wait")
    await http.patch(status, json={"status": "terminate", "rollback": True})
    assert fake.last_call().kwargs == {"restart_from": None, "rollback": True}


async def test_params_are_passed_verbatim_even_as_a_json_string(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    """Q3: a string stays a string; the server does not guess that it holds JSON."""
    await http.post(f"{BASE}/{WF}/instances", json={"params": '{"a": 1}'})
    assert fake.last_call().kwargs["params"] == '{"a": 1}'
    await http.post(f"{BASE}/{WF}/instances", json={"params": None})
    assert fake.last_call().kwargs["params"] is None


async def test_create_without_a_body_means_an_empty_object(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    response = await http.post(f"{BASE}/{WF}/instances")
    assert response.status_code == 200
    assert fake.last_call().kwargs["instance_id"] is None


async def test_event_without_a_body_is_a_null_payload(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    response = await http.post(f"{BASE}/{WF}/instances/inst-1/events/ping")
    assert response.json()["result"]["instanceId"] == "inst-1"
    assert fake.last_call().args[-1] is None


async def test_latest_is_an_ordinary_instance_id(http: httpx.AsyncClient, fake: FakeClient) -> None:
    response = await http.get(f"{BASE}/{WF}/instances/latest")
    assert response.status_code == 404
    assert fake.last_call().args == (ACCOUNT, WF, "latest")


# -- client quirks (clients.md §7) --------------------------------------------------------------


async def test_q1_trailing_slash_and_bare_query_route_to_the_list(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    for path in (f"{BASE}/{WF}/instances/", f"{BASE}/{WF}/instances?"):
        response = await http.get(path)
        assert response.status_code == 200
        assert [row["id"] for row in response.json()["result"]] == ["inst-1"]
        assert fake.last_call().method == "list_instances"


async def test_an_encoded_slash_is_part_of_the_id_not_a_trailing_slash(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    calls_before = len(fake.calls)
    response = await http.get(f"{BASE}/{WF}/instances/inst-1%2F")
    assert_failure(response, 404, 7003, "workflows.api.error.not_found")
    assert len(fake.calls) == calls_before
    response = await http.get(f"{BASE}/{WF}/instances/inst-1/")
    assert response.status_code == 200
    assert fake.last_call().args == (ACCOUNT, WF, "inst-1")


async def test_q4_form_encoded_query_and_float_numbers(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    await http.get(f"{BASE}?page=2.0&per_page=3&search=my+work")
    assert fake.last_call().kwargs == {"page": 2, "per_page": 3, "search": "my work"}
    await http.get(f"{BASE}/{WF}/instances/inst-1/step?name=fetch%20data-1&type=waitForEvent")
    assert fake.last_call().kwargs["step_name"] == "fetch data-1"


async def test_q4_timestamps_are_normalised_to_utc_milliseconds(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    cases = {
        "2024-01-01T00%3A00%3A00Z": "2024-01-01T00:00:00.000Z",
        "2024-01-01T00:00:00.000Z": "2024-01-01T00:00:00.000Z",
        "2024-01-01T02:00:00%2B02:00": "2024-01-01T00:00:00.000Z",
        "2024-01-01T02:00:00+02:00": "2024-01-01T00:00:00.000Z",
        "2024-01-01T00:00:00": "2024-01-01T00:00:00.000Z",
        "2099-12-31T23:59:59.999Z": "2099-12-31T23:59:59.999Z",
    }
    for sent, expected in cases.items():
        response = await http.get(f"{BASE}/{WF}/instances?date_start={sent}&date_end={sent}")
        assert response.status_code == 200, (sent, response.text)
        assert fake.last_call().kwargs["date_start"] == expected
        assert fake.last_call().kwargs["date_end"] == expected


async def test_q5_percent_encoded_names_are_decoded_then_checked(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    fake.seed_instance(ACCOUNT, WF, "with_underscore")
    ok = await http.get(f"{BASE}/{WF}/instances/with%5Funderscore")
    assert ok.status_code == 200
    bad = await http.get(f"{BASE}/{WF}/instances/a%20b")
    assert bad.status_code == 400
    assert_envelope(bad)
    encoded_slash = await http.get(f"{BASE}/{WF}/instances/a%2Fb")
    assert encoded_slash.status_code in (400, 404)
    assert_envelope(encoded_slash)


async def test_q6_body_less_delete_with_json_content_type(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    headers = {"Content-Type": "application/json"}
    response = await http.request("DELETE", f"{BASE}/{WF}/instances/inst-1", headers=headers)
    assert response.status_code == 200
    response = await http.request("DELETE", f"{BASE}/{WF}", headers=headers, content=b"")
    assert response.json()["result"] == {"status": "ok", "success": True}


async def test_q6_terminate_all_without_body_or_content_type(http: httpx.AsyncClient) -> None:
    response = await http.put(f"{BASE}/{WF}/instances/terminate", headers={"Content-Length": "0"})
    assert response.json()["result"] == {"status": "ok"}


async def test_q6_event_body_with_no_content_type(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    await http.post(f"{BASE}/{WF}/instances/inst-1/events/approval", content=b'{"approved":true}')
    assert fake.last_call().args[-1] == {"approved": True}
