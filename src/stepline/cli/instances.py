"""``stepline instances``: look at and steer the instances of a workflow (wrangler's commands).

Wherever an instance id is asked for, ``latest`` means the newest instance of the workflow,
found as wrangler finds it: the first page of the list, highest ``created_on``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal, cast

import typer

from stepline.cli.arguments import (
    InstanceId,
    InstanceStatus,
    StepType,
    WorkflowName,
    parse_json_argument,
    resolve_instance_id,
)
from stepline.cli.batch import create_batch
from stepline.cli.describe import describe_instance
from stepline.cli.options import (
    DEFAULT_API_URL,
    AccountIdOption,
    ApiUrlOption,
    Connection,
    JsonOption,
    TokenOption,
    connect,
)
from stepline.cli.output import (
    FINISHED_STATUSES,
    UserError,
    instances_table,
    out_console,
    print_json,
    report_errors,
    say,
    warn,
)
from stepline.cli.removal import delete_instances, terminate_all
from stepline.client.base import RestartFrom, StatusAction
from stepline.client.http import HttpClient

__all__ = ["app"]

app = typer.Typer(
    help="Manage the instances of a workflow: list, describe, steer, delete, create in bulk.",
    no_args_is_help=True,
)


_CLOCK = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}(:\d{2})?(:\d{2})?(?:$|[Zz+-])")
"""A date-time that stops at the hour, the minute or the second: no fraction of a second."""


def _utc_timestamp(text: str, *, end_of_day: bool, what: str) -> str:
    """A date or date-time as the API wants it: ``YYYY-MM-DDTHH:MM:SS.sssZ`` in UTC.

    A bare date means the start of that day for ``--date-start`` and its last millisecond for
    ``--date-end``, as wrangler does, and so does a time that stops at the hour, the minute or
    the second (as a table prints it): ``--date-end 12:30:05`` takes in what was created at
    12:30:05.400. A time without an offset is taken as UTC, as wrangler takes it.
    """
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            moment = datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text)
            clock = _CLOCK.match(text)
            if end_of_day and clock is not None:
                whole = timedelta(hours=1) if clock[1] is None else timedelta(minutes=1)
                moment += (timedelta(seconds=1) if clock[2] else whole) - timedelta(microseconds=1)
    except ValueError:
        raise UserError(f"{what} {text!r} is not a date (YYYY-MM-DD) or ISO date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    # The year by hand: strftime's %Y leaves out the zeros of one before 1000 on glibc, and
    # the text would neither be ISO nor sort as the time it names.
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _created_on(instance: dict[str, Any]) -> str:
    return str(instance.get("created_on") or "")


@app.command(
    "list",
    epilog=(
        "Examples:\n\n"
        "  stepline instances list checkout --status errored\n\n"
        "  stepline instances list checkout --date-start 2026-01-01 --per-page 100 --page 2"
    ),
)
def list_instances(
    name: WorkflowName,
    status: Annotated[
        InstanceStatus | None, typer.Option(help="Only instances with this status.")
    ] = None,
    reverse: Annotated[
        bool, typer.Option("--reverse", help="Oldest first, from the oldest instance on.")
    ] = False,
    page: Annotated[int, typer.Option(min=1, help="Page number to show.")] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=100, help="Instances per page.")] = 50,
    date_start: Annotated[
        str | None,
        typer.Option(
            help="Only instances created at or after this date or date-time: UTC unless it "
            "has an offset, as wrangler reads it (the table prints local time)."
        ),
    ] = None,
    date_end: Annotated[
        str | None,
        typer.Option(
            help="Only instances created at or before this date or date-time: UTC unless it "
            "has an offset, as wrangler reads it (the table prints local time)."
        ),
    ] = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a workflow's instances, newest first."""
    with report_errors():
        start = (
            _utc_timestamp(date_start, end_of_day=False, what="--date-start")
            if date_start
            else None
        )
        end = _utc_timestamp(date_end, end_of_day=True, what="--date-end") if date_end else None
        if start is not None and end is not None and start > end:  # fixed-width: as times
            # As wrangler refuses it; asked, the server found nothing, and that was all it said.
            raise UserError(f"--date-start ({start}) is after --date-end ({end}): no instance fits")
        connection = connect(api_url, token, account_id)
        result = connection.run(
            lambda client: client.list_instances(
                connection.account_id,
                name,
                page=page,
                per_page=per_page,
                # The oldest page first, not the newest page turned round.
                direction="asc" if reverse else "desc",
                status=status.value if status else None,
                date_start=start,
                date_end=end,
            )
        )
    # Sorted as wrangler sorts, by created_on; a stable sort keeps the server's order among
    # instances created in the same millisecond, as a batch's are.
    instances = sorted(result.items, key=_created_on, reverse=not reverse)
    if as_json:
        print_json(instances)
        return
    if not instances:
        if page > 1:
            warn(f"No instances found on page {page}. Please try a smaller page number.")
        else:
            warn(f'No instances found for workflow "{name}".')
        return
    noun = "instance" if len(instances) == 1 else "instances"
    console = out_console()
    console.print(f"Showing {len(instances)} {noun} from page {page}:")
    console.print(instances_table(instances))


app.command(
    "describe",
    epilog=(
        "Examples:\n\n"
        "  stepline instances describe checkout latest\n\n"
        "  stepline instances describe checkout order-42 --watch --no-step-output"
    ),
)(describe_instance)


@app.command(
    "send-event",
    epilog=(
        "Example:\n\n"
        "  stepline instances send-event checkout order-42 --type approval "
        "--payload '{\"approved\": true}'"
    ),
)
def send_event(
    name: WorkflowName,
    instance_id: InstanceId,
    event_type: Annotated[
        str, typer.Option("--type", help="The event type a wait_for_event waits for.")
    ],
    payload: Annotated[str, typer.Option(help="The event's payload, as JSON.")] = "{}",
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send an event to an instance; it is kept until a matching wait consumes it."""

    async def send(client: HttpClient) -> tuple[str, dict[str, Any]]:
        target = await resolve_instance_id(client, connection.account_id, name, instance_id)
        result = await client.send_event(connection.account_id, name, target, event_type, body)
        return target, result

    with report_errors():
        body = parse_json_argument(payload, what="--payload")
        connection = connect(api_url, token, account_id)
        target, result = connection.run(send)
    if as_json:
        print_json(result)
        return
    shown = "" if payload == "{}" else f' and payload "{payload}"'
    say(
        f'📤 The event with type "{event_type}"{shown} was sent to the instance "{target}" '
        f"from {name}"
    )


def _change_status(
    connection: Connection,
    name: str,
    instance_id: str,
    action: StatusAction,
    *,
    restart_from: RestartFrom | None = None,
    rollback: bool = False,
) -> tuple[str, dict[str, Any]]:
    async def change(client: HttpClient) -> tuple[str, dict[str, Any]]:
        target = await resolve_instance_id(client, connection.account_id, name, instance_id)
        result = await client.change_status(
            connection.account_id,
            name,
            target,
            action,
            restart_from=restart_from,
            rollback=rollback,
        )
        return target, result

    return connection.run(change)


# Worded as wrangler words them.
_DONE = {
    "pause": ("⏸️", "paused"),
    "resume": ("🔄", "resumed"),
    "terminate": ("🥷", "terminated"),
    "restart": ("🥷", "restarted"),
}


def _report_status_change(
    name: str, target: str, action: StatusAction, result: dict[str, Any], as_json: bool
) -> None:
    if as_json:
        print_json(result)
        return
    symbol, verb = _DONE[action]
    status = result.get("status")
    if action in ("pause", "resume") and status in FINISHED_STATUSES:
        # The API answers a pause or resume of a finished instance with success and changes
        # nothing (spec §3.2); "paused successfully" would be untrue.
        say(
            f'{symbol} The instance "{target}" from {name} is already {status}; '
            f"there is nothing to {action}"
        )
        return
    say(f'{symbol} The instance "{target}" from {name} was {verb} successfully')


@app.command("pause", epilog="Example:\n\n  stepline instances pause checkout order-42")
def pause_instance(
    name: WorkflowName,
    instance_id: InstanceId,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause an instance once its running steps finish."""
    with report_errors():
        connection = connect(api_url, token, account_id)
        target, result = _change_status(connection, name, instance_id, "pause")
    _report_status_change(name, target, "pause", result, as_json)


@app.command("resume", epilog="Example:\n\n  stepline instances resume checkout order-42")
def resume_instance(
    name: WorkflowName,
    instance_id: InstanceId,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused instance."""
    with report_errors():
        connection = connect(api_url, token, account_id)
        target, result = _change_status(connection, name, instance_id, "resume")
    _report_status_change(name, target, "resume", result, as_json)


@app.command(
    "terminate",
    epilog="Example:\n\n  stepline instances terminate checkout order-42 --rollback",
)
def terminate_instance(
    name: WorkflowName,
    instance_id: InstanceId,
    rollback: Annotated[
        bool,
        typer.Option(
            "--rollback",
            help="Run the instance's rollback steps first on Cloudflare; a Stepline server "
            "accepts it and has none to run.",
        ),
    ] = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop an instance for good."""
    with report_errors():
        connection = connect(api_url, token, account_id)
        target, result = _change_status(
            connection, name, instance_id, "terminate", rollback=rollback
        )
    _report_status_change(name, target, "terminate", result, as_json)


@app.command(
    "restart",
    epilog=(
        "Examples:\n\n"
        "  stepline instances restart checkout order-42\n\n"
        "  stepline instances restart checkout order-42 --from-step-name 'charge card' "
        "--from-step-count 2"
    ),
)
def restart_instance(
    name: WorkflowName,
    instance_id: InstanceId,
    from_step_name: Annotated[
        str | None, typer.Option(help="Restart from this step, keeping the results before it.")
    ] = None,
    from_step_count: Annotated[
        int | None, typer.Option(min=1, help="Which occurrence of that step name (default 1).")
    ] = None,
    from_step_type: Annotated[
        StepType | None, typer.Option(help="The step's kind (default do).")
    ] = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run an instance again, from the start or from a given step."""
    with report_errors():
        restart_from = None
        if from_step_name is not None:
            step_type = (from_step_type or StepType.do).value
            restart_from = RestartFrom(
                name=from_step_name,
                count=from_step_count or 1,
                type=cast(Literal["do", "sleep", "waitForEvent"], step_type),
            )
        elif from_step_count is not None or from_step_type is not None:
            raise UserError("--from-step-count and --from-step-type need --from-step-name")
        connection = connect(api_url, token, account_id)
        target, result = _change_status(
            connection, name, instance_id, "restart", restart_from=restart_from
        )
    _report_status_change(name, target, "restart", result, as_json)


app.command(
    "delete",
    epilog=(
        "Examples:\n\n"
        "  stepline instances delete checkout order-41 order-42\n\n"
        "  stepline instances delete checkout --filename ids.json"
    ),
)(delete_instances)
app.command(
    "terminate-all",
    epilog="Example:\n\n  stepline instances terminate-all checkout --status waiting",
)(terminate_all)
app.command(
    "create-batch",
    epilog=(
        "Examples:\n\n"
        "  stepline instances create-batch checkout orders.jsonl\n\n"
        "  jq -c '.[]' orders.json | stepline instances create-batch checkout -\n\n"
        "  stepline instances create-batch checkout carts.json --params-only\n\n"
        'Each item is a create body: {"instance_id": ..., "params": ..., '
        '"instance_retention": ...}, all keys optional.'
    ),
)(create_batch)
