"""Workflows: list, describe, upsert, delete (spec §1.2 rows 1-4)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from stepline.api.body import read_json_body
from stepline.api.envelope import list_response, success_response
from stepline.api.pagination import parse_page_query
from stepline.api.payloads import parse_workflow_put
from stepline.api.query import QueryReader
from stepline.api.routing import Routes
from stepline.client.base import Client
from stepline.validation import check_workflow_name

__all__ = ["routes"]

routes = Routes()


@routes.get("")
async def list_workflows(request: Request, account_id: str, client: Client) -> Response:
    paging = parse_page_query(request.query_params, default_per_page=10)
    search = QueryReader(request.query_params).text("search", max_length=64)
    page = await client.list_workflows(
        account_id, page=paging.page, per_page=paging.per_page, search=search
    )
    return list_response(page)


@routes.get("/{workflow_name}")
async def get_workflow(account_id: str, workflow_name: str, client: Client) -> Response:
    return success_response(
        await client.get_workflow(account_id, check_workflow_name(workflow_name))
    )


@routes.put("/{workflow_name}")
async def put_workflow(
    request: Request, account_id: str, workflow_name: str, client: Client
) -> Response:
    name = check_workflow_name(workflow_name)
    body = parse_workflow_put(await read_json_body(request))
    result = await client.put_workflow(
        account_id,
        name,
        class_name=body.class_name,
        script_name=body.script_name,
        limits=body.limits,
        default_retention=body.default_retention,
        concurrency=body.concurrency,
        schedules=body.schedules,
    )
    return success_response(result)


@routes.delete("/{workflow_name}")
async def delete_workflow(account_id: str, workflow_name: str, client: Client) -> Response:
    # Any body (the Python SDK sends Content-Type: application/json and nothing) is ignored.
    return success_response(
        await client.delete_workflow(account_id, check_workflow_name(workflow_name))
    )
