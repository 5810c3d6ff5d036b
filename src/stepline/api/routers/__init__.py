"""One router per resource; ``workflows_router`` joins those under ``/accounts/{id}/workflows``.

Order matters where a literal segment and a parameter compete: ``/instances/terminate`` and
``/instances/batch`` are registered before ``/instances/{instance_id}``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from stepline.api.auth import authorized_account
from stepline.api.routers import bulk, events, instances, versions, workflows

__all__ = ["workflows_router"]

workflows_router = APIRouter(dependencies=[Depends(authorized_account)])
for _module in (workflows, versions, bulk, instances, events):
    workflows_router.include_router(_module.router, prefix="/accounts/{account_id}/workflows")
