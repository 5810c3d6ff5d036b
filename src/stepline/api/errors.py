"""Every failure leaves the API as a Cloudflare envelope, never as FastAPI's or Starlette's own.

- ``ApiError`` (and subclasses) use the status, code and retry hint of the error table.
- Nothing is left to FastAPI's validation (whose 422 the SDKs would map to
  ``UnprocessableEntityError``, which no Cloudflare endpoint returns): handlers read their
  input themselves and refuse it with 400 10002 (see ``stepline.api.routing``).
- Starlette's routing errors become 404 ``RouteNotFound`` and 405 ``MethodNotAllowed``.
- Anything else is caught by :class:`stepline.api.middleware.UnexpectedErrorMiddleware`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from stepline.api.envelope import error_response
from stepline.errors import (
    ApiError,
    InternalServerError,
    InvalidRequest,
    MethodNotAllowed,
    RouteNotFound,
)

__all__ = ["install_error_handlers"]

logger = logging.getLogger("stepline.api")

_METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.http_status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    error: ApiError
    if exc.status_code == 404:
        error = RouteNotFound(f"no route for {request.method} {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not served on {request.url.path}")
        return error_response(error, headers={"Allow": ", ".join(_allowed_methods(request))})
    elif exc.status_code < 500:
        error = InvalidRequest(str(exc.detail))
    else:
        error = InternalServerError(str(exc.detail))
    return error_response(error)


def _allowed_methods(request: Request) -> list[str]:
    """Every method served on this path; Starlette's own ``Allow`` names only the first route's.

    Each method is tried against the routes through the public ``BaseRoute.matches``, which
    also sees into included routers.
    """
    allowed = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
