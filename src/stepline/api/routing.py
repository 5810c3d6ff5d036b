"""How a request reaches a handler: declared on a :class:`Routes`, served as a Starlette route.

A handler names what it needs by its parameters, looked up once when the route is built:

- ``request``: the Starlette ``Request``;
- ``client``: the :class:`~stepline.client.base.Client` behind the API (``app.state``);
- ``principal``: the authenticated caller (:class:`~stepline.api.auth.Principal`);
- any other name: the path parameter of that name, as a string.

Every route authenticates the caller before the handler runs, and a route under
``/accounts/{account_id}`` also checks that the caller owns that account. FastAPI's own
dependency solving and parameter parsing cost about half of the app's time for a small
request (BENCHMARKS.md, the round of `5185e83`), for checks the handlers make themselves.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, compile_path

from stepline.api.auth import Principal, authenticated_principal, authorized_account

__all__ = ["Routes", "serve_route"]

Handler = Callable[..., Awaitable[Response]]

_PROVIDED = frozenset({"request", "client", "principal"})


@dataclass(frozen=True, slots=True)
class Declared:
    path: str
    method: str
    handler: Handler


class Routes:
    """The routes of one resource, in the order they are declared (which is the order they are
    matched in: a literal segment must come before a parameter that would also match it)."""

    def __init__(self) -> None:
        self.declared: list[Declared] = []

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self._add(path, "GET")

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self._add(path, "POST")

    def put(self, path: str) -> Callable[[Handler], Handler]:
        return self._add(path, "PUT")

    def patch(self, path: str) -> Callable[[Handler], Handler]:
        return self._add(path, "PATCH")

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self._add(path, "DELETE")

    def _add(self, path: str, method: str) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            self.declared.append(Declared(path, method, handler))
            return handler

        return declare


def serve_route(path: str, declared: Declared) -> Route:
    """A Starlette route serving ``declared.handler`` at ``path`` (the full path)."""
    handler = declared.handler
    _, _, path_params = compile_path(path)
    wanted = list(inspect.signature(handler).parameters)
    unknown = [name for name in wanted if name not in _PROVIDED and name not in path_params]
    if unknown:
        raise TypeError(f"{handler.__name__} takes {unknown}, which {path} does not provide")
    from_path = tuple(name for name in wanted if name not in _PROVIDED)
    wants_request, wants_client = "request" in wanted, "client" in wanted
    wants_principal = "principal" in wanted
    checks_account = "account_id" in path_params

    async def endpoint(request: Request) -> Response:
        params = request.path_params
        principal: Principal = await (
            authorized_account(request, params["account_id"])
            if checks_account
            else authenticated_principal(request)
        )
        args: dict[str, Any] = {name: params[name] for name in from_path}
        if wants_request:
            args["request"] = request
        if wants_client:
            args["client"] = request.app.state.stepline_client
        if wants_principal:
            args["principal"] = principal
        return await handler(**args)

    route = Route(path, endpoint, methods=[declared.method], name=handler.__name__)
    route.methods = {declared.method}  # Starlette adds HEAD to GET; the API serves no HEAD
    return route
