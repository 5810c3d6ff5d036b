"""Building a new instance's row, the same way for every trigger (API, binding, cron)."""

from __future__ import annotations

from stepline.store.records import DEFAULT_RETENTION_MS, InstanceRecord, WorkflowRecord

__all__ = ["new_instance_record"]


def new_instance_record(
    workflow: WorkflowRecord,
    instance_id: str,
    params_json: str,
    *,
    now: int,
    trigger_source: str,
    success_retention_ms: int | None = None,
    error_retention_ms: int | None = None,
    schedule: tuple[str, int] | None = None,
) -> InstanceRecord:
    """A queued instance of ``workflow``'s current version. Retention falls back to the
    workflow's default, then to 30 days; ``schedule`` is (cron, scheduled time) for cron."""
    return InstanceRecord(
        pk=0,
        workflow_id=workflow.id,
        id=instance_id,
        version_id=workflow.version_id,
        status="queued",
        params=params_json,
        created_on=now,
        modified_on=now,
        trigger_source=trigger_source,
        success_retention_ms=_first(success_retention_ms, workflow.success_retention_ms),
        error_retention_ms=_first(error_retention_ms, workflow.error_retention_ms),
        schedule_cron=None if schedule is None else schedule[0],
        scheduled_time=None if schedule is None else schedule[1],
    )


def _first(*values: int | None) -> int:
    for value in values:
        if value is not None:
            return value
    return DEFAULT_RETENTION_MS
