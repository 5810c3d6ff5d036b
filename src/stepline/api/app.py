"""The app factory: Cloudflare's v4 Workflows API over any :class:`~stepline.client.base.Client`.

Wiring, for ``stepline serve``::

    from stepline.api import ChainAuthenticator, StaticTokenAuthenticator, create_app

    env_auth = StaticTokenAuthenticator.from_env()          # None if the variables are unset
    authenticator = ChainAuthenticator(*filter(None, [env_auth, database_tokens]))
    app = create_app(local_client, authenticator)
    uvicorn.run(app, ...)

Everything is served under ``/client/v4``, which is the base URL the clients are given
(``http://host:port/client/v4``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.responses import Response

from stepline.api.auth import Authenticator
from stepline.api.envelope import CompactJSONResponse
from stepline.api.errors import install_error_handlers
from stepline.api.middleware import StripTrailingSlashMiddleware, UnexpectedErrorMiddleware
from stepline.api.openapi import openapi_document
from stepline.api.routers import add_routes
from stepline.client.base import Client

__all__ = ["API_PREFIX", "HealthCheck", "create_app"]

API_PREFIX = "/client/v4"


async def _serve_openapi() -> Response:
    # Public like Cloudflare's own published schema: it describes the API, not any account.
    return CompactJSONResponse(openapi_document())


HealthCheck = Callable[[], Awaitable[dict[str, object]]]


def create_app(
    client: Client,
    authenticator: Authenticator,
    *,
    account_name: str = "Stepline",
    health: HealthCheck | None = None,
) -> FastAPI:
    """Build the ASGI app.

    ``client`` answers every request (the in-process engine client, or any other ``Client``);
    ``authenticator`` maps credentials to a principal; compose several with
    :class:`~stepline.api.auth.ChainAuthenticator`. ``account_name`` is what account discovery
    (``/accounts``, ``/memberships``) shows as the name of the caller's account.
    ``health`` answers ``GET /healthz`` (no auth): ``{"status": "ok" | "unavailable", ...}``
    with HTTP 200 or 503, for load balancers and orchestrators.
    """
    app = FastAPI(
        title="Stepline",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        default_response_class=CompactJSONResponse,
    )
    app.state.stepline_client = client
    app.state.stepline_authenticator = authenticator
    app.state.stepline_account_name = account_name
    install_error_handlers(app)
    app.add_api_route(f"{API_PREFIX}/openapi.json", _serve_openapi, methods=["GET"])
    if health is not None:
        check = health

        async def healthz() -> Response:
            report = await check()
            status = 200 if report.get("status") == "ok" else 503
            return CompactJSONResponse(report, status_code=status)

        app.add_api_route("/healthz", healthz, methods=["GET"])
    add_routes(app, API_PREFIX)
    # Added last, so outermost: a crash anywhere below still becomes an envelope.
    app.add_middleware(StripTrailingSlashMiddleware)
    app.add_middleware(UnexpectedErrorMiddleware)
    return app
