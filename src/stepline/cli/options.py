"""Options every command shares: where the API is, who we are, and ``--json``.

Each value comes from its flag, else from ``STEPLINE_*``, else from the ``CLOUDFLARE_*`` variable
that wrangler reads, so a shell set up for wrangler against Stepline works for both tools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import typer

from stepline.cli.output import UserError
from stepline.client.http import DEFAULT_API_URL, HttpClient, shown_url

__all__ = [
    "DEFAULT_API_URL",
    "AccountIdOption",
    "ApiUrlOption",
    "Connection",
    "JsonOption",
    "TokenOption",
    "connect",
]

T = TypeVar("T")

_CONNECTION_PANEL = "Connection"

ApiUrlOption = Annotated[
    str,
    typer.Option(
        "--api-url",
        envvar=["STEPLINE_API_URL", "CLOUDFLARE_API_BASE_URL"],
        show_envvar=True,
        help="Base URL of the API, including the /client/v4 prefix.",
        rich_help_panel=_CONNECTION_PANEL,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=["STEPLINE_API_TOKEN", "CLOUDFLARE_API_TOKEN"],
        show_envvar=True,
        show_default=False,
        help="API token, sent as 'Authorization: Bearer <token>'.",
        rich_help_panel=_CONNECTION_PANEL,
    ),
]
AccountIdOption = Annotated[
    str | None,
    typer.Option(
        "--account-id",
        envvar=["STEPLINE_ACCOUNT_ID", "CLOUDFLARE_ACCOUNT_ID"],
        show_envvar=True,
        show_default=False,
        help="Account that owns the workflows.",
        rich_help_panel=_CONNECTION_PANEL,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the API's result as JSON instead of a human summary."),
]


@dataclass(frozen=True, slots=True)
class Connection:
    """A resolved API address, credentials and account, ready to run client calls."""

    api_url: str
    token: str | None
    account_id: str

    def run(self, operation: Callable[[HttpClient], Awaitable[T]]) -> T:
        """Open a client, await ``operation(client)`` on a fresh event loop, close the client."""

        async def with_client() -> T:
            async with HttpClient(self.api_url, self.token) as client:
                return await operation(client)

        return asyncio.run(with_client())


def connect(api_url: str, token: str | None, account_id: str | None) -> Connection:
    """Check the connection options and bundle them; a missing account is a user error."""
    shown = shown_url(api_url)  # never a password in a message
    if not api_url.startswith(("http://", "https://")):
        raise UserError(f"--api-url must start with http:// or https://, got {shown!r}")
    try:
        address = urlsplit(api_url)
        host, _ = address.hostname, address.port  # .port raises for a bad or too large port
    except ValueError as exc:  # else httpx's InvalidURL or the socket's OverflowError
        # The parser's words may quote a piece of a password (taken for a port): then none.
        reason = f": {exc}" if shown == api_url else ""
        raise UserError(f"--api-url {shown!r} is not a URL{reason}") from None
    if not host:
        raise UserError(f"--api-url {shown!r} names no host")
    if token and not (token.isascii() and token.isprintable()):
        # Not shown: it is a secret. httpx raised UnicodeEncodeError (a traceback), or said
        # that it could not reach the server.
        raise UserError(
            "the API token holds a character that an HTTP header cannot carry (printable "
            "ASCII only): check --token or STEPLINE_API_TOKEN (or CLOUDFLARE_API_TOKEN)"
        )
    if not account_id:
        raise UserError(
            "no account id: pass --account-id or set STEPLINE_ACCOUNT_ID (or CLOUDFLARE_ACCOUNT_ID)"
        )
    return Connection(api_url=api_url, token=token or None, account_id=account_id)
