"""The one client interface, with two transports: in-process (the engine) and HTTP (REST).

Every method is scoped to an account and returns the ``result`` of the matching Cloudflare
v4 endpoint, JSON-ready (spec §1.2–§1.3), so the REST API is a thin shell over it and the
HTTP transport returns what the server sends. Lists return a :class:`Page`.
Errors are the :mod:`stepline.errors` ``ApiError`` subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["JSON", "Client", "Page", "RestartFrom", "StatusAction"]

JSON = Any
StatusAction = Literal["pause", "resume", "terminate", "restart"]


@dataclass(frozen=True, slots=True)
class RestartFrom:
    """Where a restart begins: the ``count``-th step of ``type`` named ``name``."""

    name: str
    count: int = 1
    type: Literal["do", "sleep", "waitForEvent"] = "do"


@dataclass(slots=True)
class Page:
    """One page of a list, with what ``result_info`` needs."""

    items: list[dict[str, JSON]]
    page: int | None
    per_page: int
    total_count: int
    cursor: str | None = None
    extra: dict[str, JSON] = field(default_factory=dict)

    def result_info(self) -> dict[str, JSON]:
        info: dict[str, JSON] = {
            "count": len(self.items),
            "per_page": self.per_page,
            "total_count": self.total_count,
        }
        if self.page is not None:
            info["page"] = self.page
            info["total_pages"] = max(1, -(-self.total_count // self.per_page))
        if self.cursor:
            info["cursor"] = self.cursor
        return info


class Client(Protocol):
    """What the API and the CLI can ask of Stepline. All methods are coroutines."""

    # -- workflows ---------------------------------------------------------------------------
    async def list_workflows(
        self, account_id: str, *, page: int = 1, per_page: int = 10, search: str | None = None
    ) -> Page: ...

    async def get_workflow(self, account_id: str, name: str) -> dict[str, JSON]: ...

    async def put_workflow(
        self,
        account_id: str,
        name: str,
        *,
        class_name: str,
        script_name: str,
        limits: dict[str, JSON] | None = None,
        default_retention: dict[str, JSON] | None = None,
        concurrency: dict[str, JSON] | None = None,
        schedules: list[str] | None = None,
    ) -> dict[str, JSON]:
        """Create or update; ``schedules`` are cron expressions (None or [] clears them)."""
        ...

    async def delete_workflow(self, account_id: str, name: str) -> dict[str, JSON]: ...

    async def list_versions(
        self, account_id: str, name: str, *, page: int = 1, per_page: int = 50
    ) -> Page: ...

    async def get_version(self, account_id: str, name: str, version_id: str) -> dict[str, JSON]: ...

    # -- instances ---------------------------------------------------------------------------
    async def list_instances(
        self,
        account_id: str,
        name: str,
        *,
        page: int | None = None,
        per_page: int = 50,
        cursor: str | None = None,
        direction: Literal["asc", "desc"] = "desc",
        status: str | None = None,
        date_start: str | None = None,
        date_end: str | None = None,
    ) -> Page: ...

    async def create_instance(
        self,
        account_id: str,
        name: str,
        *,
        instance_id: str | None = None,
        params: JSON = None,
        retention: dict[str, JSON] | None = None,
        trigger_source: str = "api",
    ) -> dict[str, JSON]: ...

    async def create_batch(
        self, account_id: str, name: str, items: list[dict[str, JSON]]
    ) -> list[dict[str, JSON]]:
        """Create up to 100 instances; ids that exist already are skipped and left out."""
        ...

    async def describe_instance(
        self,
        account_id: str,
        name: str,
        instance_id: str,
        *,
        simple: bool = False,
        order: Literal["asc", "desc"] = "asc",
    ) -> dict[str, JSON]: ...

    async def change_status(
        self,
        account_id: str,
        name: str,
        instance_id: str,
        action: StatusAction,
        *,
        restart_from: RestartFrom | None = None,
        rollback: bool = False,
    ) -> dict[str, JSON]:
        """Returns ``{"status": <status after the action>, "timestamp": iso}``."""
        ...

    async def send_event(
        self, account_id: str, name: str, instance_id: str, event_type: str, payload: JSON
    ) -> dict[str, JSON]:
        """Returns ``{"instanceId": id, "timestamp": iso}``."""
        ...

    async def delete_instance(
        self, account_id: str, name: str, instance_id: str
    ) -> dict[str, JSON]: ...

    async def delete_batch(
        self, account_id: str, name: str, instance_ids: list[str]
    ) -> dict[str, JSON]:
        """Returns ``{"deleted": [{"id"}], "errors": [{"id", "code", "message"}]}``."""
        ...

    async def terminate_batch(
        self, account_id: str, name: str, instance_ids: list[str]
    ) -> dict[str, JSON]:
        """Returns ``{"instancesTerminated": n, "status": "ok"}``."""
        ...

    async def terminate_all(
        self, account_id: str, name: str, *, status: str | None = None
    ) -> dict[str, JSON]:
        """Start terminating every matching non-finished instance: ``{"status": "ok"}``."""
        ...

    async def terminate_all_status(self, account_id: str, name: str) -> dict[str, JSON]:
        """``{"status": "running" | "not_running"}``."""
        ...

    async def step_output(
        self,
        account_id: str,
        name: str,
        instance_id: str,
        *,
        step_name: str,
        step_type: Literal["step", "waitForEvent"],
        attempt: int | None = None,
    ) -> dict[str, JSON]: ...
