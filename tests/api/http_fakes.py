"""An in-memory stand-in for the ``Client`` Protocol, for the HTTP layer's own tests only.

It keeps just enough state to answer in Cloudflare's shapes (workflows, versions, instances,
statuses) and records every call, so tests can assert what the API asked for. It is not the
engine: nothing runs, and lifecycle rules are the few the tests need (terminate of a finished
instance conflicts, duplicate ids conflict).
"""

from __future__ import annotations

import base64
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from stepline.client.base import JSON, Page, RestartFrom, StatusAction
from stepline.errors import (
    CannotTerminate,
    InstanceAlreadyExists,
    InstanceNotFound,
    InvalidRequest,
    VersionNotFound,
    WorkflowNotFound,
)

FINISHED = {"complete", "errored", "terminated"}
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class FakeClient:
    workflows: dict[tuple[str, str], dict[str, JSON]] = field(default_factory=dict)
    versions: dict[tuple[str, str], list[dict[str, JSON]]] = field(default_factory=dict)
    instances: dict[tuple[str, str], dict[str, dict[str, JSON]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    fail_with: BaseException | None = None
    _ticks: itertools.count[int] = field(default_factory=itertools.count)

    # -- helpers --------------------------------------------------------------------------------

    def _now(self) -> str:
        moment = _EPOCH + timedelta(milliseconds=next(self._ticks))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append(Call(method, args, kwargs))
        if self.fail_with is not None:
            raise self.fail_with

    def last_call(self) -> Call:
        return self.calls[-1]

    def _workflow(self, account_id: str, name: str) -> dict[str, JSON]:
        try:
            return self.workflows[(account_id, name)]
        except KeyError:
            raise WorkflowNotFound(name) from None

    def _instance(self, account_id: str, name: str, instance_id: str) -> dict[str, JSON]:
        self._workflow(account_id, name)
        try:
            return self.instances[(account_id, name)][instance_id]
        except KeyError:
            raise InstanceNotFound(instance_id) from None

    @staticmethod
    def _slice(rows: list[dict[str, JSON]], page: int, per_page: int) -> Page:
        start = (page - 1) * per_page
        return Page(
            items=rows[start : start + per_page],
            page=page,
            per_page=per_page,
            total_count=len(rows),
        )

    # -- seeding --------------------------------------------------------------------------------

    def seed_workflow(self, account_id: str, name: str) -> dict[str, JSON]:
        now = self._now()
        workflow: dict[str, JSON] = {
            "id": str(uuid.uuid4()),
            "name": name,
            "class_name": "Flow",
            "script_name": "flows",
            "created_on": now,
            "modified_on": now,
            "triggered_on": None,
            "instances": {},
        }
        self.workflows[(account_id, name)] = workflow
        version: dict[str, JSON] = {
            "id": str(uuid.uuid4()),
            "workflow_id": workflow["id"],
            "class_name": "Flow",
            "created_on": now,
            "modified_on": now,
            "has_dag": False,
            "language": "python",
        }
        self.versions[(account_id, name)] = [version]
        self.instances[(account_id, name)] = {}
        return workflow

    def seed_instance(
        self, account_id: str, name: str, instance_id: str, status: str = "queued"
    ) -> dict[str, JSON]:
        workflow = self._workflow(account_id, name)
        now = self._now()
        instance: dict[str, JSON] = {
            "id": instance_id,
            "status": status,
            "version_id": self.versions[(account_id, name)][0]["id"],
            "workflow_id": workflow["id"],
            "created_on": now,
            "modified_on": now,
            "started_on": None,
            "ended_on": None,
            "trigger_source": "api",
            "params": None,
        }
        self.instances[(account_id, name)][instance_id] = instance
        return instance

    # -- workflows ------------------------------------------------------------------------------

    async def list_workflows(
        self, account_id: str, *, page: int = 1, per_page: int = 10, search: str | None = None
    ) -> Page:
        self._record("list_workflows", account_id, page=page, per_page=per_page, search=search)
        rows = [
            workflow
            for (account, name), workflow in sorted(self.workflows.items())
            if account == account_id and (search is None or search in name)
        ]
        return self._slice(rows, page, per_page)

    async def get_workflow(self, account_id: str, name: str) -> dict[str, JSON]:
        self._record("get_workflow", account_id, name)
        return self._workflow(account_id, name)

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
        self._record(
            "put_workflow",
            account_id,
            name,
            class_name=class_name,
            script_name=script_name,
            limits=limits,
            default_retention=default_retention,
            concurrency=concurrency,
            schedules=schedules,
        )
        workflow = self.workflows.get((account_id, name)) or self.seed_workflow(account_id, name)
        workflow.update(class_name=class_name, script_name=script_name)
        version_id = self.versions[(account_id, name)][0]["id"]
        return {**workflow, "version_id": version_id, "is_deleted": 0, "terminator_running": 0}

    async def delete_workflow(self, account_id: str, name: str) -> dict[str, JSON]:
        self._record("delete_workflow", account_id, name)
        self._workflow(account_id, name)
        del self.workflows[(account_id, name)]
        return {"status": "ok", "success": True}

    async def list_versions(
        self, account_id: str, name: str, *, page: int = 1, per_page: int = 50
    ) -> Page:
        self._record("list_versions", account_id, name, page=page, per_page=per_page)
        self._workflow(account_id, name)
        return self._slice(self.versions[(account_id, name)], page, per_page)

    async def get_version(self, account_id: str, name: str, version_id: str) -> dict[str, JSON]:
        self._record("get_version", account_id, name, version_id)
        self._workflow(account_id, name)
        for version in self.versions[(account_id, name)]:
            if version["id"] == version_id:
                return version
        raise VersionNotFound(version_id)

    # -- instances ------------------------------------------------------------------------------

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
    ) -> Page:
        self._record(
            "list_instances",
            account_id,
            name,
            page=page,
            per_page=per_page,
            cursor=cursor,
            direction=direction,
            status=status,
            date_start=date_start,
            date_end=date_end,
        )
        self._workflow(account_id, name)
        rows = [
            row
            for row in self.instances[(account_id, name)].values()
            if (status is None or row["status"] == status)
            and (date_start is None or row["created_on"] >= date_start)
            and (date_end is None or row["created_on"] <= date_end)
        ]
        rows.sort(key=lambda row: str(row["created_on"]), reverse=direction == "desc")
        summaries = [{k: v for k, v in row.items() if k != "params"} for row in rows]
        if page is not None:
            return self._slice(summaries, page, per_page)
        try:
            offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        except ValueError:
            raise InvalidRequest(f"cursor {cursor!r} is not one this server made") from None
        items = summaries[offset : offset + per_page]
        more = offset + per_page < len(summaries)
        next_cursor = base64.urlsafe_b64encode(str(offset + per_page).encode()).decode()
        return Page(
            items=items,
            page=None,
            per_page=per_page,
            total_count=len(summaries),
            cursor=next_cursor if more else None,
        )

    async def create_instance(
        self,
        account_id: str,
        name: str,
        *,
        instance_id: str | None = None,
        params: JSON = None,
        retention: dict[str, JSON] | None = None,
        trigger_source: str = "api",
    ) -> dict[str, JSON]:
        self._record(
            "create_instance",
            account_id,
            name,
            instance_id=instance_id,
            params=params,
            retention=retention,
            trigger_source=trigger_source,
        )
        self._workflow(account_id, name)
        new_id = instance_id or str(uuid.uuid4())
        if new_id in self.instances[(account_id, name)]:
            raise InstanceAlreadyExists(new_id)
        row = self.seed_instance(account_id, name, new_id)
        row["params"] = params
        return {key: row[key] for key in ("id", "status", "version_id", "workflow_id")}

    async def create_batch(
        self, account_id: str, name: str, items: list[dict[str, JSON]]
    ) -> list[dict[str, JSON]]:
        self._record("create_batch", account_id, name, items)
        self._workflow(account_id, name)
        created = []
        for item in items:
            new_id = item.get("instance_id") or str(uuid.uuid4())
            if new_id in self.instances[(account_id, name)]:
                continue
            row = self.seed_instance(account_id, name, new_id)
            created.append({key: row[key] for key in ("id", "status", "version_id", "workflow_id")})
        return created

    async def describe_instance(
        self,
        account_id: str,
        name: str,
        instance_id: str,
        *,
        simple: bool = False,
        order: Literal["asc", "desc"] = "asc",
    ) -> dict[str, JSON]:
        self._record("describe_instance", account_id, name, instance_id, simple=simple, order=order)
        row = self._instance(account_id, name, instance_id)
        details: dict[str, JSON] = {
            "status": row["status"],
            "params": row["params"],
            "queued": row["created_on"],
            "start": None,
            "end": None,
            "success": None,
            "error": None,
            "output": None,
            "trigger": {"source": row["trigger_source"]},
            "versionId": row["version_id"],
            "step_count": 0,
            "rollback": None,
        }
        if not simple:
            details["steps"] = []
        return details

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
        self._record(
            "change_status",
            account_id,
            name,
            instance_id,
            action,
            restart_from=restart_from,
            rollback=rollback,
        )
        row = self._instance(account_id, name, instance_id)
        if action == "terminate" and row["status"] in FINISHED:
            raise CannotTerminate(instance_id)
        new_status = {
            "pause": "paused",
            "resume": "queued",
            "terminate": "terminated",
            "restart": "queued",
        }[action]
        row["status"] = new_status
        return {"status": new_status, "timestamp": self._now()}

    async def send_event(
        self, account_id: str, name: str, instance_id: str, event_type: str, payload: JSON
    ) -> dict[str, JSON]:
        self._record("send_event", account_id, name, instance_id, event_type, payload)
        self._instance(account_id, name, instance_id)
        return {"instanceId": instance_id, "timestamp": self._now()}

    async def delete_instance(
        self, account_id: str, name: str, instance_id: str
    ) -> dict[str, JSON]:
        self._record("delete_instance", account_id, name, instance_id)
        self._instance(account_id, name, instance_id)
        del self.instances[(account_id, name)][instance_id]
        return {"instanceId": instance_id, "timestamp": self._now()}

    async def delete_batch(
        self, account_id: str, name: str, instance_ids: list[str]
    ) -> dict[str, JSON]:
        self._record("delete_batch", account_id, name, instance_ids)
        self._workflow(account_id, name)
        known = self.instances[(account_id, name)]
        deleted = [{"id": i} for i in instance_ids if i in known]
        errors = [
            {"id": i, "code": 10400, "message": "workflows.api.error.instance.not_found"}
            for i in instance_ids
            if i not in known
        ]
        for instance_id in instance_ids:
            known.pop(instance_id, None)
        return {"deleted": deleted, "errors": errors}

    async def terminate_batch(
        self, account_id: str, name: str, instance_ids: list[str]
    ) -> dict[str, JSON]:
        self._record("terminate_batch", account_id, name, instance_ids)
        self._workflow(account_id, name)
        return {"instancesTerminated": len(instance_ids), "status": "ok"}

    async def terminate_all(
        self, account_id: str, name: str, *, status: str | None = None
    ) -> dict[str, JSON]:
        self._record("terminate_all", account_id, name, status=status)
        self._workflow(account_id, name)
        return {"status": "ok"}

    async def terminate_all_status(self, account_id: str, name: str) -> dict[str, JSON]:
        self._record("terminate_all_status", account_id, name)
        self._workflow(account_id, name)
        return {"status": "not_running"}

    async def step_output(
        self,
        account_id: str,
        name: str,
        instance_id: str,
        *,
        step_name: str,
        step_type: Literal["step", "waitForEvent"],
        attempt: int | None = None,
    ) -> dict[str, JSON]:
        self._record(
            "step_output",
            account_id,
            name,
            instance_id,
            step_name=step_name,
            step_type=step_type,
            attempt=attempt,
        )
        self._instance(account_id, name, instance_id)
        return {"status": "complete", "error": None, "output": {"step": step_name}}
