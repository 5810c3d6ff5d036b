"""Building a new instance's row, the same way for every trigger (API, binding, cron)."""

from __future__ import annotations

import os

from stepline.store.records import DEFAULT_RETENTION_MS, InstanceRecord, WorkflowRecord

__all__ = ["new_instance_record", "random_instance_ids"]


def random_instance_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs in their text form, as ``str(uuid.uuid4())`` makes
    them, from one read of the system's random source. ``uuid4`` reads it once an id, and each
    read lets go of the GIL: with the store's writer thread busy, taking it back cost ~20 µs
    an id, more than building the instance's row."""
    digits = os.urandom(16 * count).hex()
    return [
        f"{digits[at : at + 8]}-{digits[at + 8 : at + 12]}-4{digits[at + 13 : at + 16]}-"
        f"{_VARIANT[digits[at + 16]]}{digits[at + 17 : at + 20]}-{digits[at + 20 : at + 32]}"
        for at in range(0, 32 * count, 32)
    ]


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""A random hex digit's two low bits, under the RFC 4122 variant's ``10`` high bits."""


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
