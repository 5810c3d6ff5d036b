"""One workflow's instances: list, create, describe, change status, step output, delete.

Spec §1.2 rows 5, 6, 8, 9, 16 and 18. ``latest`` is an ordinary instance id here: wrangler
resolves it on its side by listing first (clients.md §4).
"""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from stepline.api.body import read_json_body
from stepline.api.envelope import list_response, success_response
from stepline.api.pagination import parse_instance_list_query
from stepline.api.payloads import parse_instance_create, parse_status_change
from stepline.api.query import QueryReader
from stepline.api.routing import Routes
from stepline.client.base import Client
from stepline.errors import InvalidRequest
from stepline.validation import STEP_LABEL_MAX, check_instance_id, check_workflow_name

__all__ = ["routes"]

routes = Routes()

# Attempts are numbered from 1; a step may retry up to 10,000 times (spec §4).
MAX_ATTEMPT = 10_001


@routes.get("/{workflow_name}/instances")
async def list_instances(
    request: Request, account_id: str, workflow_name: str, client: Client
) -> Response:
    name = check_workflow_name(workflow_name)
    query = parse_instance_list_query(request.query_params)
    page = await client.list_instances(
        account_id,
        name,
        page=query.page,
        per_page=query.per_page,
        cursor=query.cursor,
        direction=query.direction,
        status=query.status,
        date_start=query.date_start,
        date_end=query.date_end,
    )
    return list_response(page)


@routes.post("/{workflow_name}/instances")
async def create_instance(
    request: Request, account_id: str, workflow_name: str, client: Client
) -> Response:
    name = check_workflow_name(workflow_name)
    body = parse_instance_create(await read_json_body(request))
    result = await client.create_instance(
        account_id,
        name,
        instance_id=body.instance_id,
        params=body.params,
        retention=body.retention,
        trigger_source="api",
    )
    return success_response(result)


@routes.get("/{workflow_name}/instances/{instance_id}")
async def describe_instance(
    request: Request, account_id: str, workflow_name: str, instance_id: str, client: Client
) -> Response:
    name = check_workflow_name(workflow_name)
    checked_id = check_instance_id(instance_id)
    query = QueryReader(request.query_params)
    # The SDKs send the strings "true"/"false" (clients.md §3); anything else is a mistake.
    simple = query.choice("simple", ("true", "false")) == "true"
    order: Literal["asc", "desc"] = (
        "desc" if query.choice("order", ("asc", "desc")) == "desc" else "asc"
    )
    result = await client.describe_instance(
        account_id, name, checked_id, simple=simple, order=order
    )
    return success_response(result)


@routes.delete("/{workflow_name}/instances/{instance_id}")
async def delete_instance(
    account_id: str, workflow_name: str, instance_id: str, client: Client
) -> Response:
    name = check_workflow_name(workflow_name)
    return success_response(
        await client.delete_instance(account_id, name, check_instance_id(instance_id))
    )


@routes.patch("/{workflow_name}/instances/{instance_id}/status")
async def change_status(
    request: Request, account_id: str, workflow_name: str, instance_id: str, client: Client
) -> Response:
    name = check_workflow_name(workflow_name)
    checked_id = check_instance_id(instance_id)
    change = parse_status_change(await read_json_body(request))
    result = await client.change_status(
        account_id,
        name,
        checked_id,
        change.action,
        restart_from=change.restart_from,
        rollback=change.rollback,
    )
    return success_response(result)


@routes.get("/{workflow_name}/instances/{instance_id}/step")
async def step_output(
    request: Request, account_id: str, workflow_name: str, instance_id: str, client: Client
) -> Response:
    name = check_workflow_name(workflow_name)
    checked_id = check_instance_id(instance_id)
    query = QueryReader(request.query_params)
    step_name = query.text("name", max_length=STEP_LABEL_MAX)
    if step_name is None:
        raise InvalidRequest("query parameter name is required (the step name with its -N suffix)")
    step_type = query.choice("type", ("step", "waitForEvent"))
    if step_type is None:
        raise InvalidRequest("query parameter type is required: step or waitForEvent")
    attempt = query.integer("attempt", minimum=1, maximum=MAX_ATTEMPT)
    result = await client.step_output(
        account_id,
        name,
        checked_id,
        step_name=step_name,
        step_type="step" if step_type == "step" else "waitForEvent",
        attempt=attempt,
    )
    return success_response(result)
