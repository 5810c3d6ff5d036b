"""The storage port: every operation the engine and the client need, by name.

Each backend (``sqlite.py``, ``postgres.py``) implements :class:`Store`. Writes that a runner
makes are *fenced* by the instance's ``generation``: terminate, restart and delete bump it,
and a runner's write with an older generation raises ``StaleRunError`` and changes nothing.
Every method is one transaction; nothing is half-written.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stepline.store.records import (
    EventRecord,
    InstanceRecord,
    ScheduleRecord,
    StepRecord,
    TokenRecord,
    VersionRecord,
    WorkflowRecord,
)

__all__ = [
    "WORKFLOW_GONE",
    "BufferedEvent",
    "InstanceFilter",
    "Notice",
    "Store",
    "WorkflowSettings",
    "notice_from_json",
    "notice_from_object",
    "notice_to_json",
]


@dataclass(frozen=True, slots=True)
class WorkflowSettings:
    """What a PUT of a workflow sets besides its class; a change makes a new version."""

    step_limit: int = 10_000
    success_retention_ms: int | None = None
    error_retention_ms: int | None = None
    concurrency_limit: int | None = None


@dataclass(frozen=True, slots=True)
class InstanceFilter:
    status: str | None = None
    created_from: int | None = None
    created_to: int | None = None
    live_at: int | None = None
    """Only instances not expired at this time (epoch ms): one whose retention has run out is
    gone for every read, before the sweep deletes it."""


WORKFLOW_GONE = "the workflow does not exist (it was deleted as its instances were created)"
"""``WorkflowNotFound``'s message when ``insert_instances`` finds the workflow gone."""


@dataclass(frozen=True, slots=True)
class Notice:
    """Something an engine may need to act on now, sent to every engine sharing the store.

    ``kind``: ``wake`` (look for runnable instances), ``event`` (an event arrived for
    ``pk``), ``pause`` / ``unpause`` / ``stop`` (for the runner of ``pk``; an ``unpause``
    without an owner is a resume from paused, which also wakes). ``owner`` names the
    engine whose runner is meant (None: any); ``generation`` is the instance's generation
    after the change, so a ``stop`` spares a runner that claimed the instance afterwards.
    """

    kind: str
    pk: int = 0
    owner: str | None = None
    generation: int = 0


def notice_to_json(notice: Notice) -> str:
    """A notice as the text that crosses between processes (``NOTIFY``, a datagram)."""
    return json.dumps(
        {
            "kind": notice.kind,
            "pk": notice.pk,
            "owner": notice.owner,
            "generation": notice.generation,
        },
        separators=(",", ":"),
    )


def notice_from_json(text: str) -> Notice:
    """The notice ``notice_to_json`` wrote (``KeyError``, ``ValueError`` if it is not one)."""
    return notice_from_object(json.loads(text))


def notice_from_object(raw: Any) -> Notice:
    """The notice of one decoded ``notice_to_json`` text (``KeyError``, ``ValueError``,
    ``TypeError`` if it is not one)."""
    return Notice(
        kind=str(raw["kind"]),
        pk=int(raw.get("pk", 0)),
        owner=raw.get("owner"),
        generation=int(raw.get("generation", 0)),
    )


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    """What ``buffer_event`` did: ``before`` is the instance as the event found it;
    ``claimed`` is the instance and its steps (the wait complete with the event) when the
    event woke it and the caller's engine took it in the same transaction."""

    before: InstanceRecord
    claimed: tuple[InstanceRecord, list[StepRecord]] | None = None


class Store(Protocol):
    """What Stepline asks of a database."""

    backend: str
    """"sqlite" or "postgres"."""
    exclusive: bool
    """True when one engine owns the database (SQLite): it recovers every running instance
    on start. False when engines share it (PostgreSQL): only lapsed leases are taken over."""

    async def open(self) -> None: ...

    async def close(self) -> None:
        """Close the connections, and let go of the engine (``release_engine``)."""
        ...

    def hold_engine(self, owner: str) -> None:
        """Before engine ``owner`` starts: where the database has one engine (SQLite), hold
        it for this one, or raise ``EngineAlreadyRunning`` if another engine does; where
        engines share it (PostgreSQL), nothing."""
        ...

    def release_engine(self) -> None:
        """Let another engine start on the database (after ``hold_engine``)."""
        ...

    @property
    def available(self) -> bool:
        """False while the database is known to be unreachable (a health check reads this)."""
        ...

    async def ping(self) -> bool:
        """Whether the database answers a trivial query now; never raises."""
        ...

    # -- workflows and versions ----------------------------------------------------------------
    async def save_workflow(
        self,
        account_id: str,
        name: str,
        *,
        class_name: str,
        script_name: str,
        code_hash: str,
        settings: WorkflowSettings,
        now: int,
        force_new_version: bool = False,
        schedules: Sequence[tuple[str, int]] | None = None,
        schedule_limit: int = 0,
    ) -> tuple[WorkflowRecord, VersionRecord]:
        """Create or update a workflow; a new version when class, code or settings changed
        (or always, with ``force_new_version``, as a REST PUT does).

        With ``schedules`` (each a cron expression and its first firing), they become the
        workflow's schedules in the same transaction; the same expressions as now keep their
        next firings. ``InvalidRequest``, and nothing written, when the account would then
        hold more than ``schedule_limit`` schedules."""
        ...

    async def get_workflow(self, account_id: str, name: str) -> WorkflowRecord | None: ...

    async def get_workflow_by_id(self, workflow_id: str) -> WorkflowRecord | None: ...

    async def list_workflows(
        self, account_id: str, *, offset: int, limit: int, search: str | None
    ) -> tuple[list[WorkflowRecord], int]: ...

    async def count_instances_by_status(
        self, workflow_ids: Sequence[str], *, live_at: int
    ) -> dict[str, dict[str, int]]:
        """Per workflow, its instances by status, leaving out those expired at ``live_at``."""
        ...

    async def delete_workflow(self, workflow_id: str) -> None: ...

    async def start_terminator(self, workflow_id: str, job: str, *, lease_until: int) -> bool:
        """Set the workflow's terminate-all flag with ``job`` (an opaque text of the
        caller's), held by the caller until ``lease_until``, unless a job is set already:
        True when this call set it."""
        ...

    async def end_terminator(self, workflow_id: str, job: str) -> None:
        """Clear the flag, if ``job`` is still the one set."""
        ...

    async def take_terminator_jobs(self, *, now: int, lease_until: int) -> list[tuple[str, str]]:
        """Hold until ``lease_until`` every set job that nobody holds at ``now`` (its lease
        lapsed, or was given back), and return them: each is taken by one caller only."""
        ...

    async def hold_terminator_jobs(
        self, jobs: Sequence[tuple[str, str]], *, lease_until: int | None
    ) -> None:
        """Renew the lease of each ``(workflow id, job)`` still set, or give it back (None)."""
        ...

    async def list_versions(
        self, workflow_id: str, *, offset: int, limit: int
    ) -> tuple[list[VersionRecord], int]: ...

    async def get_version(self, version_id: str) -> VersionRecord | None: ...

    # -- instances: creation and reading -------------------------------------------------------
    async def insert_instances(
        self, records: Sequence[InstanceRecord], *, skip_existing: bool, now: int
    ) -> list[InstanceRecord]:
        """Insert new instances (``pk`` is assigned), each as given: queued, or already
        claimed for an engine (running, its generation, lease owner and expiry set). An id
        that exists and has not expired raises ``InstanceAlreadyExists``, or with
        ``skip_existing`` is left out of the result. Also sets the workflow's
        ``triggered_on``."""
        ...

    async def get_instance(self, workflow_id: str, instance_id: str) -> InstanceRecord | None: ...

    async def get_instance_by_pk(self, pk: int) -> InstanceRecord | None: ...

    async def list_instances(
        self,
        workflow_id: str,
        where: InstanceFilter,
        *,
        descending: bool,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> list[InstanceRecord]:
        """Instances ordered by (created_on, pk); ``after`` is a keyset position."""
        ...

    async def count_instances(self, workflow_id: str, where: InstanceFilter) -> int: ...

    async def load_steps(self, pk: int, *, output_chars: int | None = None) -> list[StepRecord]:
        """Instance ``pk``'s steps in order; with ``output_chars``, each output is its first
        that many characters (a preview: the rest is not read)."""
        ...

    async def load_step(self, pk: int, key: str) -> StepRecord | None:
        """Step ``key`` of instance ``pk``, as :meth:`load_steps` gives it; ``None`` if none."""
        ...

    async def count_steps(self, pk: int) -> int:
        """How many steps instance ``pk`` has, its termination mark left out."""
        ...

    async def step_output(self, pk: int, key: str) -> str | None:
        """The output of step ``key`` of instance ``pk``; ``None`` when the step is gone (or
        has none). For the outputs a claim leaves in the store (``deferred_bytes``)."""
        ...

    # -- the engine's operations ---------------------------------------------------------------
    async def recover_interrupted(self, now: int, *, lapsed_before: int) -> int:
        """Instances whose engine is gone (lease expired before ``lapsed_before``): running
        ones become queued again, waitingForPause ones paused."""
        ...

    async def renew_leases(
        self, owner: str, until: int, pks: Sequence[int] | None = None, *, valid_at: int = 0
    ) -> set[int]:
        """Set the leases ``owner`` holds (on ``pks``, or all of them) and that have not
        expired by ``valid_at`` to expire at ``until``, in one statement; returns the pks
        renewed. Renewing only the instances an engine still runs lets the lease of one whose
        runner died lapse, so another engine takes it over; a lease that lapsed is not taken
        back, as another engine may have taken its instance over already."""
        ...

    async def pausing_among(self, pks: Sequence[int]) -> set[int]:
        """The pks among ``pks`` whose instance is ``waitingForPause``: an engine that shares
        the store looks for the pauses asked of what it runs, whose notices it may have
        missed."""
        ...

    async def claim_runnable(
        self,
        now: int,
        limit: int,
        *,
        owner: str,
        lease_until: int,
        skip: Collection[str] = (),
    ) -> list[tuple[InstanceRecord, list[StepRecord]]]:
        """Mark up to ``limit`` runnable instances running for ``owner`` (bumping their
        generation) and return them with their steps. Runnable: queued, or waiting with
        ``wake_at <= now``; not of the workflow versions (ids) in ``skip``, whose classes
        ``owner`` cannot load. Engines sharing the store never claim the same instance."""
        ...

    async def release(self, pk: int, generation: int, *, now: int) -> None:
        """Give back a claimed instance whose run never started (its engine cannot load its
        workflow's class): queued again, for any engine, if it is still at ``generation``;
        paused, if a pause was asked for since the claim (no step of it is running)."""
        ...

    async def next_wake_at(self, kinds: Collection[str] | None = None) -> int | None:
        """The earliest ``wake_at`` of a waiting instance (of the given wake kinds)."""
        ...

    def save_step(
        self, pk: int, generation: int, step: StepRecord, *, now: int, step_count: int | None = None
    ) -> Awaitable[None]:
        """Write one step row (and touch the instance) in one transaction; await the result
        (a coroutine or, where the write is submitted at the call, a future)."""
        ...

    def queue_step(self, pk: int, generation: int, step: StepRecord, *, now: int) -> None:
        """Like ``save_step`` but without waiting for the commit (used for "attempt started")."""
        ...

    async def suspend(
        self,
        pk: int,
        generation: int,
        *,
        status: str,
        wake_at: int | None,
        wake_kind: str | None,
        steps: Sequence[StepRecord],
        now: int,
    ) -> bool:
        """Park an instance (waiting or paused) with its pending steps. When a buffered event
        is already there for one of its waits, it is parked due at once and True returned.
        Parked waiting while a pause was written (``waitingForPause``), it is parked paused;
        parked paused once that pause was taken back (``running`` again: a resume whose
        notice the run did not hear), it is parked waiting, due at once, and True returned."""
        ...

    async def finish(
        self,
        pk: int,
        generation: int,
        *,
        status: str,
        output: str | None,
        error_name: str | None,
        error_message: str | None,
        steps: Sequence[StepRecord],
        now: int,
    ) -> None:
        """Record the end of a run: complete or errored, with its expiry from retention."""
        ...

    async def consume_event(
        self, pk: int, generation: int, step: StepRecord, *, now: int
    ) -> EventRecord | None:
        """Take the oldest unconsumed event of ``step.event_type`` for this wait and complete
        the step with it, in one transaction; None when there is none."""
        ...

    # -- control -------------------------------------------------------------------------------
    async def buffer_event(
        self,
        pk: int,
        event_type: str,
        payload: str,
        *,
        now: int,
        owner: str | None = None,
        lease_until: int = 0,
        limit: int | None = None,
    ) -> BufferedEvent:
        """Keep an event for the instance and wake it if a wait needs it. With ``owner``, a
        woken instance of a workflow without a concurrency limit is claimed for ``owner``
        too, and the event is handed to the wait, as ``consume_event`` would on the replay:
        the engine makes no claim of its own, and the runner finds the wait complete.
        Raises ``CannotSendEvent`` for a finished instance, or when the events the instance
        holds and no wait has taken would weigh more than ``limit`` bytes with this one
        (nothing is written); ``InstanceNotFound`` if gone."""
        ...

    async def update_instance(
        self,
        pk: int,
        *,
        expect: Collection[str],
        changes: dict[str, Any],
        bump_generation: bool = False,
    ) -> InstanceRecord | None:
        """Apply ``changes`` if the status is one of ``expect``; the updated row, or None."""
        ...

    async def terminate(
        self, pks: Sequence[int], *, now: int, expect: Collection[str] | None = None
    ) -> list[InstanceRecord]:
        """Terminate the instances that are not finished (and match ``expect``)."""
        ...

    async def resume(self, pk: int, *, now: int) -> InstanceRecord | None:
        """paused → queued, shifting its pending timers by the time it spent paused."""
        ...

    async def restart(self, pk: int, *, from_seq: int | None, now: int) -> InstanceRecord | None:
        """Wipe all steps (or those from ``from_seq`` on) and queue the instance again. Every
        event no wait has taken goes too, as do those the wiped waits took (§3.3). A kept
        step's attempt that was running is dropped: the restart cancelled it."""
        ...

    async def delete_instances(self, pks: Sequence[int]) -> set[int]:
        """Delete these instances (their steps and events with them); answers the pks that
        were there to delete, so that of two deletes racing, one alone succeeds."""
        ...

    async def select_instance_pks(
        self, workflow_id: str, *, statuses: Collection[str], limit: int, created_by: int
    ) -> list[int]:
        """Up to ``limit`` pks of the workflow's instances in ``statuses`` created by
        ``created_by`` (epoch ms), lowest first."""
        ...

    async def delete_expired(self, now: int, *, limit: int) -> int: ...

    # -- schedules -----------------------------------------------------------------------------
    async def list_schedules(self, workflow_ids: Sequence[str]) -> list[ScheduleRecord]: ...

    async def due_schedules(self, now: int, *, limit: int) -> list[ScheduleRecord]: ...

    async def fire_schedule(
        self, schedule: ScheduleRecord, *, next_fire_at: int, instance: InstanceRecord, now: int
    ) -> InstanceRecord | None:
        """Move ``schedule`` on to ``next_fire_at`` and create ``instance``, in one
        transaction; None when another engine fired this slot already (nothing is created)."""
        ...

    async def next_schedule_fire(self) -> int | None: ...

    # -- time ---------------------------------------------------------------------------------
    async def database_time_ms(self) -> int | None:
        """The database server's clock (ms since the epoch), which every process sharing the
        database goes by; None where the database is a file of this machine's (SQLite)."""
        ...

    # -- notices ------------------------------------------------------------------------------
    async def publish(self, notice: Notice) -> None:
        """Send ``notice`` to every engine subscribed to this database (this process too)."""
        ...

    def subscribe(self, handler: Callable[[Notice], None]) -> None:
        """Call ``handler`` on the event loop for every notice published."""
        ...

    def unsubscribe(self, handler: Callable[[Notice], None]) -> None:
        """No longer call ``handler`` (one that ``subscribe`` was given; another is ignored)."""
        ...

    # -- tokens --------------------------------------------------------------------------------
    async def save_token(self, token: TokenRecord) -> None: ...

    async def find_token(self, token_hash: str) -> TokenRecord | None: ...
