"""HttpClient against the fake API (in process, over ASGI) and against scripted transports."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from stepline.client.base import RestartFrom
from stepline.client.http import (
    HttpClient,
    MalformedResponse,
    ServerUnreachable,
    UnrecognizedApiError,
    _known_cause,
    api_error_from_response,
    shown_url,
)
from stepline.errors import (
    ApiError,
    CannotTerminate,
    InstanceNotFound,
    InternalServerError,
    InvalidEventType,
    InvalidRequest,
    StoreUnavailable,
    WorkflowNotFound,
)

from .conftest import seed
from .fake_api import ACCOUNT_ID, TOKEN, FakeState, build_app

API_URL = "http://stepline.test/client/v4"


@pytest.fixture
def state() -> FakeState:
    fresh = FakeState()
    seed(fresh)
    return fresh


@pytest.fixture
async def client(state: FakeState) -> AsyncIterator[HttpClient]:
    transport = httpx.ASGITransport(app=build_app(state))
    async with HttpClient(API_URL, TOKEN, transport=transport) as http_client:
        yield http_client


def scripted(
    answer: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request]
) -> HttpClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return HttpClient(API_URL, "t", transport=httpx.MockTransport(handler))


async def test_lists_return_pages_filled_from_result_info(
    client: HttpClient, state: FakeState
) -> None:
    page = await client.list_instances(ACCOUNT_ID, "checkout", per_page=2)

    assert [item["id"] for item in page.items] == ["order-3", "order-2"]
    assert (page.page, page.per_page, page.total_count) == (1, 2, 3)
    assert page.extra == {"count": 2}
    assert state.requests[-1].query == {"per_page": "2"}
    assert state.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


async def test_a_cursor_in_result_info_reaches_the_page() -> None:
    seen: list[httpx.Request] = []
    body = {"success": True, "result": [], "result_info": {"cursor": "abc", "per_page": 5}}
    async with scripted(lambda _: httpx.Response(200, json=body), seen) as client:
        page = await client.list_instances("a", "w", cursor="prev", per_page=5)

    assert page.cursor == "abc"
    assert seen[0].url.params["cursor"] == "prev"
    assert seen[0].url.params["direction"] == "desc"


async def test_missing_workflow_raises_its_error_class_with_the_servers_detail(
    client: HttpClient,
) -> None:
    with pytest.raises(WorkflowNotFound) as caught:
        await client.get_workflow(ACCOUNT_ID, "nope")

    assert caught.value.code == 10200
    assert caught.value.detail == 'workflow "nope" does not exist'


async def test_conflict_raises_its_error_class(client: HttpClient) -> None:
    with pytest.raises(CannotTerminate):
        await client.change_status(ACCOUNT_ID, "checkout", "order-1", "terminate")


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (404, 10400, "workflows.api.error.instance.not_found", InstanceNotFound),
        (400, 10002, "workflows.api.error.body", InvalidRequest),
        (400, 10002, "workflow.invalid_event_type", InvalidEventType),
        (503, 10001, "workflows.api.error.internal_server", StoreUnavailable),
        # Cloudflare has been seen answering HTTP 200 with success:false.
        (200, 10001, "workflows.api.error.internal_server", InternalServerError),
    ],
)
def test_error_class_is_chosen_by_code_and_status(
    status: int, code: int, message: str, expected: type[ApiError]
) -> None:
    body = {"success": False, "errors": [{"code": code, "message": message}], "messages": []}
    error = api_error_from_response(status, body)

    assert type(error) is expected


def test_unknown_code_keeps_the_servers_code_message_and_status() -> None:
    body = {"success": False, "errors": [{"code": 971, "message": "please slow down"}]}
    error = api_error_from_response(429, body)

    assert isinstance(error, UnrecognizedApiError)
    assert (error.code, error.message, error.http_status) == (971, "please slow down", 429)


def test_a_known_code_with_another_message_keeps_that_message_in_the_detail() -> None:
    body = {"success": False, "errors": [{"code": 10400, "message": "instance gone"}]}
    error = api_error_from_response(404, body)

    assert isinstance(error, InstanceNotFound)
    assert error.detail == "instance gone"


async def test_success_false_on_http_200_is_an_error() -> None:
    body = {"success": False, "errors": [{"code": 10001, "message": "x"}], "result": None}
    async with scripted(lambda _: httpx.Response(200, json=body), []) as client:
        with pytest.raises(InternalServerError):
            await client.get_workflow("a", "w")


async def test_non_json_answer_is_a_malformed_response() -> None:
    async with scripted(lambda _: httpx.Response(404, text="not json"), []) as client:
        with pytest.raises(MalformedResponse, match="GET /client/v4/accounts/a/workflows/w"):
            await client.get_workflow("a", "w")


async def test_empty_204_counts_as_success() -> None:
    async with scripted(lambda _: httpx.Response(204), []) as client:
        assert await client.change_status("a", "w", "i", "pause") == {}


async def test_unreachable_server_raises_server_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with HttpClient(f"http://127.0.0.1:{port}/client/v4", timeout=5) as client:
        with pytest.raises(ServerUnreachable, match="cannot reach") as refused:
            await client.list_workflows("a")
    assert refused.value.delivered_maybe is False  # no connection: nothing was carried out


async def test_a_password_in_the_api_url_is_not_shown() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api_url = f"http://admin:pa@ss@127.0.0.1:{port}/client/v4"
    async with HttpClient(api_url, timeout=5) as client:
        with pytest.raises(ServerUnreachable) as refused:
            await client.list_workflows("a")
    assert str(refused.value).startswith(f"cannot reach http://admin:***@127.0.0.1:{port}/")
    assert "pa@ss" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@h:1/client/v4", "http://u:***@h:1/client/v4"),
        ("https://u:p/w@h/x?y=1", "https://u:***@h/x?y=1"),  # a "/" in the password
        ("u:pw@h:8787/client/v4", "u:***@h:8787/client/v4"),  # no scheme
        ("http://u@h/client/v4", "http://u@h/client/v4"),  # a user, no password
        ("http://[::1]:8787/client/v4", "http://[::1]:8787/client/v4"),
        ("http://admin:p#ss@h/client/v4", "http://admin:***@h/client/v4"),  # a "#" in it
        ("http://h/x?email=a@b", "http://h/x?email=a@b"),  # an "@" in a query, no ":" before
        ("http://h:80/x?email=a@b", "http://h:***@b"),  # taken for a password: hidden
    ],
)
def test_shown_url(url: str, shown: str) -> None:
    assert shown_url(url) == shown


async def test_an_answer_lost_may_have_been_carried_out() -> None:
    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with scripted(read_timeout, []) as client:
        with pytest.raises(ServerUnreachable, match="did not answer in time") as lost:
            await client.list_workflows("a")
    assert lost.value.delivered_maybe is True


async def test_path_parameters_are_percent_encoded_in_full() -> None:
    seen: list[httpx.Request] = []
    ok = {"success": True, "result": {}}
    async with scripted(lambda _: httpx.Response(200, json=ok), seen) as client:
        await client.describe_instance("a", "w", "*/30 * * * *-1786001400000")

    assert seen[0].url.raw_path == (
        b"/client/v4/accounts/a/workflows/w/instances/%2A%2F30%20%2A%20%2A%20%2A%20%2A-1786001400000"
    )


async def test_request_bodies_match_the_rest_api() -> None:
    seen: list[httpx.Request] = []
    ok = {"success": True, "result": {}}
    async with scripted(lambda _: httpx.Response(200, json=ok), seen) as client:
        await client.change_status(
            "a", "w", "i", "restart", restart_from=RestartFrom("charge", 2, "do")
        )
        await client.change_status("a", "w", "i", "terminate", rollback=True)
        await client.send_event("a", "w", "i", "approval", [1, 2])
        await client.create_instance("a", "w", instance_id="x", params={"k": 1})
        await client.delete_batch("a", "w", ["x", "y"])
        await client.terminate_all("a", "w", status="waiting")

    bodies = [json.loads(r.content) if r.content else None for r in seen]
    assert bodies == [
        {"status": "restart", "from": {"name": "charge", "count": 2, "type": "do"}},
        {"status": "terminate", "rollback": True},
        [1, 2],
        {"instance_id": "x", "params": {"k": 1}},
        {"instances": ["x", "y"]},
        None,
    ]
    assert [r.method for r in seen] == ["PATCH", "PATCH", "POST", "POST", "POST", "PUT"]
    assert seen[2].url.path.endswith("/instances/i/events/approval")
    assert seen[5].url.params["status"] == "waiting"
    assert "content-type" not in seen[5].headers


async def test_batch_create_returns_only_what_was_created(
    client: HttpClient, state: FakeState
) -> None:
    created = await client.create_batch(
        ACCOUNT_ID, "checkout", [{"instance_id": "order-1"}, {"instance_id": "order-9"}]
    )

    assert [item["id"] for item in created] == ["order-9"]
    assert state.requests[-1].body == [{"instance_id": "order-1"}, {"instance_id": "order-9"}]


def test_a_transport_error_whose_causes_loop_is_said_as_it_is() -> None:
    # The look for a known cause followed __context__ round the loop for ever.
    outer, inner = httpx.ConnectError("boom"), OSError("down")
    outer.__context__, inner.__context__ = inner, outer

    assert _known_cause(outer) is None
