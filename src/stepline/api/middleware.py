"""Two ASGI wrappers around the routes: path normalisation and the last-resort 500.

:class:`StripTrailingSlashMiddleware` makes ``GET .../instances/`` (wrangler's ``latest`` lookup)
the same request as ``GET .../instances`` (clients.md Q1) and does the same for every path,
instead of Starlette's redirect, which some clients would not follow with their credentials.

:class:`UnexpectedErrorMiddleware` turns an exception that escaped every handler into a logged
500 10001 envelope. It is a middleware rather than an ``Exception`` handler because Starlette
re-raises after running such a handler.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stepline.api.envelope import error_response
from stepline.errors import InternalServerError

__all__ = ["StripTrailingSlashMiddleware", "UnexpectedErrorMiddleware"]

logger = logging.getLogger("stepline.api")


class StripTrailingSlashMiddleware:
    """Route ``/a/b/`` as ``/a/b``; the root path ``/`` stays as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        raw_path = scope.get("raw_path")
        # The slashes written as slashes: an encoded one (``%2F``) is part of a segment, and
        # ``.../instances/a%2F`` names no instance, rather than instance ``a``.
        written = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else path
        if scope["type"] == "http" and len(written) > 1 and written.endswith("/"):
            extra = len(written) - len(written.rstrip("/"))
            scope = dict(scope)
            scope["path"] = path[:-extra] or "/"
            if isinstance(raw_path, bytes):
                scope["raw_path"] = raw_path[:-extra] or b"/"
        await self.app(scope, receive, send)


class UnexpectedErrorMiddleware:
    """Turn an exception that escaped every handler into a logged 500 envelope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            # The client went away before its body came: nobody to answer, nothing wrong here.
            logger.info("client went away during %s %s", scope.get("method"), scope.get("path"))
        except Exception:
            logger.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if response_started:
                # Half a response is on the wire; the server can only drop the connection.
                raise
            await error_response(InternalServerError())(scope, receive, send)
