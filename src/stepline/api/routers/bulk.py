"""Operations on many instances at once (spec §1.2 rows 7, 13, 14, 15, 17).

Registered before the ``/instances/{instance_id}`` routes so that ``batch`` and ``terminate``
are read as the literal segments they are.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from stepline.api.body import MAX_BATCH_BODY_BYTES, read_json_body
from stepline.api.envelope import success_response
from stepline.api.payloads import parse_batch_create, parse_batch_delete, parse_batch_terminate
from stepline.api.query import QueryReader
from stepline.api.routing import Routes
from stepline.client.base import Client
from stepline.validation import check_workflow_name

__all__ = ["routes"]

routes = Routes()

# What wrangler's hidden terminate-all accepts: the statuses that can still be terminated.
TERMINATE_ALL_STATUSES = ("queued", "running", "paused", "waitingForPause", "waiting")


@routes.post("/{workflow_name}/instances/batch")
async def create_batch(
    request: Request, account_id: str, workflow_name: str, client: Client
) -> Response:
    """Ids that exist already are skipped and left out of the result (spec §3.6)."""
    name = check_workflow_name(workflow_name)
    items = parse_batch_create(await read_json_body(request, limit=MAX_BATCH_BODY_BYTES))
    result = await client.create_batch(account_id, name, [item.as_batch_item() for item in items])
    return success_response(result)


@routes.post("/{workflow_name}/instances/batch/terminate")
async def terminate_batch(
    request: Request, account_id: str, workflow_name: str, client: Client
) -> Response:
    name = check_workflow_name(workflow_name)
    instance_ids = parse_batch_terminate(await read_json_body(request))
    return success_response(await client.terminate_batch(account_id, name, instance_ids))


@routes.post("/{workflow_name}/instances/batch/delete")
async def delete_batch(
    request: Request, account_id: str, workflow_name: str, client: Client
) -> Response:
    """Every id is checked before anything is deleted; per-id failures come back in ``errors``."""
    name = check_workflow_name(workflow_name)
    instance_ids = parse_batch_delete(await read_json_body(request))
    return success_response(await client.delete_batch(account_id, name, instance_ids))


@routes.get("/{workflow_name}/instances/terminate")
async def terminate_all_status(account_id: str, workflow_name: str, client: Client) -> Response:
    name = check_workflow_name(workflow_name)
    return success_response(await client.terminate_all_status(account_id, name))


@routes.put("/{workflow_name}/instances/terminate")
async def terminate_all(
    request: Request, account_id: str, workflow_name: str, client: Client
) -> Response:
    # wrangler sends no body and no content type here; whatever arrives is ignored.
    name = check_workflow_name(workflow_name)
    status = QueryReader(request.query_params).choice("status", TERMINATE_ALL_STATUSES)
    return success_response(await client.terminate_all(account_id, name, status=status))
