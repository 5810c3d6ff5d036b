"""``stepline tokens create``: API tokens stored (hashed) in the database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from stepline.cli.output import report_errors
from stepline.cli.serve import DatabaseOption
from stepline.store.open import DEFAULT_DATABASE, open_store
from stepline.store.sqlite import SqliteStore
from stepline.validation import check_account_id

__all__ = ["app"]

app = typer.Typer(help="Create API tokens for a Stepline server.", no_args_is_help=True)


@app.command(
    "create",
    epilog="Example:\n\n  stepline tokens create --account my-account --read-only",
)
def create_token(
    account: Annotated[str, typer.Option("--account", help="The account the token acts for.")],
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Reads only; every write is refused with 403.")
    ] = False,
    name: Annotated[str, typer.Option("--name", help="A label to recognise it by.")] = "",
    database: DatabaseOption = DEFAULT_DATABASE,
) -> None:
    """Create a token and print it once; only its digest is stored."""
    with report_errors(local=True):
        token, made = asyncio.run(_create(database, account, read_only, name))
        typer.echo(token)
        if made is not None:
            # Most likely not the server's database: say so, on stderr, beside the token.
            typer.echo(
                f"note: {made} did not exist and was made to hold this token; a server knows "
                "it only if it serves that database (--database, or STEPLINE_DATABASE)",
                err=True,
            )


async def _create(
    database: str, account: str, read_only: bool, name: str
) -> tuple[str, Path | None]:
    """The token, and the SQLite file made for it if there was none."""
    # Imported here: token issuing goes through the API's auth module (FastAPI), which the
    # commands that only talk HTTP should not load at start-up.
    from stepline.tokens import issue_token

    check_account_id(account)
    store = open_store(database)
    made = store.path if isinstance(store, SqliteStore) and not store.path.exists() else None
    await store.open()
    try:
        return await issue_token(store, account, read_only=read_only, name=name), made
    finally:
        await store.close()
