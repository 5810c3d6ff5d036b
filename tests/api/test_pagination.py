"""Paging as each client does it (clients.md §5): the SDKs by page, wrangler by cursor."""

from __future__ import annotations

import httpx
import pytest

from api_asserts import assert_failure
from conftest import ACCOUNT, BASE
from http_fakes import FakeClient

WF = "my-workflow"


@pytest.fixture(autouse=True)
def eight_instances(fake: FakeClient) -> None:
    for number in range(1, 9):
        fake.seed_instance(ACCOUNT, WF, f"seed-{number}")


async def walk_pages(http: httpx.AsyncClient, path: str, per_page: int) -> list[list[str]]:
    """What the SDKs' iterators do: ask page+1 until a page comes back empty."""
    pages = []
    for page in range(1, 100):
        response = await http.get(path, params={"per_page": per_page, "page": page})
        assert response.status_code == 200
        ids = [row.get("id") or row.get("name") for row in response.json()["result"]]
        if not ids:
            return pages
        pages.append(ids)
    raise AssertionError("iteration did not end")


async def test_sdk_iteration_over_instances_ends_with_an_empty_page(
    http: httpx.AsyncClient,
) -> None:
    pages = await walk_pages(http, f"{BASE}/{WF}/instances", per_page=3)
    assert pages == [
        ["seed-8", "seed-7", "seed-6"],
        ["seed-5", "seed-4", "seed-3"],
        ["seed-2", "seed-1"],
    ]


async def test_sdk_iteration_over_workflows_and_versions_ends(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    for number in range(3):
        fake.seed_workflow(ACCOUNT, f"extra-{number}")
    assert sum(map(len, await walk_pages(http, BASE, per_page=2))) == 4
    version_id = fake.versions[(ACCOUNT, WF)][0]["id"]
    assert await walk_pages(http, f"{BASE}/{WF}/versions", per_page=1) == [[version_id]]


async def test_past_the_end_is_an_empty_200(http: httpx.AsyncClient) -> None:
    body = (await http.get(f"{BASE}/{WF}/instances", params={"page": 99})).json()
    assert body["success"] is True and body["result"] == []
    assert body["result_info"]["total_count"] == 8


async def test_wrangler_walks_the_cursor_until_it_is_absent(http: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params = {"per_page": "3"} | ({"cursor": cursor} if cursor else {})
        body = (await http.get(f"{BASE}/{WF}/instances", params=params)).json()
        seen += [row["id"] for row in body["result"]]
        cursor = body["result_info"].get("cursor")
        if not cursor:
            break
    assert seen == [f"seed-{number}" for number in range(8, 0, -1)]


async def test_cursor_is_present_exactly_when_more_rows_exist(http: httpx.AsyncClient) -> None:
    full = (await http.get(f"{BASE}/{WF}/instances", params={"per_page": 8})).json()
    assert "cursor" not in full["result_info"]
    partial = (await http.get(f"{BASE}/{WF}/instances", params={"per_page": 7})).json()
    assert partial["result_info"]["cursor"]


async def test_cursor_with_page_is_refused(http: httpx.AsyncClient) -> None:
    """The SDKs send cursor=X&page=2 when iterating from a cursor; that would loop forever."""
    first = (await http.get(f"{BASE}/{WF}/instances", params={"per_page": 3})).json()
    cursor = first["result_info"]["cursor"]
    response = await http.get(
        f"{BASE}/{WF}/instances", params={"per_page": 3, "cursor": cursor, "page": 2}
    )
    assert_failure(response, 400, 10002, "workflows.api.error.body")


async def test_direction_and_status_reach_the_client(
    http: httpx.AsyncClient, fake: FakeClient
) -> None:
    response = await http.get(
        f"{BASE}/{WF}/instances", params={"direction": "asc", "status": "waitingForPause"}
    )
    assert response.status_code == 200
    assert fake.last_call().kwargs["direction"] == "asc"
    assert fake.last_call().kwargs["status"] == "waitingForPause"


async def test_account_discovery_pages_by_number(http: httpx.AsyncClient) -> None:
    """wrangler continues while page * per_page < total_count, so all three must be there."""
    for path in ("/client/v4/accounts", "/client/v4/memberships"):
        first = (await http.get(path, params={"page": 1})).json()
        info = first["result_info"]
        assert (info["page"], info["per_page"], info["total_count"]) == (1, 20, 1)
        assert info["page"] * info["per_page"] >= info["total_count"]
        second = (await http.get(path, params={"page": 2})).json()
        assert second["result"] == []
