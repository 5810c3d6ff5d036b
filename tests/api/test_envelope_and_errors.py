"""The envelope every answer wears, and how failures of each kind are mapped onto it."""

from __future__ import annotations

import json

import httpx

from stepline.errors import InternalServerError, StoreUnavailable

from api_asserts import assert_failure
from conftest import ACCOUNT, BASE
from http_fakes import FakeClient


async def test_success_envelope_is_compact_json(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{BASE}/my-workflow")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["success"] is True
    assert body["errors"] == [] and body["messages"] == []
    assert body["result"]["name"] == "my-workflow"
    assert "result_info" not in body
    assert response.content == json.dumps(body, separators=(",", ":")).encode()


async def test_list_envelope_carries_result_info(http: httpx.AsyncClient) -> None:
    body = (await http.get(BASE)).json()
    assert body["result_info"] == {
        "count": 1,
        "per_page": 10,
        "total_count": 1,
        "page": 1,
        "total_pages": 1,
    }


async def test_unknown_workflow_is_404_10200(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{BASE}/does-not-exist")
    assert_failure(response, 404, 10200, "workflows.api.error.workflow.not_found")


async def test_unknown_instance_is_404_10400(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{BASE}/my-workflow/instances/nope")
    assert_failure(response, 404, 10400, "workflows.api.error.instance.not_found")


async def test_unknown_route_is_a_404_envelope(http: httpx.AsyncClient) -> None:
    for path in (f"{BASE}/my-workflow/nothing/here", "/client/v4/nothing", "/elsewhere"):
        response = await http.get(path)
        assert_failure(response, 404, 7003, "workflows.api.error.not_found")


async def test_wrong_method_is_a_405_envelope_with_allow(http: httpx.AsyncClient) -> None:
    response = await http.post(f"{BASE}/my-workflow", json={})
    assert_failure(response, 405, 7001, "workflows.api.error.method_not_allowed")
    assert set(response.headers["allow"].split(", ")) >= {"GET", "PUT", "DELETE"}
    assert response.headers["x-should-retry"] == "false"


async def test_conflict_tells_the_sdks_not_to_retry(http: httpx.AsyncClient) -> None:
    """A 409 without x-should-retry: false makes the SDKs send the same POST 3 times (Q9)."""
    first = await http.post(f"{BASE}/my-workflow/instances", json={"instance_id": "dup"})
    assert first.status_code == 200
    again = await http.post(f"{BASE}/my-workflow/instances", json={"instance_id": "dup"})
    assert_failure(again, 409, 10405, "workflows.api.error.instance.already_exists")
    assert again.headers["x-should-retry"] == "false"


async def test_terminate_of_a_finished_instance_is_409_10401(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    fake.seed_instance(ACCOUNT, "my-workflow", "done", status="complete")
    response = await http.patch(
        f"{BASE}/my-workflow/instances/done/status", json={"status": "terminate"}
    )
    assert_failure(response, 409, 10401, "workflows.api.error.instance.cannot_terminate")
    assert response.headers["x-should-retry"] == "false"


async def test_malformed_json_is_400_10002_not_422(http: httpx.AsyncClient) -> None:
    for raw in (
        b"{not json",
        b'{"a": NaN}',
        b"\xff\xfe",
        b'"\\ud800"',
        b'{"params": ["\\uDFFF"]}',
        b'{"params": {"x": 1e400}}',
        b'{"params": -1E999}',
        b"[" * 5000,
        b"[" * 300 + b"]" * 300,
    ):
        response = await http.post(f"{BASE}/my-workflow/instances", content=raw)
        assert_failure(response, 400, 10002, "workflows.api.error.body")


async def test_oversize_body_is_refused_before_it_is_parsed(http: httpx.AsyncClient) -> None:
    raw = b" " * (9 << 20) + b"{}"
    response = await http.post(f"{BASE}/my-workflow/instances/x/events/e", content=raw)
    assert_failure(response, 413, 10002, "workflows.api.error.body")


async def test_unexpected_exception_is_a_500_envelope(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    fake.fail_with = RuntimeError("boom")
    response = await http.get(f"{BASE}/my-workflow")
    assert_failure(response, 500, 10001, "workflows.api.error.internal_server")
    assert "x-should-retry" not in response.headers


async def test_client_side_server_errors_keep_their_status(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    fake.fail_with = StoreUnavailable("database is down")
    response = await http.get(f"{BASE}/my-workflow")
    assert_failure(response, 503, 10001, "workflows.api.error.internal_server")
    fake.fail_with = InternalServerError()
    response = await http.get(f"{BASE}/my-workflow")
    assert_failure(response, 500, 10001, "workflows.api.error.internal_server")


async def test_healthz_is_503_when_the_check_says_unavailable() -> None:
    from tests.api.http_fakes import FakeClient

    from stepline.api import StaticTokenAuthenticator, create_app

    async def down() -> dict[str, object]:
        return {"status": "unavailable", "database": {"reachable": False}}

    app = create_app(FakeClient(), StaticTokenAuthenticator("acc", "t"), health=down)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        answer = await http.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"


async def test_a_client_that_hangs_up_mid_body_is_no_server_error(caplog) -> None:
    """The body never comes (the client went away): nothing to answer, and no traceback."""
    from tests.api.http_fakes import FakeClient

    from stepline.api import StaticTokenAuthenticator, create_app

    app = create_app(FakeClient(), StaticTokenAuthenticator("acc", "t"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PATCH",
        "scheme": "http",
        "path": "/client/v4/accounts/acc/workflows/my-workflow/instances/i-1/status",
        "raw_path": b"/client/v4/accounts/acc/workflows/my-workflow/instances/i-1/status",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", b"Bearer t"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    with caplog.at_level("INFO", logger="stepline.api"):
        await app(scope, receive, send)

    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert not [m for m in sent if m.get("status", 0) >= 500]
