"""``instances create-batch``: create many instances from JSON Lines or a JSON array.

Input: a file (or ``-`` for stdin) holding either one JSON array or one JSON value per line.
Each item is a create body, ``{"instance_id"?, "params"?, "instance_retention"?}``, exactly
what ``POST .../instances`` takes. A bare params object is *not* guessed at, because a params
object may well have a key called ``params``; ``--params-only`` says that every item is the
params of one instance whose id the server generates.

Items go out 100 to a request (the API's batch limit), a few requests in flight at once. The
server skips ids that already exist and leaves them out of its answer, so "skipped" is what was
sent minus what came back. A 429 is retried with backoff; any other failure stops new requests,
lets those in flight finish, and reports how far the batch got.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stepline.cli.arguments import WorkflowName, parse_json_argument
from stepline.cli.options import (
    DEFAULT_API_URL,
    AccountIdOption,
    ApiUrlOption,
    JsonOption,
    TokenOption,
    connect,
)
from stepline.cli.output import (
    USER_ERRORS,
    UserError,
    err_console,
    error_line,
    print_json,
    report_errors,
    say,
)
from stepline.client.http import HttpClient
from stepline.errors import ApiError, InvalidName
from stepline.validation import check_instance_id

__all__ = ["CREATE_BATCH_LIMIT", "BatchOutcome", "create_batch", "read_create_bodies"]

CREATE_BATCH_LIMIT = 100
"""The most instances one batch-create request may carry (spec §4)."""

CREATE_BODY_KEYS = frozenset({"instance_id", "params", "instance_retention", "location_hint"})

RATE_LIMIT_ATTEMPTS = 5
RATE_LIMIT_BACKOFF_SECONDS = 1.0
"""The first wait after a 429; each further wait doubles."""


def _checked_body(item: Any, where: str, *, params_only: bool) -> dict[str, Any]:
    if params_only:
        return {"params": item}
    if not isinstance(item, dict):
        raise UserError(
            f"{where}: expected a create body object, got {type(item).__name__}; "
            "use --params-only when each item is an instance's params"
        )
    unknown = sorted(set(item) - CREATE_BODY_KEYS)
    if unknown:
        raise UserError(
            f"{where}: {', '.join(map(repr, unknown))} is not a create-body key "
            f"(instance_id, params, instance_retention, location_hint); "
            "use --params-only when each item is an instance's params"
        )
    if "instance_id" in item:
        try:
            check_instance_id(item["instance_id"])
        except InvalidName as exc:
            raise UserError(f"{where}: {exc.detail}") from None
    return item


def read_create_bodies(text: str, *, params_only: bool = False) -> list[dict[str, Any]]:
    """Parse a JSON array or JSON Lines into create bodies, naming the item at fault."""
    if text.lstrip().startswith("["):
        items = parse_json_argument(text, what="the input")
        if not isinstance(items, list):
            raise UserError("the input starts with '[' but is not a JSON array")
        return [
            _checked_body(item, f"item {number}", params_only=params_only)
            for number, item in enumerate(items, start=1)
        ]
    bodies = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            item = parse_json_argument(line, what=f"line {number}")
            bodies.append(_checked_body(item, f"line {number}", params_only=params_only))
    return bodies


@dataclass(slots=True)
class BatchOutcome:
    """What a batch achieved: the instances created, how many were sent, the first failure."""

    total: int
    created: list[list[dict[str, Any]]] = field(default_factory=list)
    sent: int = 0
    failure: BaseException | None = None

    @property
    def instances(self) -> list[dict[str, Any]]:
        return [instance for chunk in self.created for instance in chunk]

    @property
    def skipped(self) -> int:
        return self.sent - len(self.instances)


async def _create_chunk(
    client: HttpClient, account_id: str, name: str, chunk: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    delay = RATE_LIMIT_BACKOFF_SECONDS
    for attempt in range(1, RATE_LIMIT_ATTEMPTS + 1):
        try:
            return await client.create_batch(account_id, name, chunk)
        except ApiError as exc:
            # Only a 429 is safe to resend: it created nothing. After a 5xx some instances
            # without ids might exist already, and resending would make them twice.
            if exc.http_status != 429 or attempt == RATE_LIMIT_ATTEMPTS:
                raise
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable: the last attempt returns or raises")


async def create_in_batches(
    client: HttpClient,
    account_id: str,
    name: str,
    bodies: list[dict[str, Any]],
    *,
    concurrency: int,
    progress: Progress,
) -> BatchOutcome:
    """Send ``bodies`` in chunks of 100 with ``concurrency`` requests in flight."""
    chunks = [
        bodies[offset : offset + CREATE_BATCH_LIMIT]
        for offset in range(0, len(bodies), CREATE_BATCH_LIMIT)
    ]
    outcome = BatchOutcome(total=len(bodies), created=[[] for _ in chunks])
    task = progress.add_task(f"Creating instances of {name}", total=len(bodies))
    pending = list(enumerate(chunks))
    pending.reverse()

    async def worker() -> None:
        while pending and outcome.failure is None:
            index, chunk = pending.pop()
            try:
                outcome.created[index] = await _create_chunk(client, account_id, name, chunk)
            except Exception as exc:  # every failure is reported after in-flight work ends
                if outcome.failure is None:
                    outcome.failure = exc
                return
            outcome.sent += len(chunk)
            progress.advance(task, len(chunk))

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(chunks)))))
    return outcome


def _read_source(source: str) -> str:
    if source == "-":
        stdin = typer.get_text_stream("stdin")
        if stdin.isatty():
            raise UserError("give a FILE, or pipe JSON Lines or a JSON array into stdin")
        return stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{source} is not UTF-8 text: {exc}") from None


def create_batch(
    name: WorkflowName,
    source: Annotated[
        str, typer.Argument(help="JSON Lines or JSON array file; '-' reads stdin.")
    ] = "-",
    params_only: Annotated[
        bool,
        typer.Option("--params-only", help="Each item is one instance's params, not a body."),
    ] = False,
    concurrency: Annotated[
        int, typer.Option(min=1, max=32, help="Requests of 100 instances in flight at once.")
    ] = 4,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create many instances at once; ids that already exist are skipped."""
    with report_errors():
        bodies = read_create_bodies(_read_source(source), params_only=params_only)
        if not bodies:
            raise UserError("the input holds no instances to create")
        connection = connect(api_url, token, account_id)
        stderr = err_console()
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr,
            disable=not stderr.is_terminal,
        )
        with progress:
            outcome = connection.run(
                lambda client: create_in_batches(
                    client,
                    connection.account_id,
                    name,
                    bodies,
                    concurrency=concurrency,
                    progress=progress,
                )
            )
        if as_json:
            print_json(outcome.instances)
        elif outcome.failure is None or outcome.sent:
            # After a failure, only when a request went through: what it did stays told.
            created = len(outcome.instances)
            say(
                f'✅ Created {created} instance{"" if created == 1 else "s"} of "{name}"; '
                f"skipped {outcome.skipped} whose id already exists."
            )
        if outcome.failure is not None:
            if not isinstance(outcome.failure, USER_ERRORS):
                raise outcome.failure
            unsent = outcome.total - outcome.sent
            line = error_line(outcome.failure)
            line.append(f" ({unsent} of {outcome.total} items were not created)")
            stderr.print(line)
            raise typer.Exit(1)
