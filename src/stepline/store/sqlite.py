"""The embedded SQLite store: WAL, one group-committing writer, pooled readers.

``SqliteStore("path/to/db.sqlite3", synchronous="FULL")``. FULL (the default) survives power
loss; NORMAL is faster and survives a process crash but may lose the last commits on power
loss. SQL lives in :mod:`stepline.store.sqlite_queries`.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from stepline.errors import (
    CannotSendEvent,
    InstanceAlreadyExists,
    InstanceNotFound,
    InvalidRequest,
    StaleRunError,
)
from stepline.store import sqlite_queries as q
from stepline.store.migrations import load_migrations
from stepline.store.port import InstanceFilter, Notice, WorkflowSettings
from stepline.store.records import (
    FINISHED_STATUSES,
    EventRecord,
    InstanceRecord,
    ScheduleRecord,
    StepRecord,
    TokenRecord,
    VersionRecord,
    WorkflowRecord,
)
from stepline.store.sqlite_rows import (
    event_from_row,
    instance_from_row,
    step_from_row,
    step_to_row,
    token_from_row,
    version_from_row,
    workflow_from_row,
)
from stepline.store.sqlite_writer import FencedWrite, SqliteWriter

__all__ = ["SqliteStore"]

T = TypeVar("T")
_SYNC_MODES = ("FULL", "NORMAL", "EXTRA", "OFF")


class SqliteStore:
    """The default store: one file, many readers, one batching writer."""

    backend = "sqlite"
    exclusive = True
    """One engine per file: on start it may take back every instance left running."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        synchronous = synchronous.upper()
        if synchronous not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {_SYNC_MODES}")
        self.path = Path(path)
        self.synchronous = synchronous
        self._writer = SqliteWriter(self._connect_writer)
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stepline-sqlite-read")
        self._local = threading.local()
        self._read_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Notice], None]] = []

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA temp_store = MEMORY")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._read_connections.append(conn)
        return conn

    async def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: operation(self._reader()))

    async def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        return await self._writer.run(operation)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._writer.start)
        await self._write(_migrate)

    @property
    def available(self) -> bool:
        """A local file is always reachable; ``ping`` tells whether it answers."""
        return True

    async def ping(self) -> bool:
        try:
            return bool(await self._read(lambda c: c.execute("SELECT 1").fetchone()[0]))
        except (sqlite3.Error, RuntimeError):  # RuntimeError: the store is closed
            return False

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.stop)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._read_connections:
                conn.close()
            self._read_connections.clear()

    # -- workflows and versions --------------------------------------------------------------
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
    ) -> tuple[WorkflowRecord, VersionRecord]:
        def op(conn: sqlite3.Connection) -> tuple[WorkflowRecord, VersionRecord]:
            row = conn.execute(q.WORKFLOW_BY_NAME, (account_id, name)).fetchone()
            if row is not None:
                workflow = workflow_from_row(row)
                vrow = conn.execute(q.VERSION_BY_ID, (workflow.version_id,)).fetchone()
                current = version_from_row(vrow)
                unchanged = (
                    current.class_name,
                    current.script_name,
                    current.code_hash,
                    current.step_limit,
                    current.success_retention_ms,
                    current.error_retention_ms,
                    current.concurrency_limit,
                ) == (
                    class_name,
                    script_name,
                    code_hash,
                    settings.step_limit,
                    settings.success_retention_ms,
                    settings.error_retention_ms,
                    settings.concurrency_limit,
                )
                if unchanged and not force_new_version:
                    return workflow, current
                workflow_id = workflow.id
            else:
                workflow_id = str(uuid.uuid4())
            version = VersionRecord(
                id=str(uuid.uuid4()),
                workflow_id=workflow_id,
                class_name=class_name,
                script_name=script_name,
                code_hash=code_hash,
                created_on=now,
                step_limit=settings.step_limit,
                success_retention_ms=settings.success_retention_ms,
                error_retention_ms=settings.error_retention_ms,
                concurrency_limit=settings.concurrency_limit,
            )
            settings_values = (
                settings.step_limit,
                settings.success_retention_ms,
                settings.error_retention_ms,
                settings.concurrency_limit,
            )
            if row is None:
                conn.execute(
                    q.INSERT_WORKFLOW,
                    (
                        workflow_id,
                        account_id,
                        name,
                        class_name,
                        script_name,
                        version.id,
                        now,
                        now,
                        *settings_values,
                    ),
                )
            else:
                conn.execute(
                    q.UPDATE_WORKFLOW,
                    (class_name, script_name, version.id, now, *settings_values, workflow_id),
                )
            conn.execute(
                q.INSERT_VERSION,
                (
                    version.id,
                    workflow_id,
                    class_name,
                    script_name,
                    code_hash,
                    now,
                    *settings_values,
                ),
            )
            saved = conn.execute(q.WORKFLOW_BY_NAME, (account_id, name)).fetchone()
            return workflow_from_row(saved), version

        return await self._write(op)

    async def get_workflow(self, account_id: str, name: str) -> WorkflowRecord | None:
        row = await self._read(
            lambda c: c.execute(q.WORKFLOW_BY_NAME, (account_id, name)).fetchone()
        )
        return None if row is None else workflow_from_row(row)

    async def get_workflow_by_id(self, workflow_id: str) -> WorkflowRecord | None:
        row = await self._read(lambda c: c.execute(q.WORKFLOW_BY_ID, (workflow_id,)).fetchone())
        return None if row is None else workflow_from_row(row)

    async def list_workflows(
        self, account_id: str, *, offset: int, limit: int, search: str | None
    ) -> tuple[list[WorkflowRecord], int]:
        pattern = "%" if not search else "%" + _escape_like(search) + "%"

        def op(conn: sqlite3.Connection) -> tuple[list[WorkflowRecord], int]:
            rows = conn.execute(q.LIST_WORKFLOWS, (account_id, pattern, limit, offset)).fetchall()
            total = conn.execute(q.COUNT_WORKFLOWS, (account_id, pattern)).fetchone()[0]
            return [workflow_from_row(r) for r in rows], int(total)

        return await self._read(op)

    async def count_instances_by_status(
        self, workflow_ids: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        if not workflow_ids:
            return {}
        sql = q.COUNT_BY_STATUS.format(marks=_marks(len(workflow_ids)))

        def op(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {w: {} for w in workflow_ids}
            for workflow_id, status, count in conn.execute(sql, tuple(workflow_ids)):
                out[workflow_id][status] = count
            return out

        return await self._read(op)

    async def delete_workflow(self, workflow_id: str) -> None:
        await self._write(lambda c: c.execute(q.DELETE_WORKFLOW, (workflow_id,)))

    async def set_terminator_running(self, workflow_id: str, running: bool) -> None:
        await self._write(lambda c: c.execute(q.SET_TERMINATOR, (int(running), workflow_id)))

    async def list_versions(
        self, workflow_id: str, *, offset: int, limit: int
    ) -> tuple[list[VersionRecord], int]:
        def op(conn: sqlite3.Connection) -> tuple[list[VersionRecord], int]:
            rows = conn.execute(q.LIST_VERSIONS, (workflow_id, limit, offset)).fetchall()
            total = conn.execute(q.COUNT_VERSIONS, (workflow_id,)).fetchone()[0]
            return [version_from_row(r) for r in rows], int(total)

        return await self._read(op)

    async def get_version(self, version_id: str) -> VersionRecord | None:
        row = await self._read(lambda c: c.execute(q.VERSION_BY_ID, (version_id,)).fetchone())
        return None if row is None else version_from_row(row)

    # -- instances: creation and reading -----------------------------------------------------
    async def insert_instances(
        self, records: Sequence[InstanceRecord], *, skip_existing: bool, now: int
    ) -> list[InstanceRecord]:
        if not records:
            return []
        workflow_id = records[0].workflow_id
        ids = [r.id for r in records]
        values = [v for r in records for v in _instance_values(r)]

        def op(conn: sqlite3.Connection) -> list[InstanceRecord]:
            # Two statements for the whole batch: ids whose instance expired are free again
            # (the sweep may not have run yet), then one multi-row insert.
            for chunk in _chunks(ids, 500):
                sql = q.DELETE_EXPIRED_IDS.format(marks=_marks(len(chunk)))
                conn.execute(sql, (workflow_id, now, *chunk))
            added: dict[str, int] = {}
            for start in range(0, len(records), _INSERT_ROWS):
                part = records[start : start + _INSERT_ROWS]
                first = start * _INSTANCE_VALUES
                params = values[first : first + len(part) * _INSTANCE_VALUES]
                for pk, instance_id in conn.execute(_insert_instances_sql(len(part)), params):
                    added[instance_id] = pk
            inserted = []
            seen: set[str] = set()
            for record in records:
                pk = added.get(record.id)
                if pk is None or record.id in seen:
                    if not skip_existing:
                        raise InstanceAlreadyExists(f"instance {record.id!r} already exists")
                    continue
                seen.add(record.id)
                record.pk = pk
                inserted.append(record)
            if inserted:
                conn.execute(q.TOUCH_TRIGGERED, (now, workflow_id))
            return inserted

        return await self._write(op)

    async def get_instance(self, workflow_id: str, instance_id: str) -> InstanceRecord | None:
        row = await self._read(
            lambda c: c.execute(q.INSTANCE_BY_ID, (workflow_id, instance_id)).fetchone()
        )
        return None if row is None else instance_from_row(row)

    async def get_instance_by_pk(self, pk: int) -> InstanceRecord | None:
        row = await self._read(lambda c: c.execute(q.INSTANCE_BY_PK, (pk,)).fetchone())
        return None if row is None else instance_from_row(row)

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
        clauses, params = _filter_sql(workflow_id, where)
        if after is not None:
            clauses.append(
                "(created_on, pk) < (?, ?)" if descending else "(created_on, pk) > (?, ?)"
            )
            params.extend(after)
        order = "DESC" if descending else "ASC"
        sql = q.LIST_INSTANCES.format(where=" AND ".join(clauses), order=order)
        params.extend((limit, offset))
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [instance_from_row(r) for r in rows]

    async def count_instances(self, workflow_id: str, where: InstanceFilter) -> int:
        clauses, params = _filter_sql(workflow_id, where)
        sql = q.COUNT_INSTANCES.format(where=" AND ".join(clauses))
        row = await self._read(lambda c: c.execute(sql, params).fetchone())
        return int(row[0])

    async def load_steps(self, pk: int) -> list[StepRecord]:
        rows = await self._read(lambda c: c.execute(q.STEPS_OF, (pk,)).fetchall())
        return [step_from_row(r) for r in rows]

    # -- the engine's operations -------------------------------------------------------------
    async def recover_interrupted(self, now: int, *, lapsed_before: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            paused = conn.execute(q.RECOVER_PAUSING, (now, now, lapsed_before)).rowcount
            return int(paused + conn.execute(q.RECOVER_RUNNING, (now, lapsed_before)).rowcount)

        return await self._write(op)

    async def renew_leases(self, owner: str, until: int, pks: Sequence[int] | None = None) -> int:
        if pks is None:
            return await self._write(
                lambda c: int(c.execute(q.RENEW_LEASES, (until, owner)).rowcount)
            )
        chosen = list(pks)

        def op(conn: sqlite3.Connection) -> int:
            renewed = 0
            for chunk in _chunks(chosen, 500):
                sql = q.RENEW_SOME_LEASES.format(marks=_marks(len(chunk)))
                renewed += conn.execute(sql, (until, owner, *chunk)).rowcount
            return renewed

        return await self._write(op)

    async def claim_runnable(
        self, now: int, limit: int, *, owner: str, lease_until: int
    ) -> list[tuple[InstanceRecord, list[StepRecord]]]:
        def op(conn: sqlite3.Connection) -> list[tuple[InstanceRecord, list[StepRecord]]]:
            lease = (now, now, owner, lease_until)
            limited = conn.execute(q.LIMITED_WORKFLOWS).fetchall()
            rows: list[Any] = []
            for workflow_id, cap, running in limited:
                want = min(cap - running, limit - len(rows))
                if want > 0:
                    rows += _claim_pair(
                        conn, q.CLAIM_DUE_OF, q.CLAIM_QUEUED_OF, lease, now, want, (workflow_id,)
                    )
            want = limit - len(rows)
            if want > 0 and limited:
                ids = tuple(w[0] for w in limited)
                due = q.CLAIM_DUE_EXCEPT.format(marks=_marks(len(ids)))
                queued = q.CLAIM_QUEUED_EXCEPT.format(marks=_marks(len(ids)))
                rows += _claim_pair(conn, due, queued, lease, now, want, ids)
            elif want > 0:
                rows += _claim_pair(conn, q.CLAIM_DUE, q.CLAIM_QUEUED, lease, now, want, ())
            claimed = [instance_from_row(r) for r in rows]
            steps: dict[int, list[StepRecord]] = {i.pk: [] for i in claimed}
            for chunk in _chunks([i.pk for i in claimed], 500):
                sql = q.STEPS_OF_MANY.format(marks=_marks(len(chunk)))
                for row in conn.execute(sql, chunk):
                    steps[row[0]].append(step_from_row(row))
            return [(i, steps[i.pk]) for i in claimed]

        return await self._write(op)

    async def next_wake_at(self, kinds: Collection[str] | None = None) -> int | None:
        if kinds is None:
            row = await self._read(lambda c: c.execute(q.NEXT_WAKE).fetchone())
        else:
            sql = q.NEXT_WAKE_OF_KINDS.format(marks=_marks(len(kinds)))
            row = await self._read(lambda c: c.execute(sql, tuple(kinds)).fetchone())
        return None if row is None or row[0] is None else int(row[0])

    async def save_step(
        self, pk: int, generation: int, step: StepRecord, *, now: int, step_count: int | None = None
    ) -> None:
        write = FencedWrite(
            q.UPSERT_STEP_FENCED, (*step_to_row(step), pk, generation), pk, generation
        )
        await self._writer.run(write, key=(pk, step.key))

    def queue_step(self, pk: int, generation: int, step: StepRecord, *, now: int) -> None:
        params = (*step_to_row(step), pk, generation)
        write = FencedWrite(q.UPSERT_STEP_FENCED, params, pk, generation, quiet=True)
        self._writer.queue(write, key=(pk, step.key))

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
        values = [step_to_row(s) for s in steps]

        def op(conn: sqlite3.Connection) -> bool:
            _save_steps(conn, pk, generation, values)
            woken = bool(
                status == "waiting" and conn.execute(q.EVENT_READY_FOR_WAIT, (pk,)).fetchone()
            )
            due = now if woken else wake_at
            paused_on = now if status == "paused" else None
            conn.execute(q.SUSPEND, (status, due, wake_kind, paused_on, now, pk, generation))
            return woken

        return await self._write(op)

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
        values = [step_to_row(s) for s in steps]

        def op(conn: sqlite3.Connection) -> None:
            _save_steps(conn, pk, generation, values)
            conn.execute(
                q.FINISH,
                (status, output, error_name, error_message, now, now, now, status, pk, generation),
            )

        await self._write(op)

    async def consume_event(
        self, pk: int, generation: int, step: StepRecord, *, now: int
    ) -> EventRecord | None:
        def op(conn: sqlite3.Connection) -> EventRecord | None:
            _fence(conn, pk, generation)
            row = conn.execute(q.OLDEST_EVENT, (pk, step.event_type)).fetchone()
            if row is None:
                return None
            event = event_from_row(row)
            event.consumed_by = step.key
            conn.execute(q.CONSUME_EVENT, (step.key, event.id))
            done = _copy_step(step)
            done.status, done.end, done.output = "complete", now, event.payload
            conn.execute(q.UPSERT_STEP, step_to_row(done))
            return event

        return await self._write(op)

    # -- control -----------------------------------------------------------------------------
    async def buffer_event(
        self, pk: int, event_type: str, payload: str, *, now: int
    ) -> InstanceRecord:
        def op(conn: sqlite3.Connection) -> InstanceRecord:
            row = conn.execute(q.INSTANCE_BY_PK, (pk,)).fetchone()
            if row is None:
                raise InstanceNotFound()
            instance = instance_from_row(row)
            if instance.status in FINISHED_STATUSES:
                raise CannotSendEvent(f"instance is {instance.status}; it takes no more events")
            conn.execute(q.INSERT_EVENT, (pk, event_type, payload, now))
            if instance.status == "waiting":
                conn.execute(q.WAKE_FOR_EVENT, (now, now, pk, pk, event_type))
            return instance

        return await self._write(op)

    async def update_instance(
        self,
        pk: int,
        *,
        expect: Collection[str],
        changes: dict[str, Any],
        bump_generation: bool = False,
    ) -> InstanceRecord | None:
        sets = [f"{column} = ?" for column in changes]
        if bump_generation:
            sets.append("generation = generation + 1")
        sql = q.UPDATE_INSTANCE_IF.format(sets=", ".join(sets), marks=_marks(len(expect)))
        params = (*changes.values(), pk, *expect)
        row = await self._write(lambda c: c.execute(sql, params).fetchone())
        return None if row is None else instance_from_row(row)

    async def terminate(
        self, pks: Sequence[int], *, now: int, expect: Collection[str] | None = None
    ) -> list[InstanceRecord]:
        statuses = tuple(expect) if expect is not None else None

        def op(conn: sqlite3.Connection) -> list[InstanceRecord]:
            done: list[InstanceRecord] = []
            for chunk in _chunks(list(pks), 500):
                sql = q.TERMINATE.format(marks=_marks(len(chunk)))
                params: tuple[Any, ...] = (now, now, now, *chunk)
                if statuses is not None:
                    sql += f" AND status IN ({_marks(len(statuses))})"
                    params += statuses
                rows = conn.execute(sql + " RETURNING " + q.INSTANCE_COLS, params).fetchall()
                for row in rows:
                    instance = instance_from_row(row)
                    conn.execute(q.ADD_TERMINATION_STEP, (instance.pk, instance.pk, now))
                    done.append(instance)
            return done

        return await self._write(op)

    async def resume(self, pk: int, *, now: int) -> InstanceRecord | None:
        def op(conn: sqlite3.Connection) -> InstanceRecord | None:
            row = conn.execute(q.INSTANCE_BY_PK, (pk,)).fetchone()
            if row is None or row[4] != "paused":
                return None
            instance = instance_from_row(row)
            shift = max(0, now - (instance.paused_on or now))
            conn.execute(q.SHIFT_STEP_TIMERS, (shift, pk))
            resumed = conn.execute(q.RESUME, (now, pk)).fetchone()
            return instance_from_row(resumed)

        return await self._write(op)

    async def restart(self, pk: int, *, from_seq: int | None, now: int) -> InstanceRecord | None:
        def op(conn: sqlite3.Connection) -> InstanceRecord | None:
            if from_seq is None:
                conn.execute(q.DELETE_ALL_EVENTS, (pk,))
                conn.execute(q.DELETE_ALL_STEPS, (pk,))
            else:
                conn.execute(q.DELETE_EVENTS_OF_WIPED, (pk, pk, from_seq))
                conn.execute(q.DELETE_STEPS_FROM, (pk, from_seq))
            row = conn.execute(q.RESTART, (now, pk)).fetchone()
            return None if row is None else instance_from_row(row)

        return await self._write(op)

    async def delete_instances(self, pks: Sequence[int]) -> int:
        def op(conn: sqlite3.Connection) -> int:
            deleted = 0
            for chunk in _chunks(list(pks), 500):
                sql = q.DELETE_INSTANCES.format(marks=_marks(len(chunk)))
                deleted += conn.execute(sql, chunk).rowcount
            return deleted

        return await self._write(op)

    async def select_instance_pks(
        self, workflow_id: str, *, statuses: Collection[str], limit: int
    ) -> list[int]:
        sql = q.SELECT_PKS_BY_STATUS.format(marks=_marks(len(statuses)))
        params = (workflow_id, *statuses, limit)
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [r[0] for r in rows]

    async def delete_expired(self, now: int, *, limit: int) -> int:
        return await self._write(lambda c: int(c.execute(q.DELETE_EXPIRED, (now, limit)).rowcount))

    # -- schedules ---------------------------------------------------------------------------
    async def list_schedules(self, workflow_ids: Sequence[str]) -> list[ScheduleRecord]:
        if not workflow_ids:
            return []
        sql = q.SCHEDULES_OF.format(marks=_marks(len(workflow_ids)))
        rows = await self._read(lambda c: c.execute(sql, tuple(workflow_ids)).fetchall())
        return [ScheduleRecord(*r) for r in rows]

    async def replace_schedules(
        self, workflow_id: str, account_id: str, schedules: Sequence[ScheduleRecord], *, limit: int
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            others = conn.execute(q.COUNT_ACCOUNT_SCHEDULES, (account_id, workflow_id)).fetchone()
            if others[0] + len(schedules) > limit:
                raise InvalidRequest(f"an account may have at most {limit} schedules")
            conn.execute(q.DELETE_SCHEDULES, (workflow_id,))
            conn.executemany(
                q.INSERT_SCHEDULE, [(workflow_id, s.cron, s.next_fire_at) for s in schedules]
            )

        await self._write(op)

    async def due_schedules(self, now: int, *, limit: int) -> list[ScheduleRecord]:
        rows = await self._read(lambda c: c.execute(q.DUE_SCHEDULES, (now, limit)).fetchall())
        return [ScheduleRecord(*r) for r in rows]

    async def fire_schedule(
        self, schedule: ScheduleRecord, *, next_fire_at: int, instance: InstanceRecord, now: int
    ) -> InstanceRecord | None:
        def op(conn: sqlite3.Connection) -> InstanceRecord | None:
            advanced = conn.execute(
                q.ADVANCE_SCHEDULE,
                (next_fire_at, schedule.workflow_id, schedule.cron, schedule.next_fire_at),
            ).rowcount
            if not advanced:  # another engine fired this slot, or the schedule changed
                return None
            row = conn.execute(q.INSERT_INSTANCE, _instance_values(instance)).fetchone()
            if row is None:
                return None
            conn.execute(q.TOUCH_TRIGGERED, (now, instance.workflow_id))
            instance.pk = row[0]
            return instance

        return await self._write(op)

    async def next_schedule_fire(self) -> int | None:
        row = await self._read(lambda c: c.execute(q.NEXT_SCHEDULE_FIRE).fetchone())
        return None if row is None or row[0] is None else int(row[0])

    # -- notices -----------------------------------------------------------------------------
    async def publish(self, notice: Notice) -> None:
        # One process owns a SQLite file's engine, so notices never leave this process.
        for handler in list(self._subscribers):
            handler(notice)

    def subscribe(self, handler: Callable[[Notice], None]) -> None:
        self._subscribers.append(handler)

    # -- tokens ------------------------------------------------------------------------------
    async def save_token(self, token: TokenRecord) -> None:
        values = (
            token.token_hash,
            token.account_id,
            int(token.can_write),
            token.name,
            token.created_on,
        )
        await self._write(lambda c: c.execute(q.INSERT_TOKEN, values))

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        row = await self._read(lambda c: c.execute(q.TOKEN_BY_HASH, (token_hash,)).fetchone())
        return None if row is None else token_from_row(row)


# -- helpers run on the writer thread ------------------------------------------------------------
def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(q.CREATE_MIGRATIONS_TABLE)
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for migration in load_migrations("sqlite"):
        if migration.number in applied:
            continue
        for statement in _split_sql(migration.sql):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_on) VALUES (?, ?, ?)",
            (migration.number, migration.name, int(time.time() * 1000)),
        )


def _claim_pair(
    conn: sqlite3.Connection,
    due_sql: str,
    queued_sql: str,
    lease: tuple[Any, ...],
    now: int,
    want: int,
    only: tuple[Any, ...],
) -> list[Any]:
    """Claim up to ``want``: instances whose wake time came first, then queued ones."""
    rows = conn.execute(due_sql, (*lease, now, *only, want)).fetchall()
    if len(rows) < want:
        rows += conn.execute(queued_sql, (*lease, *only, want - len(rows))).fetchall()
    return rows


def _split_sql(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _fence(conn: sqlite3.Connection, pk: int, generation: int) -> None:
    row = conn.execute(q.GENERATION_OF, (pk,)).fetchone()
    if row is None or row[0] != generation:
        raise StaleRunError(f"instance {pk} moved on from generation {generation}")


def _save_steps(
    conn: sqlite3.Connection,
    pk: int,
    generation: int,
    values: list[tuple[Any, ...]],
    *,
    quiet: bool = False,
) -> None:
    try:
        _fence(conn, pk, generation)
    except StaleRunError:
        if quiet:  # a queued "attempt started" for a run that has since been stopped
            return
        raise
    conn.executemany(q.UPSERT_STEP, values)


def _copy_step(step: StepRecord) -> StepRecord:
    return step_from_row(step_to_row(step))


_INSERT_ROWS = 200
_INSTANCE_VALUES = 12


@functools.lru_cache(maxsize=16)
def _insert_instances_sql(rows: int) -> str:
    row = "(" + ", ".join("?" * _INSTANCE_VALUES) + ")"
    return q.INSERT_INSTANCES.format(rows=", ".join([row] * rows))


def _instance_values(r: InstanceRecord) -> tuple[Any, ...]:
    return (
        r.workflow_id,
        r.id,
        r.version_id,
        r.status,
        r.params,
        r.created_on,
        r.modified_on,
        r.trigger_source,
        r.success_retention_ms,
        r.error_retention_ms,
        r.schedule_cron,
        r.scheduled_time,
    )


def _filter_sql(workflow_id: str, where: InstanceFilter) -> tuple[list[str], list[Any]]:
    clauses = ["workflow_id = ?"]
    params: list[Any] = [workflow_id]
    if where.status is not None:
        clauses.append("status = ?")
        params.append(where.status)
    if where.created_from is not None:
        clauses.append("created_on >= ?")
        params.append(where.created_from)
    if where.created_to is not None:
        clauses.append("created_on <= ?")
        params.append(where.created_to)
    return clauses, params


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
