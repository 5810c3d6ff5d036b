"""Stepline: durable workflows for Python with Cloudflare Workflows' semantics and REST API.

>>> from stepline import WorkflowEntrypoint, NonRetryableError
>>> class Checkout(WorkflowEntrypoint):
...     async def run(self, event, step):
...         @step.do("charge card", config={"retries": {"limit": 3}})
...         async def charge(ctx):
...             return {"charge_id": "ch_1"}
...         return await charge()
"""

from stepline.app import Stepline
from stepline.authoring import StepContext, WorkflowEntrypoint, WorkflowEvent, WorkflowStep
from stepline.client.base import Client, Page, RestartFrom
from stepline.client.handles import InstanceHandle, WorkflowHandle
from stepline.errors import (
    ApiError,
    InstanceAlreadyExists,
    InstanceNotFound,
    NonRetryableDelayError,
    NonRetryableError,
    SteplineError,
    WorkflowNotFound,
    WorkflowTimeoutError,
)

__all__ = [
    "ApiError",
    "Client",
    "InstanceAlreadyExists",
    "InstanceHandle",
    "InstanceNotFound",
    "NonRetryableDelayError",
    "NonRetryableError",
    "Page",
    "RestartFrom",
    "StepContext",
    "Stepline",
    "SteplineError",
    "WorkflowEntrypoint",
    "WorkflowEvent",
    "WorkflowHandle",
    "WorkflowNotFound",
    "WorkflowStep",
    "WorkflowTimeoutError",
]

__version__ = "0.1.0"
