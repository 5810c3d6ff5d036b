"""The rows the store keeps. Times are integer milliseconds since the Unix epoch, UTC.

JSON values (params, outputs, payloads) stay serialised text here: the store never parses
them, and a value's bytes are what the size limits count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_RETENTION_MS",
    "FINISHED_STATUSES",
    "INSTANCE_STATUSES",
    "LISTABLE_STATUSES",
    "RECOVERED",
    "Attempt",
    "EventRecord",
    "InstanceRecord",
    "InstanceStatus",
    "ScheduleRecord",
    "StepKind",
    "StepRecord",
    "TokenRecord",
    "VersionRecord",
    "WorkflowRecord",
]

InstanceStatus = Literal[
    "queued",
    "running",
    "paused",
    "errored",
    "terminated",
    "complete",
    "waitingForPause",
    "waiting",
]
INSTANCE_STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "paused",
    "errored",
    "terminated",
    "complete",
    "waitingForPause",
    "waiting",
)
LISTABLE_STATUSES: tuple[str, ...] = (*INSTANCE_STATUSES, "rollingBack")
"""What a list may filter on: Cloudflare's statuses, rollingBack included (Stepline runs no
rollbacks, so that filter matches nothing)."""
FINISHED_STATUSES = frozenset({"complete", "errored", "terminated"})
RECOVERED = "recovered"
"""The ``wake_kind`` of an instance taken back from an engine that died while running it
(its lease lapsed): kept through the claim that runs it again (and through a resume, when it
was pausing), so that run knows."""

ACTIVE_STATUSES = frozenset({"running", "waitingForPause"})
DEFAULT_RETENTION_MS = 30 * 86_400_000
"""How long a finished instance is kept when neither it nor its workflow says (Cloudflare Paid)."""

StepKind = Literal["do", "sleep", "wait"]


@dataclass(slots=True)
class WorkflowRecord:
    id: str
    account_id: str
    name: str
    class_name: str
    script_name: str
    version_id: str
    created_on: int
    modified_on: int
    triggered_on: int | None = None
    step_limit: int = 10_000
    success_retention_ms: int | None = None
    error_retention_ms: int | None = None
    concurrency_limit: int | None = None
    terminator_running: bool = False


@dataclass(slots=True)
class VersionRecord:
    id: str
    workflow_id: str
    class_name: str
    script_name: str
    code_hash: str
    created_on: int
    step_limit: int = 10_000
    success_retention_ms: int | None = None
    error_retention_ms: int | None = None
    concurrency_limit: int | None = None


@dataclass(slots=True)
class InstanceRecord:
    """One workflow instance. ``generation`` fences runners: every claim, terminate, restart
    and delete bumps it, and a runner's write with an older generation is refused.
    ``lease_owner`` is the engine running it, until ``lease_expires`` unless renewed."""

    pk: int
    workflow_id: str
    id: str
    version_id: str
    status: str
    params: str
    created_on: int
    modified_on: int
    started_on: int | None = None
    ended_on: int | None = None
    trigger_source: str = "api"
    output: str | None = None
    error_name: str | None = None
    error_message: str | None = None
    success_retention_ms: int | None = None
    error_retention_ms: int | None = None
    expires_on: int | None = None
    wake_at: int | None = None
    wake_kind: str | None = None
    paused_on: int | None = None
    generation: int = 0
    lease_owner: str | None = None
    lease_expires: int | None = None
    schedule_cron: str | None = None
    scheduled_time: int | None = None


@dataclass(slots=True)
class Attempt:
    start: int
    end: int | None = None
    success: bool | None = None
    error_name: str | None = None
    error_message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "success": self.success,
            "error": None
            if self.error_name is None
            else {"name": self.error_name, "message": self.error_message or ""},
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Attempt:
        error = raw.get("error")
        return cls(
            start=raw["start"],
            end=raw.get("end"),
            success=raw.get("success"),
            error_name=None if error is None else error.get("name"),
            error_message=None if error is None else error.get("message"),
        )


@dataclass(slots=True)
class StepRecord:
    """A step of an instance: a ``step.do``, a sleep or a ``wait_for_event``.

    ``key`` is the step's identity within the run (kind, name, occurrence; a sleep's
    duration too); ``seq`` is its start order. ``status``: running (attempting), waiting
    (retry backoff, sleep or wait pending), complete or errored. ``wake_at`` is the sleep's
    end, the wait's deadline or the next retry; once a wait has taken an event, when that
    event was sent (what the wait returns as the event's ``timestamp``).
    """

    instance_pk: int
    key: str
    seq: int
    kind: str
    name: str
    status: str
    start: int
    end: int | None = None
    config: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    output: str | None = None
    error_name: str | None = None
    error_message: str | None = None
    error_class: str | None = None
    wake_at: int | None = None
    event_type: str | None = None
    deferred_bytes: int | None = None
    """Set on the steps a run is handed when ``output`` was left in the store for being over
    :data:`~stepline.store.sqlite_rows.DEFERRED_OUTPUT_BYTES` (its size); ``output`` is then
    ``None`` until the run reads it (``Store.step_output``). Not a column."""


@dataclass(slots=True)
class EventRecord:
    id: int
    instance_pk: int
    type: str
    payload: str
    created_on: int
    consumed_by: str | None = None


@dataclass(slots=True)
class ScheduleRecord:
    """A cron schedule of a workflow and when it fires next."""

    workflow_id: str
    cron: str
    next_fire_at: int


@dataclass(slots=True)
class TokenRecord:
    token_hash: str
    account_id: str
    can_write: bool
    name: str
    created_on: int
