"""Records projected into the Cloudflare REST shapes of spec §1.3 (what ``result`` holds)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from stepline.store.records import (
    INSTANCE_STATUSES,
    InstanceRecord,
    ScheduleRecord,
    StepRecord,
    VersionRecord,
    WorkflowRecord,
)

__all__ = [
    "OUTPUT_PREVIEW_CHARS",
    "instance_created",
    "instance_detail",
    "instance_summary",
    "iso",
    "parse_iso",
    "step_log",
    "step_output",
    "version_view",
    "workflow_summary",
    "workflow_update",
]

OUTPUT_PREVIEW_CHARS = 1024
_CYCLE_MS = 146_097 * 86_400_000  # 400 Gregorian years, to the day
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST_PYTHON_MS = (datetime(9999, 12, 31, 23, 59, 59, 999_000, UTC) - _EPOCH) // timedelta(
    milliseconds=1
)
_TRUNCATED = "[truncated output]"
_REDACTED = "[REDACTED]"


def iso(ms: int | None) -> str | None:
    """Milliseconds to ``YYYY-MM-DDTHH:MM:SS.sssZ`` (fixed width, so text order is time order).

    Past year 9999 (a test clock's, after years of retries), as JavaScript's ``toISOString``
    writes it: ``+YYYYYY-...``. Python's dates end at 9999; the calendar repeats every 400
    years, so the date is that of as many 400-year cycles earlier, its year added back."""
    if ms is None:
        return None
    cycles = max(0, (ms - _LAST_PYTHON_MS) // _CYCLE_MS + 1)
    moment = _EPOCH + timedelta(milliseconds=ms - cycles * _CYCLE_MS)
    clock = moment.strftime("-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    year = moment.year + 400 * cycles
    return (f"{year:04d}" if year <= 9999 else f"+{year:06d}") + clock


def parse_iso(text: str) -> int:
    """An ISO-8601 date or date-time (UTC when it has no offset) to milliseconds."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def workflow_summary(
    workflow: WorkflowRecord, counts: dict[str, int], schedules: list[ScheduleRecord]
) -> dict[str, Any]:
    summary = _workflow_fields(workflow)
    summary.update(
        {
            "instances": {status: counts.get(status, 0) for status in INSTANCE_STATUSES},
        }
    )
    if schedules:
        summary["schedules"] = [
            {"cron": s.cron, "next_instance": iso(s.next_fire_at)} for s in schedules
        ]
    return summary


def workflow_update(workflow: WorkflowRecord) -> dict[str, Any]:
    return {
        **_workflow_fields(workflow),
        "version_id": workflow.version_id,
        "is_deleted": 0,
        "terminator_running": int(workflow.terminator_running),
    }


def _workflow_fields(workflow: WorkflowRecord) -> dict[str, Any]:
    """What every view of a workflow shows."""
    return {
        "id": workflow.id,
        "name": workflow.name,
        "class_name": workflow.class_name,
        "script_name": workflow.script_name,
        "created_on": iso(workflow.created_on),
        "modified_on": iso(workflow.modified_on),
        "triggered_on": iso(workflow.triggered_on),
    }


def version_view(version: VersionRecord) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": version.id,
        "workflow_id": version.workflow_id,
        "class_name": version.class_name,
        "created_on": iso(version.created_on),
        "modified_on": iso(version.created_on),
        "has_dag": False,
        "language": "python",
        "limits": {"steps": version.step_limit},
    }
    if version.success_retention_ms is not None or version.error_retention_ms is not None:
        retention = {}
        if version.success_retention_ms is not None:
            retention["success_retention"] = version.success_retention_ms
        if version.error_retention_ms is not None:
            retention["error_retention"] = version.error_retention_ms
        view["default_retention"] = retention
    if version.concurrency_limit is not None:
        view["concurrency"] = {"limit": version.concurrency_limit}
    return view


def instance_created(instance: InstanceRecord) -> dict[str, Any]:
    """A create's result: the instance as it was created, which is queued (spec §2.6), even
    when this process's engine claimed it in the same transaction and it is running now."""
    return {
        "id": instance.id,
        "status": "queued",
        "version_id": instance.version_id,
        "workflow_id": instance.workflow_id,
        "trigger_source": instance.trigger_source,
    }


def instance_summary(instance: InstanceRecord) -> dict[str, Any]:
    return {
        "id": instance.id,
        "status": instance.status,
        "version_id": instance.version_id,
        "workflow_id": instance.workflow_id,
        "created_on": iso(instance.created_on),
        "modified_on": iso(instance.modified_on),
        "started_on": iso(instance.started_on),
        "ended_on": iso(instance.ended_on),
        "trigger_source": instance.trigger_source,
    }


def instance_detail(
    instance: InstanceRecord,
    steps: list[StepRecord],
    *,
    descending: bool = False,
    step_count: int | None = None,
) -> dict[str, Any]:
    """The describe view; given ``step_count`` and no ``steps`` (``simple=true``), it leaves
    out the step log."""
    status = instance.status
    success = (
        True if status == "complete" else False if status in ("errored", "terminated") else None
    )
    error = (
        None
        if instance.error_name is None
        else {"name": instance.error_name, "message": instance.error_message or ""}
    )
    detail: dict[str, Any] = {
        "status": status,
        "params": json.loads(instance.params),
        "queued": iso(instance.created_on),
        "start": iso(instance.started_on),
        "end": iso(instance.ended_on),
        "success": success,
        "error": error,
        "output": None if instance.output is None else json.loads(instance.output),
        "trigger": {"source": instance.trigger_source},
        "versionId": instance.version_id,
        "rollback": None,
    }
    if instance.schedule_cron is not None:
        detail["schedule"] = {
            "cron": instance.schedule_cron,
            "scheduledTime": instance.scheduled_time,
        }
    ordered = sorted(steps, key=lambda s: s.seq, reverse=descending)
    detail["step_count"] = (
        sum(1 for s in ordered if s.kind != "termination") if step_count is None else step_count
    )
    detail["steps"] = [step_log(s, instance) for s in ordered]
    return detail


def step_log(step: StepRecord, instance: InstanceRecord) -> dict[str, Any]:
    if step.kind == "do":
        config = json.loads(step.config) if step.config else {}
        return {
            "type": "step",
            "name": step.name,
            "start": iso(step.start),
            "end": iso(step.end),
            "success": _step_success(step),
            "attempts": [
                {
                    "start": iso(a.start),
                    "end": iso(a.end),
                    "success": a.success,
                    "error": None
                    if a.error_name is None
                    else {"name": a.error_name, "message": a.error_message or ""},
                }
                for a in step.attempts
            ],
            "config": config,
            "output": _preview(step.output, sensitive=config.get("sensitive") == "output"),
        }
    if step.kind == "sleep":
        return {
            "type": "sleep",
            "name": step.name,
            "start": iso(step.start),
            "end": iso(step.end if step.end is not None else step.wake_at),
            "finished": step.status == "complete",
            "error": None,
        }
    if step.kind == "wait":
        view: dict[str, Any] = {
            "type": "waitForEvent",
            "name": step.name,
            "start": iso(step.start),
            "end": iso(step.end if step.end is not None else step.wake_at),
            "finished": step.status in ("complete", "errored"),
            "error": _step_error(step),
            "event_type": step.event_type,
        }
        if step.status == "complete":
            view["output"] = _preview(step.output, sensitive=False)
        return view
    return {"type": "termination", "trigger": {"source": "api"}, "start": iso(step.start)}


def step_output(step: StepRecord, attempt: int | None) -> dict[str, Any]:
    """The ``/step`` view: full output, status of the step or of one attempt."""
    status = {"complete": "complete", "errored": "errored"}.get(step.status, "running")
    if step.kind == "wait" and step.status == "waiting":
        status = "waiting"
    error = _step_error(step)
    output_text = step.output if step.status == "complete" else None
    if attempt is not None and step.kind == "do":
        chosen = step.attempts[attempt - 1]
        status = {True: "complete", False: "errored", None: "running"}[chosen.success]
        error = (
            None
            if chosen.error_name is None
            else {"name": chosen.error_name, "message": chosen.error_message or ""}
        )
        output_text = step.output if chosen.success else None
    if step.kind == "do" and status == "running" and step.attempts:
        last = step.attempts[-1]
        if last.error_name is not None and attempt is None:
            error = {"name": last.error_name, "message": last.error_message or ""}
    view: dict[str, Any] = {"status": status, "error": error}
    if output_text is not None:
        sensitive = step.kind == "do" and '"sensitive":"output"' in (step.config or "")
        view["output"] = _REDACTED if sensitive else json.loads(output_text)
    if step.kind == "wait":
        view["event_type"] = step.event_type
    return view


def _step_success(step: StepRecord) -> bool | None:
    return {"complete": True, "errored": False}.get(step.status)


def _step_error(step: StepRecord) -> dict[str, str] | None:
    if step.error_name is None:
        return None
    return {"name": step.error_name, "message": step.error_message or ""}


def _preview(text: str | None, *, sensitive: bool) -> Any:
    if text is None:
        return None
    if sensitive:
        return _REDACTED
    if len(text) > OUTPUT_PREVIEW_CHARS:
        return text[:OUTPUT_PREVIEW_CHARS] + _TRUNCATED
    return json.loads(text)
