"""Send an event to an instance (spec §1.2 row 10).

The body is the payload, any JSON value up to 1 MiB. An empty body is the payload ``null``:
wrangler always sends a body (``{}`` by default), and a body-less POST most plausibly means
"an event with no data" rather than a mistake worth refusing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from stepline.api.body import read_json_body
from stepline.api.envelope import success_response
from stepline.api.payloads import parse_event_payload
from stepline.api.routing import Routes
from stepline.client.base import Client
from stepline.validation import check_event_type, check_instance_id, check_workflow_name

__all__ = ["routes"]

routes = Routes()


@routes.post("/{workflow_name}/instances/{instance_id}/events/{event_type}")
async def send_event(
    request: Request,
    account_id: str,
    workflow_name: str,
    instance_id: str,
    event_type: str,
    client: Client,
) -> Response:
    name = check_workflow_name(workflow_name)
    checked_id = check_instance_id(instance_id)
    checked_type = check_event_type(event_type)
    payload = parse_event_payload(await read_json_body(request))
    return success_response(
        await client.send_event(account_id, name, checked_id, checked_type, payload)
    )
