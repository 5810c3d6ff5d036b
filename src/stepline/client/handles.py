"""Friendly handles over any :class:`Client`: ``workflow.create()``, ``instance.pause()``…

They work the same in-process and over HTTP, like Cloudflare's Workflow binding.
"""

from __future__ import annotations

from typing import Any

from stepline.client.base import JSON, Client, RestartFrom
from stepline.errors import InvalidRequest

__all__ = ["InstanceHandle", "WorkflowHandle"]

_BATCH_KEYS = ("id", "params", "retention", "location_hint")
"""What an item of :meth:`WorkflowHandle.create_batch` holds, as the Workflow binding's."""


class WorkflowHandle:
    """One workflow of one account.

    >>> order = await stepline.workflow("checkout").create(id="order-1", params={"sku": "A1"})
    >>> (await order.status())["status"]
    'queued'
    """

    def __init__(self, client: Client, account_id: str, name: str) -> None:
        self.client = client
        self.account_id = account_id
        self.name = name

    async def create(
        self,
        id: str | None = None,
        params: JSON = None,
        retention: dict[str, Any] | None = None,
    ) -> InstanceHandle:
        """Create an instance; an id that exists already raises ``InstanceAlreadyExists``.
        ``retention`` takes ``success_retention`` / ``error_retention`` (ms or "7 days")."""
        created = await self.client.create_instance(
            self.account_id, self.name, instance_id=id, params=params, retention=retention
        )
        return InstanceHandle(self, created["id"])

    async def create_batch(self, items: list[dict[str, Any]]) -> list[InstanceHandle]:
        """Create 1-100 instances from items of the Workflow binding's keys, in snake case:
        ``{"id", "params", "retention", "location_hint"}``. Ids that exist already are skipped
        and left out of the result."""
        bodies = []
        for item in items:
            unknown = (
                set(item) - set(_BATCH_KEYS) if isinstance(item, dict) else {type(item).__name__}
            )
            if unknown:
                raise InvalidRequest(
                    f"a batch item takes {', '.join(_BATCH_KEYS)}; not {', '.join(sorted(unknown))}"
                )
            body: dict[str, Any] = {"params": item.get("params")}
            if item.get("id") is not None:
                body["instance_id"] = item["id"]
            if item.get("retention") is not None:
                body["instance_retention"] = item["retention"]
            if item.get("location_hint") is not None:  # checked over HTTP; a hint, unused
                body["location_hint"] = item["location_hint"]
            bodies.append(body)
        created = await self.client.create_batch(self.account_id, self.name, bodies)
        return [InstanceHandle(self, c["id"]) for c in created]

    async def get(self, id: str) -> InstanceHandle:
        """The instance ``id``; raises ``InstanceNotFound`` when there is none."""
        await self.client.describe_instance(self.account_id, self.name, id, simple=True)
        return InstanceHandle(self, id)


class InstanceHandle:
    """One instance; every method is one call to the client."""

    def __init__(self, workflow: WorkflowHandle, id: str) -> None:
        self.workflow = workflow
        self.id = id

    def __repr__(self) -> str:
        return f"InstanceHandle({self.workflow.name!r}, {self.id!r})"

    async def status(self) -> dict[str, JSON]:
        """``{"status", "error", "output", "steps", ...}`` (the REST describe view)."""
        w = self.workflow
        return await w.client.describe_instance(w.account_id, w.name, self.id)

    async def pause(self) -> str:
        return await self._change("pause")

    async def resume(self) -> str:
        return await self._change("resume")

    async def terminate(self) -> str:
        return await self._change("terminate")

    async def restart(self, from_: str | None = None, *, count: int = 1, type: str = "do") -> str:
        """Run again from the top, or from the ``count``-th step named ``from_`` of ``type``
        (do, sleep or waitForEvent), keeping the results of the steps before it."""
        start = None if from_ is None else RestartFrom(from_, count, type)  # type: ignore[arg-type]
        return await self._change("restart", start)

    async def send_event(self, type: str, payload: JSON = None) -> None:
        w = self.workflow
        await w.client.send_event(w.account_id, w.name, self.id, type, payload)

    async def delete(self) -> None:
        w = self.workflow
        await w.client.delete_instance(w.account_id, w.name, self.id)

    async def _change(self, action: Any, start: RestartFrom | None = None) -> str:
        w = self.workflow
        result = await w.client.change_status(
            w.account_id, w.name, self.id, action, restart_from=start
        )
        return str(result["status"])
