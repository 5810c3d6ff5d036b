"""Versions of a workflow: list (newest first, as wrangler needs), describe (rows 11-12) and
the static step graph (row 19)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from stepline.api.deps import check_version_id
from stepline.api.envelope import list_response, success_response
from stepline.api.pagination import parse_page_query
from stepline.api.routing import Routes
from stepline.client.base import Client
from stepline.validation import check_workflow_name

__all__ = ["routes"]

routes = Routes()


@routes.get("/{workflow_name}/versions")
async def list_versions(
    request: Request, account_id: str, workflow_name: str, client: Client
) -> Response:
    name = check_workflow_name(workflow_name)
    paging = parse_page_query(request.query_params, default_per_page=50)
    page = await client.list_versions(account_id, name, page=paging.page, per_page=paging.per_page)
    return list_response(page)


@routes.get("/{workflow_name}/versions/{version_id}")
async def get_version(
    account_id: str, workflow_name: str, version_id: str, client: Client
) -> Response:
    name = check_workflow_name(workflow_name)
    return success_response(
        await client.get_version(account_id, name, check_version_id(version_id))
    )


@routes.get("/{workflow_name}/versions/{version_id}/graph")
async def get_version_graph(
    account_id: str, workflow_name: str, version_id: str, client: Client
) -> Response:
    """Cloudflare derives a static graph from a script's JavaScript; Stepline runs Python and
    derives none, so ``graph`` is null (which the SDKs' model allows) and ``has_dag`` false."""
    name = check_workflow_name(workflow_name)
    version = await client.get_version(account_id, name, check_version_id(version_id))
    keys = ("id", "workflow_id", "class_name", "created_on", "modified_on")
    return success_response({**{key: version[key] for key in keys}, "graph": None})
