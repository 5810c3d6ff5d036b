"""Arguments, choices and look-ups that several commands share."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from stepline.cli.output import UserError
from stepline.client.http import HttpClient

__all__ = [
    "LATEST",
    "InstanceId",
    "InstanceStatus",
    "StepType",
    "UnfinishedStatus",
    "WorkflowName",
    "parse_json_argument",
    "resolve_instance_id",
]

LATEST = "latest"

WorkflowName = Annotated[str, typer.Argument(help="The workflow's name.", show_default=False)]
InstanceId = Annotated[
    str, typer.Argument(help="Instance id, or 'latest' for the newest.", show_default=False)
]


class InstanceStatus(StrEnum):
    queued = "queued"
    running = "running"
    paused = "paused"
    errored = "errored"
    terminated = "terminated"
    complete = "complete"
    waiting = "waiting"
    waitingForPause = "waitingForPause"
    rollingBack = "rollingBack"


class UnfinishedStatus(StrEnum):
    """The statuses ``terminate-all`` can target: those of instances that can still stop."""

    queued = "queued"
    running = "running"
    paused = "paused"
    waitingForPause = "waitingForPause"
    waiting = "waiting"


class StepType(StrEnum):
    do = "do"
    sleep = "sleep"
    waitForEvent = "waitForEvent"


def parse_json_argument(text: str, *, what: str) -> Any:
    """Parse JSON typed on the command line; a mistake is a one-line user error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} is not valid JSON ({exc.msg} at character {exc.pos})") from None


async def resolve_instance_id(
    client: HttpClient, account_id: str, workflow: str, instance_id: str
) -> str:
    """Return ``instance_id``, or the id of the newest instance when it is ``latest``.

    As wrangler does: the first page of the list, highest ``created_on``.
    """
    if instance_id != LATEST:
        return instance_id
    page = await client.list_instances(account_id, workflow)
    if not page.items:
        raise UserError(f'workflow "{workflow}" has no instances, so there is no latest one')
    newest = max(page.items, key=lambda item: str(item.get("created_on") or ""))
    return str(newest["id"])
