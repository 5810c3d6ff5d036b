"""How a request reaches a handler (``stepline.api.routing``): what a handler is given, and
that nobody reaches one without passing the credential checks first."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from stepline.api.auth import Principal
from stepline.api.routing import Routes, serve_route
from stepline.client.base import Client

from conftest import ACCOUNT, OTHER_TOKEN, TOKEN

PATH = "/probe/accounts/{account_id}/things/{thing}"


@pytest.fixture
def calls(app: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    routes = Routes()

    @routes.get(PATH)
    async def probe(
        request: Request, thing: str, client: Client, principal: Principal, account_id: str
    ) -> Response:
        seen.append({"thing": thing, "account": account_id, "principal": principal})
        assert client is request.app.state.stepline_client
        return JSONResponse({"ok": True})

    [declared] = routes.declared
    app.router.routes.insert(0, serve_route(PATH, declared))
    return seen


async def test_a_handler_gets_path_parameters_client_and_principal(
    anonymous: httpx.AsyncClient, calls: list[dict[str, Any]]
) -> None:
    response = await anonymous.get(
        f"/probe/accounts/{ACCOUNT}/things/a%20b", headers={"Authorization": f"Bearer {TOKEN}"}
    )

    assert response.status_code == 200
    [call] = calls
    assert (call["thing"], call["account"]) == ("a b", ACCOUNT)
    assert call["principal"] == Principal(account_id=ACCOUNT, can_write=True)


@pytest.mark.parametrize(
    ("token", "status"), [(None, 400), ("wrong", 401), (OTHER_TOKEN, 403)], ids=str
)
async def test_no_handler_runs_for_a_caller_who_fails_the_checks(
    anonymous: httpx.AsyncClient, calls: list[dict[str, Any]], token: str | None, status: int
) -> None:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = await anonymous.get(f"/probe/accounts/{ACCOUNT}/things/x", headers=headers)

    assert response.status_code == status
    assert calls == []


async def test_head_is_not_served_on_a_get_route(
    http: httpx.AsyncClient, calls: list[dict[str, Any]]
) -> None:
    response = await http.head(f"/probe/accounts/{ACCOUNT}/things/x")

    assert response.status_code == 405
    assert calls == []


def test_a_handler_asking_for_what_no_request_has_is_refused_at_start() -> None:
    routes = Routes()

    @routes.get("/things/{thing}")
    async def typo(thing: str, clinet: Client) -> Response:
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="clinet"):
        serve_route("/things/{thing}", routes.declared[0])
