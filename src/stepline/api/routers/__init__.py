"""One module per resource, its routes mounted flat on the app by :func:`add_routes`.

The resource modules declare paths relative to ``/accounts/{account_id}/workflows`` (account
discovery: relative to the API's root); :func:`add_routes` adds each route to the app with its
full path, as a plain Starlette route (see :mod:`stepline.api.routing`). Nested routers
would be matched through extra layers on every request.

Order matters where a literal segment and a parameter compete: ``/instances/terminate`` and
``/instances/batch`` are registered before ``/instances/{instance_id}``.
"""

from __future__ import annotations

from fastapi import FastAPI

from stepline.api.routers import accounts, bulk, events, instances, versions, workflows
from stepline.api.routing import Routes, serve_route

__all__ = ["add_routes"]

_WORKFLOWS = "/accounts/{account_id}/workflows"


def add_routes(app: FastAPI, prefix: str) -> None:
    """Add every API route to ``app`` under ``prefix`` (``/client/v4``)."""
    _add(app, accounts.routes, prefix)
    for module in (workflows, versions, bulk, instances, events):
        _add(app, module.routes, prefix + _WORKFLOWS)


def _add(app: FastAPI, routes: Routes, prefix: str) -> None:
    for declared in routes.declared:
        app.router.routes.append(serve_route(prefix + declared.path, declared))
