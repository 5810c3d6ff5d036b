"""The request bodies of spec §1.3, checked field by field into typed values.

Each parser takes the decoded JSON (or :data:`~stepline.api.body.EMPTY`) and either returns a
frozen value or raises an ``InvalidRequest`` (400 10002) whose detail names the field. Fields
that Cloudflare documents but Stepline does not use (``location_hint``) are still checked, so a
request that Cloudflare would refuse is refused here too. Unknown fields are ignored, as newer
clients may send more than this server knows, except in the status body (see there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, get_args

from stepline.api.body import EMPTY
from stepline.client.base import JSON, RestartFrom, StatusAction
from stepline.cron import check_cron
from stepline.durations import parse_duration_ms
from stepline.errors import InvalidRequest
from stepline.validation import (
    MAX_CONCURRENCY_LIMIT,
    MAX_STEP_LIMIT,
    check_instance_id,
    check_json_size,
    check_step_full_name,
)

__all__ = [
    "MAX_BATCH",
    "InstanceCreate",
    "StatusChange",
    "WorkflowPut",
    "parse_batch_create",
    "parse_batch_delete",
    "parse_batch_terminate",
    "parse_event_payload",
    "parse_instance_create",
    "parse_status_change",
    "parse_workflow_put",
]

MAX_BATCH = 100
LOCATION_HINTS = frozenset(
    {"wnam", "weur", "enam", "eeur", "apac", "apac-ne", "apac-se", "oc", "sam", "afr", "me"}
)
_STATUS_ACTIONS: dict[str, StatusAction] = {action: action for action in get_args(StatusAction)}
_RESTART_STEP_TYPES = ("do", "sleep", "waitForEvent")


# -- field helpers ------------------------------------------------------------------------------


def _require_object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    return value


def _require_array(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{what} must be a JSON array")
    if not 1 <= len(value) <= MAX_BATCH:
        raise InvalidRequest(f"{what} must hold between 1 and {MAX_BATCH} items")
    return value


def _require_text(value: object, what: str, *, max_length: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_length:
        raise InvalidRequest(f"{what} must be a string of 1 to {max_length} characters")
    return value


def _require_int(value: object, what: str, *, minimum: int, maximum: int | None = None) -> int:
    """An integer, also when written as ``2.0``; booleans are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{what} must be an integer")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidRequest(f"{what} must be an integer")
        value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise InvalidRequest(f"{what} must be {bound}")
    return value


def _retention(value: object, what: str) -> dict[str, JSON] | None:
    """``{success_retention, error_retention}`` as milliseconds; each side optional."""
    if value is None:
        return None
    fields = _require_object(value, what)
    retention: dict[str, JSON] = {}
    for side in ("success_retention", "error_retention"):
        if fields.get(side) is not None:
            retention[side] = parse_duration_ms(fields[side], what=f"{what}.{side}")
    return retention or None


# -- instances ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceCreate:
    """One instance to create. ``params`` is passed on verbatim, a JSON string included."""

    instance_id: str | None
    params: JSON
    retention: dict[str, JSON] | None

    def as_batch_item(self) -> dict[str, JSON]:
        """The REST create object, normalised: only the given keys, retentions in ms."""
        item: dict[str, JSON] = {}
        if self.instance_id is not None:
            item["instance_id"] = self.instance_id
        if self.params is not None:
            item["params"] = self.params
        if self.retention is not None:
            item["instance_retention"] = self.retention
        return item


def _instance_create(value: object, what: str) -> InstanceCreate:
    fields = _require_object(value, what)
    instance_id = fields.get("instance_id")
    if instance_id is not None:
        instance_id = check_instance_id(instance_id)
    params = fields.get("params")  # its size is the engine's to check, for every trigger
    hint = fields.get("location_hint")
    if hint is not None and (not isinstance(hint, str) or hint not in LOCATION_HINTS):
        raise InvalidRequest(
            f"{what}.location_hint must be one of {', '.join(sorted(LOCATION_HINTS))}"
        )
    retention = _retention(fields.get("instance_retention"), f"{what}.instance_retention")
    return InstanceCreate(instance_id=instance_id, params=params, retention=retention)


def parse_instance_create(body: JSON) -> InstanceCreate:
    """``POST .../instances``: every field is optional, so an empty body means ``{}``."""
    return _instance_create({} if body is EMPTY else body, "body")


def parse_batch_create(body: JSON) -> list[InstanceCreate]:
    """``POST .../instances/batch``: a JSON array of 1-100 create objects."""
    items = _require_array(None if body is EMPTY else body, "body")
    return [_instance_create(item, f"body[{index}]") for index, item in enumerate(items)]


def _instance_ids(value: object, what: str) -> list[str]:
    ids = _require_array(value, what)
    return [check_instance_id(instance_id) for instance_id in ids]


def parse_batch_delete(body: JSON) -> list[str]:
    """``POST .../instances/batch/delete``: ``{"instances": [1-100 ids]}``; one bad id fails all."""
    fields = _require_object(None if body is EMPTY else body, "body")
    return _instance_ids(fields.get("instances"), "body.instances")


def parse_batch_terminate(body: JSON) -> list[str]:
    """``POST .../instances/batch/terminate``: a JSON array of 1-100 ids."""
    return _instance_ids(None if body is EMPTY else body, "body")


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A ``PATCH .../status`` request."""

    action: StatusAction
    rollback: bool = False
    restart_from: RestartFrom | None = None


def _restart_from(value: object) -> RestartFrom:
    fields = _require_object(value, "body.from")
    name = check_step_full_name(fields.get("name"))
    count_value = fields.get("count")
    count = 1 if count_value is None else _require_int(count_value, "body.from.count", minimum=1)
    step_type = fields.get("type")
    if step_type is None:
        return RestartFrom(name=name, count=count)
    if step_type == "do":
        return RestartFrom(name=name, count=count, type="do")
    if step_type == "sleep":
        return RestartFrom(name=name, count=count, type="sleep")
    if step_type == "waitForEvent":
        return RestartFrom(name=name, count=count, type="waitForEvent")
    raise InvalidRequest(f"body.from.type must be one of {', '.join(_RESTART_STEP_TYPES)}")


def parse_status_change(body: JSON) -> StatusChange:
    """``{"status": pause|resume|terminate|restart, "rollback"?: bool, "from"?: {...}}``."""
    fields = _require_object(None if body is EMPTY else body, "body")
    # Strict, unlike the other bodies: a misspelt "rollback" or "from" would silently turn a
    # rollback-terminate or a partial restart into a plain one.
    unknown = sorted(set(fields) - {"status", "rollback", "from"})
    if unknown:
        raise InvalidRequest(f"body has unknown fields: {', '.join(unknown)}")
    status = fields.get("status")
    action = _STATUS_ACTIONS.get(status) if isinstance(status, str) else None
    if action is None:
        raise InvalidRequest(f"body.status must be one of {', '.join(_STATUS_ACTIONS)}")
    rollback = fields.get("rollback")
    if "rollback" in fields:
        if not isinstance(rollback, bool):
            raise InvalidRequest("body.rollback must be a boolean")
        if action != "terminate":
            raise InvalidRequest("body.rollback applies only to status 'terminate'")
    restart_from = fields.get("from")
    if "from" in fields and action != "restart":
        raise InvalidRequest("body.from applies only to status 'restart'")
    return StatusChange(
        action=action,
        rollback=bool(rollback),
        restart_from=None if restart_from is None else _restart_from(restart_from),
    )


def parse_event_payload(body: JSON) -> JSON:
    """The event payload: any JSON value up to 1 MiB; an empty body is the payload ``null``."""
    payload = None if body is EMPTY else body
    check_json_size(payload, what="event payload")
    return payload


# -- workflows ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkflowPut:
    """A ``PUT /workflows/{name}`` request, with optional parts already normalised."""

    class_name: str
    script_name: str
    limits: dict[str, JSON] | None
    default_retention: dict[str, JSON] | None
    concurrency: dict[str, JSON] | None
    schedules: list[str]


def _limits(value: object) -> dict[str, JSON] | None:
    if value is None:
        return None
    fields = _require_object(value, "body.limits")
    if fields.get("steps") is None:
        return None
    steps = _require_int(fields["steps"], "body.limits.steps", minimum=1, maximum=MAX_STEP_LIMIT)
    return {"steps": steps}


def _concurrency(value: object) -> dict[str, JSON] | None:
    if value is None:
        return None
    fields = _require_object(value, "body.concurrency")
    if fields.get("limit") is None:
        return None
    limit = _require_int(
        fields["limit"], "body.concurrency.limit", minimum=1, maximum=MAX_CONCURRENCY_LIMIT
    )
    return {"limit": limit}


def _schedules(value: object) -> list[str]:
    """``[{"cron": "*/5 * * * *"}, ...]`` as the list of valid cron expressions."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("body.schedules must be a JSON array")
    crons = []
    for index, item in enumerate(value):
        entry = _require_object(item, f"body.schedules[{index}]")
        crons.append(check_cron(entry.get("cron")))
    return crons


def parse_workflow_put(body: JSON) -> WorkflowPut:
    """``{class_name, script_name, limits?, default_retention?, concurrency?, schedules?}``."""
    fields = _require_object(None if body is EMPTY else body, "body")
    return WorkflowPut(
        class_name=_require_text(fields.get("class_name"), "body.class_name", max_length=255),
        script_name=_require_text(fields.get("script_name"), "body.script_name", max_length=255),
        limits=_limits(fields.get("limits")),
        default_retention=_retention(fields.get("default_retention"), "body.default_retention"),
        concurrency=_concurrency(fields.get("concurrency")),
        schedules=_schedules(fields.get("schedules")),
    )
