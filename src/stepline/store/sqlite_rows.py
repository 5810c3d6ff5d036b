"""Column lists, row mappers and small SQL helpers shared by the SQL backends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from stepline.store.records import (
    Attempt,
    EventRecord,
    InstanceRecord,
    StepRecord,
    TokenRecord,
    VersionRecord,
    WorkflowRecord,
)

__all__ = [
    "DEFERRED_OUTPUT_BYTES",
    "EVENT_COLUMNS",
    "INSTANCE_COLUMNS",
    "STEP_COLUMNS",
    "TOKEN_COLUMNS",
    "VERSION_COLUMNS",
    "WORKFLOW_COLUMNS",
    "attempts_text",
    "chunks",
    "escape_like",
    "event_from_row",
    "instance_from_row",
    "marks",
    "run_step_columns",
    "step_from_row",
    "step_to_row",
    "token_from_row",
    "value_rows",
    "version_from_row",
    "without_cut_attempt",
    "workflow_from_row",
]

WORKFLOW_COLUMNS = (
    "id, account_id, name, class_name, script_name, version_id, created_on, modified_on, "
    "triggered_on, step_limit, success_retention_ms, error_retention_ms, concurrency_limit, "
    "terminator_running"
)
VERSION_COLUMNS = (
    "id, workflow_id, class_name, script_name, code_hash, created_on, step_limit, "
    "success_retention_ms, error_retention_ms, concurrency_limit"
)
INSTANCE_COLUMNS = (
    "pk, workflow_id, id, version_id, status, params, created_on, modified_on, started_on, "
    "ended_on, trigger_source, output, error_name, error_message, success_retention_ms, "
    "error_retention_ms, expires_on, wake_at, wake_kind, paused_on, generation, lease_owner, "
    "lease_expires, schedule_cron, scheduled_time"
)
STEP_COLUMNS = (
    "instance_pk, key, seq, kind, name, status, start_at, end_at, config, attempts, output, "
    "error_name, error_message, error_class, wake_at, event_type"
)
DEFERRED_OUTPUT_BYTES = 16_384
"""A step output over this many bytes stays in the store when a run's steps are loaded, and
is read when the replay reaches its step: a wake holds one large value at a time, not every
one the instance has (up to its storage limit), and a SQLite claim does not copy them all on
the writer's thread."""


def cut_step_columns(chars: str) -> str:
    """``STEP_COLUMNS`` with ``output`` cut to its first ``chars`` characters (the dialect's
    placeholder for them)."""
    return STEP_COLUMNS.replace(" output,", f" substr(output, 1, {chars}),")


def run_step_columns(output_bytes: str) -> str:
    """``STEP_COLUMNS`` for the steps a run is handed: ``output`` NULL when over
    :data:`DEFERRED_OUTPUT_BYTES`, and its size as one more column (``deferred_bytes``).
    ``output_bytes``: the dialect's expression for the output's size in bytes."""
    large = f"{output_bytes} > {DEFERRED_OUTPUT_BYTES}"
    return (
        STEP_COLUMNS.replace(" output,", f" CASE WHEN {large} THEN NULL ELSE output END,")
        + f", CASE WHEN {large} THEN {output_bytes} END"
    )


EVENT_COLUMNS = "id, instance_pk, type, payload, created_on, consumed_by"
TOKEN_COLUMNS = "token_hash, account_id, can_write, name, created_on"


def workflow_from_row(row: Sequence[Any]) -> WorkflowRecord:
    record = WorkflowRecord(*row)
    record.terminator_running = bool(record.terminator_running)
    return record


def version_from_row(row: Sequence[Any]) -> VersionRecord:
    return VersionRecord(*row)


def instance_from_row(row: Sequence[Any]) -> InstanceRecord:
    return InstanceRecord(*row)


def step_from_row(row: Sequence[Any]) -> StepRecord:
    values = list(row)
    values[9] = [Attempt.from_json(a) for a in json.loads(values[9])]
    return StepRecord(*values)


def without_cut_attempt(attempts: str) -> str | None:
    """A kept step's attempts less the one a restart cut off (its last, with no end), or
    None when it has none: the restart cancelled that attempt, which is no failure, and the
    replay makes it again. Left, it counted as an attempt a crash had cut off."""
    kept = json.loads(attempts)
    if not kept or kept[-1].get("end") is not None:
        return None
    return attempts_text([Attempt.from_json(a) for a in kept[:-1]])


def step_to_row(step: StepRecord, null: Any = None) -> tuple[Any, ...]:
    """The step's columns, in ``STEP_COLUMNS`` order; a NULL column as ``null``."""
    return (
        step.instance_pk,
        step.key,
        step.seq,
        step.kind,
        step.name,
        step.status,
        step.start,
        null if step.end is None else step.end,
        null if step.config is None else step.config,
        attempts_text(step.attempts),
        null if step.output is None else step.output,
        null if step.error_name is None else step.error_name,
        null if step.error_message is None else step.error_message,
        null if step.error_class is None else step.error_class,
        null if step.wake_at is None else step.wake_at,
        null if step.event_type is None else step.event_type,
    )


def attempts_text(attempts: list[Attempt]) -> str:
    """The attempts as JSON; written by hand because it runs twice for every step."""
    parts = []
    for a in attempts:
        end = "null" if a.end is None else str(a.end)
        success = "null" if a.success is None else ("true" if a.success else "false")
        if a.error_name is None:
            error = "null"
        else:
            error = json.dumps({"name": a.error_name, "message": a.error_message or ""})
        parts.append(f'{{"start":{a.start},"end":{end},"success":{success},"error":{error}}}')
    return "[" + ",".join(parts) + "]"


def event_from_row(row: Sequence[Any]) -> EventRecord:
    return EventRecord(*row)


def token_from_row(row: Sequence[Any]) -> TokenRecord:
    record = TokenRecord(*row)
    record.can_write = bool(record.can_write)
    return record


T = TypeVar("T")


def marks(n: int) -> str:
    """``n`` SQLite placeholders: ``?, ?, ?``."""
    return ", ".join("?" * n)


def value_rows(width: int, rows: int) -> str:
    """``rows`` rows of ``width`` placeholders, for ``VALUES``: ``(?, ?), (?, ?)``."""
    return ", ".join([f"({marks(width)})"] * rows)


def chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def escape_like(text: str) -> str:
    """``text`` as a literal inside a ``LIKE ... ESCAPE '\\'`` pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
