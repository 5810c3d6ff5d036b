"""The in-process transport of :class:`~stepline.client.base.Client`: straight to the engine."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any, Literal

from stepline.client import views
from stepline.client.base import JSON, Page, RestartFrom, StatusAction
from stepline.durations import parse_duration_ms
from stepline.engine.control import Control, NewInstance, nth_step_shown_as
from stepline.engine.terminators import TERMINABLE_STATUSES
from stepline.errors import InstanceNotFound, InvalidRequest, VersionNotFound
from stepline.store.port import InstanceFilter, WorkflowSettings
from stepline.store.records import LISTABLE_STATUSES, InstanceRecord, StepRecord, WorkflowRecord
from stepline.validation import check_instance_id, check_workflow_name

__all__ = ["LocalClient"]

MAX_BATCH = 100


class LocalClient:
    """Serves the Client protocol from this process's engine."""

    def __init__(self, control: Control) -> None:
        self.control = control
        self.store = control.store

    # -- workflows ---------------------------------------------------------------------------
    async def list_workflows(
        self, account_id: str, *, page: int = 1, per_page: int = 10, search: str | None = None
    ) -> Page:
        _check_page(page, per_page)
        rows, total = await self.store.list_workflows(
            account_id, offset=(page - 1) * per_page, limit=per_page, search=search
        )
        counts = await self.store.count_instances_by_status(
            [w.id for w in rows], live_at=self.control.clock.now_ms()
        )
        schedules = await self.store.list_schedules([w.id for w in rows])
        items = [
            views.workflow_summary(
                w, counts.get(w.id, {}), [s for s in schedules if s.workflow_id == w.id]
            )
            for w in rows
        ]
        return Page(items, page, per_page, total)

    async def get_workflow(self, account_id: str, name: str) -> dict[str, JSON]:
        workflow = await self._workflow(account_id, name)
        counts = await self.store.count_instances_by_status(
            [workflow.id], live_at=self.control.clock.now_ms()
        )
        schedules = await self.store.list_schedules([workflow.id])
        return views.workflow_summary(workflow, counts.get(workflow.id, {}), schedules)

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
        check_workflow_name(name)
        for field, value in (("class_name", class_name), ("script_name", script_name)):
            if not isinstance(value, str) or not 1 <= len(value) <= 255:
                raise InvalidRequest(f"{field} must be a string of 1-255 characters")
        success_ms, error_ms = _retention(default_retention, "default_retention")
        settings = WorkflowSettings(
            step_limit=_int_field(limits, "steps", "limits.steps", default=10_000),
            success_retention_ms=success_ms,
            error_retention_ms=error_ms,
            concurrency_limit=_int_field(concurrency, "limit", "concurrency.limit", default=None),
        )
        workflow, _ = await self.control.put(
            account_id,
            name,
            class_name=class_name,
            script_name=script_name,
            settings=settings,
            schedules=schedules or (),
        )
        return views.workflow_update(workflow)

    async def delete_workflow(self, account_id: str, name: str) -> dict[str, JSON]:
        workflow = await self._workflow(account_id, name)
        await self.control.delete_workflow(workflow)
        return {"status": "ok", "success": True}

    async def list_versions(
        self, account_id: str, name: str, *, page: int = 1, per_page: int = 50
    ) -> Page:
        _check_page(page, per_page)
        workflow = await self._workflow(account_id, name)
        rows, total = await self.store.list_versions(
            workflow.id, offset=(page - 1) * per_page, limit=per_page
        )
        return Page([views.version_view(v) for v in rows], page, per_page, total)

    async def get_version(self, account_id: str, name: str, version_id: str) -> dict[str, JSON]:
        workflow = await self._workflow(account_id, name)
        version = await self.store.get_version(version_id)
        if version is None or version.workflow_id != workflow.id:
            raise VersionNotFound(f"version {version_id!r} does not exist")
        return views.version_view(version)

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
    ) -> Page:
        _check_page(page or 1, per_page)
        if page is not None and cursor is not None:
            raise InvalidRequest("page and cursor cannot be used together")
        if direction not in ("asc", "desc"):
            raise InvalidRequest("direction must be asc or desc")
        if status is not None and status not in LISTABLE_STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(LISTABLE_STATUSES)}")
        workflow = await self._workflow(account_id, name)
        where = InstanceFilter(
            status=status,
            created_from=_date(date_start, "date_start"),
            created_to=_date(date_end, "date_end"),
            live_at=self.control.clock.now_ms(),
        )
        descending = direction == "desc"
        after = _decode_cursor(cursor) if cursor is not None else None
        offset = 0 if page is None else (page - 1) * per_page
        rows = await self.store.list_instances(
            workflow.id,
            where,
            descending=descending,
            limit=per_page + 1,
            offset=offset,
            after=after,
        )
        more = len(rows) > per_page
        rows = rows[:per_page]
        total = await self.store.count_instances(workflow.id, where)
        next_cursor = _encode_cursor(rows[-1]) if more and rows else None
        return Page(
            [views.instance_summary(i) for i in rows],
            page if page is not None else (None if cursor is not None else 1),
            per_page,
            total,
            cursor=next_cursor,
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
        workflow = await self._workflow(account_id, name)
        item = _new_instance(
            {"instance_id": instance_id, "params": params, "instance_retention": retention},
            trigger_source,
        )
        created = await self.control.create(workflow, [item], skip_existing=False)
        return views.instance_created(created[0])

    async def create_batch(
        self, account_id: str, name: str, items: list[dict[str, JSON]]
    ) -> list[dict[str, JSON]]:
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise InvalidRequest(f"a batch holds 1 to {MAX_BATCH} instances")
        workflow = await self._workflow(account_id, name)
        new = [_new_instance(item, "api") for item in items]
        created = await self.control.create(workflow, new, skip_existing=True)
        return [views.instance_created(i) for i in created]

    async def describe_instance(
        self,
        account_id: str,
        name: str,
        instance_id: str,
        *,
        simple: bool = False,
        order: Literal["asc", "desc"] = "asc",
    ) -> dict[str, JSON]:
        if order not in ("asc", "desc"):
            raise InvalidRequest("order must be asc or desc")
        instance = await self._instance(account_id, name, instance_id)
        if simple:  # no step log: its count alone, not every step's output
            return views.instance_detail(
                instance, [], step_count=await self.store.count_steps(instance.pk)
            )
        # Each output as the view shows it: its preview, and a character more to tell a cut.
        steps = await self.store.load_steps(
            instance.pk, output_chars=views.OUTPUT_PREVIEW_CHARS + 1
        )
        return views.instance_detail(instance, steps, descending=order == "desc")

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
        instance = await self._instance(account_id, name, instance_id)
        control = self.control
        if action == "pause":
            status = await control.pause(instance)
        elif action == "resume":
            status = await control.resume(instance)
        elif action == "terminate":
            status = await control.terminate(instance)
        elif action == "restart":
            if restart_from is None:
                status = await control.restart(instance)
            else:
                status = await control.restart(
                    instance,
                    from_name=restart_from.name,
                    count=restart_from.count,
                    step_type=restart_from.type,
                )
        else:
            raise InvalidRequest("status must be pause, resume, terminate or restart")
        return {"status": status, "timestamp": views.iso(control.clock.now_ms())}

    async def send_event(
        self, account_id: str, name: str, instance_id: str, event_type: str, payload: JSON
    ) -> dict[str, JSON]:
        instance = await self._instance(account_id, name, instance_id)
        await self.control.send_event(instance, event_type, payload)
        return {"instanceId": instance.id, "timestamp": views.iso(self.control.clock.now_ms())}

    async def delete_instance(
        self, account_id: str, name: str, instance_id: str
    ) -> dict[str, JSON]:
        instance = await self._instance(account_id, name, instance_id)
        if instance.pk not in await self.control.delete([instance]):
            raise InstanceNotFound(f"instance {instance_id!r} does not exist")  # deleted since
        return {"instanceId": instance.id, "timestamp": views.iso(self.control.clock.now_ms())}

    async def delete_batch(
        self, account_id: str, name: str, instance_ids: list[str]
    ) -> dict[str, JSON]:
        _check_id_batch(instance_ids)
        workflow = await self._workflow(account_id, name)
        found: dict[str, InstanceRecord] = {}
        errors = []
        for instance_id in instance_ids:
            if instance_id in found:
                continue
            try:
                found[instance_id] = await self.control.instance(workflow, instance_id)
            except InstanceNotFound as exc:
                errors.append({"id": instance_id, "code": exc.code, "message": exc.message})
        gone = await self.control.delete(list(found.values()))
        for instance_id, instance in found.items():
            if instance.pk not in gone:  # a racing delete took it first
                missing = InstanceNotFound(f"instance {instance_id!r} does not exist")
                errors.append({"id": instance_id, "code": missing.code, "message": missing.message})
        deleted = [{"id": i} for i in instance_ids if i in found and found[i].pk in gone]
        return {"deleted": deleted, "errors": errors}

    async def terminate_batch(
        self, account_id: str, name: str, instance_ids: list[str]
    ) -> dict[str, JSON]:
        _check_id_batch(instance_ids)
        workflow = await self._workflow(account_id, name)
        pks = []
        for instance_id in dict.fromkeys(instance_ids):
            found = await self.store.get_instance(workflow.id, instance_id)
            if found is not None:
                pks.append(found.pk)
        terminated = await self.control.terminate_many(pks)
        return {"instancesTerminated": terminated, "status": "ok"}

    async def terminate_all(
        self, account_id: str, name: str, *, status: str | None = None
    ) -> dict[str, JSON]:
        if status is not None and status not in TERMINABLE_STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(TERMINABLE_STATUSES)}")
        workflow = await self._workflow(account_id, name)
        statuses = TERMINABLE_STATUSES if status is None else (status,)
        started = await self.control.start_terminate_all(workflow, statuses)
        return {"status": "ok" if started else "already_running"}

    async def terminate_all_status(self, account_id: str, name: str) -> dict[str, JSON]:
        workflow = await self._workflow(account_id, name)
        return {"status": "running" if workflow.terminator_running else "not_running"}

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
        kind = {"step": "do", "waitForEvent": "wait"}.get(step_type)
        if kind is None:
            raise InvalidRequest("type must be step or waitForEvent")
        instance = await self._instance(account_id, name, instance_id)
        # A step's name is its code's name and its count (``pay-2``), its key the two apart.
        named = _STEP_NAME.fullmatch(step_name)
        match = None
        if named is not None:
            base, count = named.groups()
            if "/" in base:  # inside another's body, or a name given so in code
                match = await self._step_shown_as(instance.pk, kind, base, int(count))
            else:
                match = await self.store.load_step(instance.pk, f"{kind}:{count}:{base}")
        if match is None:
            raise InvalidRequest(f"no {step_type} named {step_name!r} in this instance")
        if attempt is not None and kind != "do":
            raise InvalidRequest(f"a {step_type} has no attempts: leave out attempt")
        if attempt is not None and not 1 <= attempt <= len(match.attempts):
            raise InvalidRequest(f"attempt must be 1 to {len(match.attempts)} for this step")
        return views.step_output(match, attempt)

    async def _step_shown_as(self, pk: int, kind: str, name: str, count: int) -> StepRecord | None:
        """The ``count``-th step of ``kind`` shown as ``name`` (``process-2/fetch``), as a
        restart from a step counts them: one inside another's body, whose key joins the
        names with a separator that no name shows, or one given that name in code. It is
        looked for among the steps, read without their outputs, then read whole."""
        steps = await self.store.load_steps(pk, output_chars=0)
        found = nth_step_shown_as(steps, name, count, kind)
        return None if found is None else await self.store.load_step(pk, found.key)

    # -- lookups -----------------------------------------------------------------------------
    async def _workflow(self, account_id: str, name: str) -> WorkflowRecord:
        check_workflow_name(name)
        return await self.control.workflow(account_id, name)

    async def _instance(self, account_id: str, name: str, instance_id: str) -> InstanceRecord:
        workflow = await self._workflow(account_id, name)
        _check_lookup_id(instance_id)
        return await self.control.instance(workflow, instance_id)


def _check_page(page: int, per_page: int) -> None:
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InvalidRequest("page must be a whole number of at least 1")
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= 100:
        raise InvalidRequest("per_page must be a whole number from 1 to 100")


_STEP_NAME = re.compile(r"(.+)-([1-9][0-9]{0,8})", re.DOTALL)
"""A step's name in the describe view: its code's name, a dash, and which call of that name
it was (a count as the engine writes it: ASCII digits, no leading zero)."""


def _check_lookup_id(instance_id: str) -> None:
    if not isinstance(instance_id, str) or not 1 <= len(instance_id) <= 271:
        raise InvalidRequest("instance id must be 1-271 characters")


def _check_id_batch(instance_ids: list[str]) -> None:
    if not isinstance(instance_ids, list) or not 1 <= len(instance_ids) <= MAX_BATCH:
        raise InvalidRequest(f"give 1 to {MAX_BATCH} instance ids")
    for instance_id in instance_ids:
        check_instance_id(instance_id)


def _new_instance(item: Mapping[str, Any], trigger_source: str) -> NewInstance:
    if not isinstance(item, Mapping):
        raise InvalidRequest("each instance must be an object")
    unknown = set(item) - {"instance_id", "params", "instance_retention", "location_hint"}
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    instance_id = item.get("instance_id")
    if instance_id is not None:
        check_instance_id(instance_id)
    success_ms, error_ms = _retention(item.get("instance_retention"), "instance_retention")
    return NewInstance(
        id=instance_id,
        params=item.get("params"),
        success_retention_ms=success_ms,
        error_retention_ms=error_ms,
        trigger_source=trigger_source,
    )


def _retention(raw: object, what: str) -> tuple[int | None, int | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"{what} must be an object")
    unknown = set(raw) - {"success_retention", "error_retention"}
    if unknown:
        raise InvalidRequest(f"{what}: unknown field(s) {', '.join(sorted(unknown))}")
    values = []
    for key in ("success_retention", "error_retention"):
        value = raw.get(key)
        values.append(None if value is None else parse_duration_ms(value, what=f"{what}.{key}"))
    return values[0], values[1]


def _int_field(raw: object, key: str, what: str, *, default: int | None) -> Any:
    if raw is None:
        return default
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"{what.split('.')[0]} must be an object")
    value = raw.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InvalidRequest(f"{what} must be a whole number")
    return int(value)


def _date(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        return views.parse_iso(text)
    except ValueError:
        raise InvalidRequest(f"{what} must be an ISO-8601 date-time") from None


def _encode_cursor(instance: InstanceRecord) -> str:
    raw = f"{instance.created_on}.{instance.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
"""A cursor's numbers: ASCII digits (``str.isdigit`` takes any script's)."""


def _decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, pk = base64.urlsafe_b64decode(padded.encode()).decode().split(".")
        if (
            _ASCII_DIGITS.fullmatch(created)
            and _ASCII_DIGITS.fullmatch(pk)
            and max(int(created), int(pk)) < 2**63
        ):
            return int(created), int(pk)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidRequest("cursor is not one this server gave out")
