"""What a workflow class is, and what its ``run`` receives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from stepline.authoring.step import WorkflowStep

__all__ = ["WorkflowEntrypoint", "WorkflowEvent"]


@dataclass(frozen=True, slots=True)
class WorkflowEvent(Mapping[str, Any]):
    """The event an instance was created with. It is also the read-only mapping, with
    Cloudflare's keys, that Cloudflare's Python SDK gives ``run`` (a dict there):
    ``event["payload"]``, ``event.get("instanceId")``, ``event["workflowName"]``.
    ``schedule`` is ``{"cron", "scheduledTime"}`` for an instance a cron schedule created."""

    payload: Any
    timestamp: datetime
    instance_id: str
    workflow_name: str
    schedule: dict[str, Any] | None = None

    def __getitem__(self, key: str) -> Any:
        return {
            "payload": self.payload,
            "timestamp": self.timestamp,
            "instanceId": self.instance_id,
            "workflowName": self.workflow_name,
            "schedule": self.schedule,
        }[key]

    def __iter__(self) -> Iterator[str]:
        return iter(_EVENT_KEYS)

    def __len__(self) -> int:
        return len(_EVENT_KEYS)


_EVENT_KEYS = ("payload", "timestamp", "instanceId", "workflowName", "schedule")


class WorkflowEntrypoint(ABC):
    """Subclass this and write ``run``; every durable piece of work goes in a step.

    >>> class Greet(WorkflowEntrypoint):
    ...     async def run(self, event, step):
    ...         @step.do("say hello")
    ...         async def hello():
    ...             return f"hello {event.payload['name']}"
    ...         return await hello()
    """

    preserve_non_retryable_error_message: ClassVar[bool] = False
    """Cloudflare's compatibility flag of the same name: when an uncaught NonRetryableError
    fails the instance, keep its name and message instead of the generic WorkflowFatalError."""

    def __init__(self, env: Any = None) -> None:
        self.env = env

    @abstractmethod
    async def run(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        """The workflow's body. Its return value (JSON) becomes the instance's output."""
