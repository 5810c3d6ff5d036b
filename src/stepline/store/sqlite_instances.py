"""The SQLite store's instances: creating them (on request, or as a schedule fires), reading
them and their steps, and controlling them (an event sent, a resume, terminate, restart,
delete, the retention sweep).

A mixin of :class:`~stepline.store.sqlite.SqliteStore`, split out to keep each module about
one thing; it reaches the database only through the store's ``_read``, ``_write`` and
``_lookup`` (:class:`~stepline.store.sqlite_connections.Database`). The operations of
the engine on the runs it claims are the store's own.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from stepline.errors import (
    CannotSendEvent,
    InstanceAlreadyExists,
    InstanceNotFound,
    WorkflowNotFound,
)
from stepline.store import sqlite_queries as q
from stepline.store.buffered import check_buffered
from stepline.store.port import WORKFLOW_GONE, BufferedEvent, InstanceFilter
from stepline.store.records import FINISHED_STATUSES, InstanceRecord, ScheduleRecord, StepRecord
from stepline.store.sqlite_connections import Database
from stepline.store.sqlite_rows import (
    chunks,
    event_from_row,
    instance_from_row,
    marks,
    step_from_row,
    value_rows,
    without_cut_attempt,
)

__all__ = ["SqliteInstances"]


class SqliteInstances:
    """Instances on SQLite: created, read and controlled."""

    # -- instances: creation and reading -----------------------------------------------------
    async def insert_instances(
        self: Database, records: Sequence[InstanceRecord], *, skip_existing: bool, now: int
    ) -> list[InstanceRecord]:
        if not records:
            return []
        workflow_id = records[0].workflow_id
        ids = [r.id for r in records]
        values = [v for r in records for v in _instance_values(r)]

        def op(conn: sqlite3.Connection) -> list[InstanceRecord]:
            # Two statements for the whole batch: ids whose instance expired are free again
            # (the sweep may not have run yet), then one multi-row insert.
            for chunk in chunks(ids, 500):
                sql = q.DELETE_EXPIRED_IDS.format(marks=marks(len(chunk)))
                conn.execute(sql, (workflow_id, now, *chunk))
            added: dict[str, int] = {}
            for start in range(0, len(records), _INSERT_ROWS):
                part = records[start : start + _INSERT_ROWS]
                first = start * _INSTANCE_VALUES
                params = values[first : first + len(part) * _INSTANCE_VALUES]
                try:
                    added.update(_insert_part(conn, part, params))
                except sqlite3.IntegrityError as exc:
                    if "FOREIGN KEY" not in str(exc):
                        raise
                    raise WorkflowNotFound(WORKFLOW_GONE) from None
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

    async def get_instance(
        self: Database, workflow_id: str, instance_id: str
    ) -> InstanceRecord | None:
        row = self._lookup(q.INSTANCE_BY_ID, (workflow_id, instance_id))
        return None if row is None else instance_from_row(row)

    async def get_instance_by_pk(self: Database, pk: int) -> InstanceRecord | None:
        row = self._lookup(q.INSTANCE_BY_PK, (pk,))
        return None if row is None else instance_from_row(row)

    async def list_instances(
        self: Database,
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

    async def count_instances(self: Database, workflow_id: str, where: InstanceFilter) -> int:
        clauses, params = _filter_sql(workflow_id, where)
        sql = q.COUNT_INSTANCES.format(where=" AND ".join(clauses))
        row = await self._read(lambda c: c.execute(sql, params).fetchone())
        return int(row[0])

    async def load_steps(
        self: Database, pk: int, *, output_chars: int | None = None
    ) -> list[StepRecord]:
        if output_chars is None:
            rows = await self._read(lambda c: c.execute(q.STEPS_OF, (pk,)).fetchall())
        else:
            params = (output_chars, pk)
            rows = await self._read(lambda c: c.execute(q.STEPS_CUT_OF, params).fetchall())
        return [step_from_row(r) for r in rows]

    async def load_step(self: Database, pk: int, key: str) -> StepRecord | None:
        row = await self._read(lambda c: c.execute(q.STEP_OF, (pk, key)).fetchone())
        return None if row is None else step_from_row(row)

    async def count_steps(self: Database, pk: int) -> int:
        row = await self._read(lambda c: c.execute(q.COUNT_STEPS, (pk,)).fetchone())
        return int(row[0])

    async def step_output(self: Database, pk: int, key: str) -> str | None:
        row = await self._read(lambda c: c.execute(q.STEP_OUTPUT, (pk, key)).fetchone())
        return None if row is None else row[0]

    # -- control -----------------------------------------------------------------------------
    async def buffer_event(
        self: Database,
        pk: int,
        event_type: str,
        payload: str,
        *,
        now: int,
        owner: str | None = None,
        lease_until: int = 0,
        limit: int | None = None,
    ) -> BufferedEvent:
        def op(conn: sqlite3.Connection) -> BufferedEvent:
            row = conn.execute(q.EVENT_TARGET, (pk,)).fetchone()
            if row is None:
                raise InstanceNotFound()
            instance = instance_from_row(row[:-1])
            if instance.status in FINISHED_STATUSES:
                raise CannotSendEvent(f"instance is {instance.status}; it takes no more events")
            check_buffered(row[-1], payload, limit)
            conn.execute(q.INSERT_EVENT, (pk, event_type, payload, now))
            if instance.status != "waiting":
                return BufferedEvent(instance)
            if owner is not None:
                lease = (now, now, owner, lease_until)
                claimed = conn.execute(q.CLAIM_WOKEN, (*lease, pk, pk, event_type, now)).fetchone()
                if claimed is not None:
                    _hand_to_wait(conn, pk, event_type, now)
                    steps = [step_from_row(r) for r in conn.execute(q.RUN_STEPS_OF, (pk,))]
                    return BufferedEvent(instance, (instance_from_row(claimed), steps))
            conn.execute(q.WAKE_FOR_EVENT, (now, now, pk, pk, event_type, now))
            return BufferedEvent(instance)

        return await self._write(op)

    async def update_instance(
        self: Database,
        pk: int,
        *,
        expect: Collection[str],
        changes: dict[str, Any],
        bump_generation: bool = False,
    ) -> InstanceRecord | None:
        sets = [f"{column} = ?" for column in changes]
        if bump_generation:
            sets.append("generation = generation + 1")
        sql = q.UPDATE_INSTANCE_IF.format(sets=", ".join(sets), marks=marks(len(expect)))
        params = (*changes.values(), pk, *expect)
        row = await self._write(lambda c: c.execute(sql, params).fetchone())
        return None if row is None else instance_from_row(row)

    async def terminate(
        self: Database, pks: Sequence[int], *, now: int, expect: Collection[str] | None = None
    ) -> list[InstanceRecord]:
        statuses = tuple(expect) if expect is not None else None

        def op(conn: sqlite3.Connection) -> list[InstanceRecord]:
            done: list[InstanceRecord] = []
            for chunk in chunks(list(pks), 500):
                sql = q.TERMINATE.format(marks=marks(len(chunk)))
                params: tuple[Any, ...] = (now, now, now, *chunk)
                if statuses is not None:
                    sql += f" AND status IN ({marks(len(statuses))})"
                    params += statuses
                rows = conn.execute(sql + " RETURNING " + q.INSTANCE_COLS, params).fetchall()
                for row in rows:
                    instance = instance_from_row(row)
                    conn.execute(q.ADD_TERMINATION_STEP, (instance.pk, instance.pk, now))
                    done.append(instance)
            return done

        return await self._write(op)

    async def resume(self: Database, pk: int, *, now: int) -> InstanceRecord | None:
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

    async def restart(
        self: Database, pk: int, *, from_seq: int | None, now: int
    ) -> InstanceRecord | None:
        def op(conn: sqlite3.Connection) -> InstanceRecord | None:
            if from_seq is None:
                conn.execute(q.DELETE_ALL_EVENTS, (pk,))
                conn.execute(q.DELETE_ALL_STEPS, (pk,))
            else:
                conn.execute(q.DELETE_EVENTS_OF_WIPED, (pk, pk, from_seq))
                conn.execute(q.DELETE_STEPS_FROM, (pk, from_seq))
                for key, attempts in conn.execute(q.RUNNING_STEPS, (pk,)).fetchall():
                    kept = without_cut_attempt(attempts)
                    if kept is not None:
                        conn.execute(q.SET_STEP_ATTEMPTS, (kept, pk, key))
            row = conn.execute(q.RESTART, (now, pk)).fetchone()
            return None if row is None else instance_from_row(row)

        return await self._write(op)

    async def delete_instances(self: Database, pks: Sequence[int]) -> set[int]:
        def op(conn: sqlite3.Connection) -> set[int]:
            deleted: set[int] = set()
            for chunk in chunks(list(pks), 500):
                sql = q.DELETE_INSTANCES.format(marks=marks(len(chunk)))
                deleted.update(pk for (pk,) in conn.execute(sql, chunk))
            return deleted

        return await self._write(op)

    async def select_instance_pks(
        self: Database,
        workflow_id: str,
        *,
        statuses: Collection[str],
        limit: int,
        created_by: int,
    ) -> list[int]:
        sql = q.SELECT_PKS_BY_STATUS.format(marks=marks(len(statuses)))
        params = (workflow_id, *statuses, created_by, limit)
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [r[0] for r in rows]

    async def delete_expired(self: Database, now: int, *, limit: int) -> int:
        return await self._write(lambda c: int(c.execute(q.DELETE_EXPIRED, (now, limit)).rowcount))

    # -- schedules: firing -----------------------------------------------------------------
    async def fire_schedule(
        self: Database,
        schedule: ScheduleRecord,
        *,
        next_fire_at: int,
        instance: InstanceRecord,
        now: int,
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


# -- helpers ---------------------------------------------------------------------------------------
def _hand_to_wait(conn: sqlite3.Connection, pk: int, event_type: str, now: int) -> None:
    """Give the oldest unconsumed event of ``event_type`` to the first wait for it, as the
    runner's ``consume_event`` would when its replay reached that wait."""
    (key,) = conn.execute(q.FIRST_WAIT_FOR, (pk, event_type, now)).fetchone()
    event = event_from_row(conn.execute(q.OLDEST_EVENT, (pk, event_type, now)).fetchone())
    conn.execute(q.CONSUME_EVENT, (key, event.id))
    conn.execute(q.COMPLETE_WAIT, (now, event.payload, event.created_on, pk, key))


_INSERT_ROWS = 200
_INSTANCE_VALUES = 16


def _insert_part(
    conn: sqlite3.Connection, part: Sequence[InstanceRecord], params: list[Any]
) -> dict[str, int]:
    """Insert one multi-row statement's instances; returns the pk of each id inserted.

    Without ``RETURNING`` the insert is one step of the statement, not one per row (each of
    which gives up the GIL and takes it back). A new row's pk is one more than the largest
    in the table, so when every row went in and the last one got ``before + n``, the rows
    got ``before + 1 … before + n`` in order; otherwise (an id already there) they are
    looked up."""
    before = conn.execute(q.MAX_INSTANCE_PK).fetchone()[0] or 0
    cursor = conn.execute(_insert_instances_sql(len(part)), params)
    if cursor.rowcount == len(part) and cursor.lastrowid == before + len(part):
        return {record.id: before + 1 + index for index, record in enumerate(part)}
    return {instance_id: pk for pk, instance_id in conn.execute(q.INSTANCES_AFTER, (before,))}


@functools.lru_cache(maxsize=16)
def _insert_instances_sql(rows: int) -> str:
    return q.INSERT_INSTANCES.format(rows=value_rows(_INSTANCE_VALUES, rows))


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
        r.started_on,
        r.generation,
        r.lease_owner,
        r.lease_expires,
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
    if where.live_at is not None:
        clauses.append("(expires_on IS NULL OR expires_on > ?)")
        params.append(where.live_at)
    return clauses, params
