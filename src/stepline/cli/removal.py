"""``instances delete`` and ``instances terminate-all``: removing and stopping instances in bulk.

The functions are registered on the ``instances`` app by :mod:`stepline.cli.instances`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from stepline.cli.arguments import (
    LATEST,
    UnfinishedStatus,
    WorkflowName,
    resolve_instance_id,
)
from stepline.cli.options import (
    DEFAULT_API_URL,
    AccountIdOption,
    ApiUrlOption,
    JsonOption,
    TokenOption,
    connect,
)
from stepline.cli.output import (
    UserError,
    err_console,
    error_line,
    print_json,
    report_errors,
    say,
)
from stepline.client.http import HttpClient, MalformedResponse, ServerUnreachable
from stepline.errors import ApiError

__all__ = ["DELETE_BATCH_LIMIT", "delete_instances", "terminate_all"]

DELETE_BATCH_LIMIT = 100
"""The most ids one batch-delete request may carry (spec §4)."""


def _ids_from_file(filename: str) -> list[str]:
    path = Path(filename)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read --filename {filename}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"--filename {filename} is not JSON: {exc}") from None
    if not isinstance(content, list) or not all(isinstance(i, str) for i in content):
        raise UserError(f"--filename {filename} must hold a JSON array of instance id strings")
    return content


async def _delete_in_batches(
    client: HttpClient, account_id: str, name: str, instance_ids: list[str]
) -> dict[str, Any]:
    if LATEST in instance_ids:
        newest = await resolve_instance_id(client, account_id, name, LATEST)
        instance_ids = [newest if i == LATEST else i for i in instance_ids]
    deleted: list[Any] = []
    errors: list[Any] = []
    for offset in range(0, len(instance_ids), DELETE_BATCH_LIMIT):
        chunk = instance_ids[offset : offset + DELETE_BATCH_LIMIT]
        try:
            result = await client.delete_batch(account_id, name, chunk)
        except (ApiError, ServerUnreachable, MalformedResponse) as exc:
            if offset == 0:
                raise  # nothing was deleted: the error says it all
            # Those of the requests before are gone: said alone, the error left them unsaid,
            # and a second run found them missing. The rest are not sent.
            reason = error_line(exc).plain.removeprefix("error: ")
            errors.extend(
                {"id": i, "message": f"{_fate_unanswered(exc)}, its request failed: {reason}"}
                for i in chunk
            )
            unsent = f"not deleted, not sent once a request before failed: {reason}"
            errors.extend({"id": i, "message": unsent} for i in instance_ids[offset + len(chunk) :])
            break
        deleted.extend(result.get("deleted") or [])
        errors.extend(result.get("errors") or [])
    return {"deleted": deleted, "errors": errors}


def _fate_unanswered(exc: Exception) -> str:
    """What became of the ids of a request that failed with ``exc``. A refusal, or one that
    never reached the server, deleted none; one whose answer was lost (a read timeout, a
    connection closed before the answer, an answer that is no envelope) may have deleted
    them all, and "not deleted" sent a second run after ids it found missing."""
    if isinstance(exc, ApiError):
        return "not deleted"
    if isinstance(exc, ServerUnreachable) and not exc.delivered_maybe:
        return "not deleted"
    return "perhaps deleted, perhaps not"


def delete_instances(
    name: WorkflowName,
    instance_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Instance ids to delete ('latest' for the newest).", show_default=False
        ),
    ] = None,
    filename: Annotated[
        str | None,
        typer.Option("--filename", help="A JSON file holding an array of instance ids."),
    ] = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete instances, running or not; running ones stop without rolling back."""
    with report_errors():
        ids = list(instance_ids or [])
        if filename is not None:
            ids.extend(_ids_from_file(filename))
        if not ids:
            raise UserError("name at least one instance id, or pass --filename")
        connection = connect(api_url, token, account_id)
        result = connection.run(
            lambda client: _delete_in_batches(client, connection.account_id, name, ids)
        )
    errors = result["errors"]
    if as_json:
        print_json(result)
    else:
        gone = [str(item.get("id")) for item in result["deleted"] if isinstance(item, dict)]
        if gone:
            listed = ", ".join(f'"{i}"' for i in gone)
            say(f'🗑️  Deleted workflow instances from "{name}": {listed}')
        if errors:
            console = err_console()
            console.print(
                Text.assemble(
                    ("error: ", "red bold"), f"failed to delete {len(errors)} workflow instance(s):"
                )
            )
            for error in errors:
                entry = error if isinstance(error, dict) else {"message": str(error)}
                code = f" [code: {entry['code']}]" if entry.get("code") is not None else ""
                console.print(Text(f"  - {entry.get('id', '?')}: {entry.get('message', '')}{code}"))
    if errors:
        raise typer.Exit(1)


def terminate_all(
    name: WorkflowName,
    status: Annotated[
        UnfinishedStatus | None,
        typer.Option(help="Only instances with this status (default: every unfinished one)."),
    ] = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a background job that terminates every unfinished instance of a workflow."""
    with report_errors():
        connection = connect(api_url, token, account_id)
        result = connection.run(
            lambda client: client.terminate_all(
                connection.account_id, name, status=status.value if status else None
            )
        )
    if as_json:
        print_json(result)
        return
    which = f' with status "{status.value}"' if status else ""
    if result.get("status") == "ok":
        message = (
            f'🥷 A job to terminate instances from Workflow "{name}"{which} has been started. '
            "It might take a few minutes to complete."
        )
    else:
        message = (
            f'🥷 A job to terminate instances from Workflow "{name}" is already running. '
            "Wait for it to finish before starting another."
        )
    say(message)
