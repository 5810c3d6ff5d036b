"""The PostgreSQL store's instances: creating them (on request, or as a schedule fires),
reading them and their steps, and controlling them (an event sent, a resume, terminate,
restart, delete, the retention sweep).

A mixin of :class:`~stepline.store.postgres.PostgresStore`, split out to keep each module
about one thing; it reaches the database through the store's pool and its one-statement
helpers (:class:`~stepline.store.postgres_catalog.PostgresStatements`). The operations of
the engine on the runs it claims are the store's own.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import asyncpg

from stepline.errors import (
    CannotSendEvent,
    InstanceAlreadyExists,
    InstanceNotFound,
    WorkflowNotFound,
)
from stepline.store import postgres_queries as q
from stepline.store.buffered import check_buffered
from stepline.store.port import WORKFLOW_GONE, BufferedEvent, InstanceFilter
from stepline.store.postgres_catalog import PostgresStatements
from stepline.store.records import FINISHED_STATUSES, InstanceRecord, ScheduleRecord, StepRecord
from stepline.store.sqlite_rows import (
    INSTANCE_COLUMNS,
    instance_from_row,
    step_from_row,
    without_cut_attempt,
)

__all__ = ["PostgresInstances"]

_INSTANCE_COLUMN_NAMES = frozenset(c.strip() for c in INSTANCE_COLUMNS.split(","))


class PostgresInstances(PostgresStatements):
    """Instances on PostgreSQL: created, read and controlled."""

    # -- instances: creation and reading -----------------------------------------------------
    async def insert_instances(
        self, records: Sequence[InstanceRecord], *, skip_existing: bool, now: int
    ) -> list[InstanceRecord]:
        if not records:
            return []
        unique: dict[tuple[str, str], InstanceRecord] = {}
        for record in records:
            key = (record.workflow_id, record.id)
            if key in unique:
                if not skip_existing:
                    raise InstanceAlreadyExists(f"instance {record.id!r} already exists")
                continue
            unique[key] = record
        batch = list(unique.values())
        columns = _instance_columns(batch)

        async def op(conn: asyncpg.Connection) -> list[asyncpg.Record]:
            # Ids whose instance has expired are free again (the sweep may not have run yet).
            await conn.execute(q.DELETE_EXPIRED_IDS, columns[0], columns[1], now)
            rows: list[asyncpg.Record]
            try:
                if skip_existing:
                    rows = await conn.fetch(q.INSERT_INSTANCES_SKIPPING, *columns, now)
                    return rows
                rows = await conn.fetch(q.INSERT_INSTANCES, *columns, now)
            except asyncpg.UniqueViolationError:
                clash = await conn.fetchval(q.FIRST_EXISTING_ID, batch[0].workflow_id, columns[1])
                raise InstanceAlreadyExists(f"instance {clash!r} already exists") from None
            except asyncpg.ForeignKeyViolationError:
                raise WorkflowNotFound(WORKFLOW_GONE) from None
            return rows

        added = {row["id"]: row["pk"] for row in await self._db.run(op)}
        inserted = []
        for record in batch:
            pk = added.get(record.id)
            if pk is not None:
                record.pk = pk
                inserted.append(record)
        return inserted

    async def get_instance(self, workflow_id: str, instance_id: str) -> InstanceRecord | None:
        row = await self._fetchrow(q.INSTANCE_BY_ID, workflow_id, instance_id)
        return None if row is None else instance_from_row(row)

    async def get_instance_by_pk(self, pk: int) -> InstanceRecord | None:
        row = await self._fetchrow(q.INSTANCE_BY_PK, pk)
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
            a, b = len(params) + 1, len(params) + 2
            clauses.append(
                f"(created_on, pk) {'<' if descending else '>'} (${a}::bigint, ${b}::bigint)"
            )
            params.extend(after)
        order = "DESC" if descending else "ASC"
        sql = q.LIST_INSTANCES.format(
            where=" AND ".join(clauses),
            order=order,
            limit=f"${len(params) + 1}",
            offset=f"${len(params) + 2}",
        )
        rows = await self._fetch(sql, *params, limit, offset)
        return [instance_from_row(r) for r in rows]

    async def count_instances(self, workflow_id: str, where: InstanceFilter) -> int:
        clauses, params = _filter_sql(workflow_id, where)
        sql = q.COUNT_INSTANCES.format(where=" AND ".join(clauses))
        return int(await self._fetchval(sql, *params))

    async def load_steps(self, pk: int, *, output_chars: int | None = None) -> list[StepRecord]:
        if output_chars is None:
            return [step_from_row(r) for r in await self._fetch(q.STEPS_OF, pk)]
        return [step_from_row(r) for r in await self._fetch(q.STEPS_CUT_OF, pk, output_chars)]

    async def load_step(self, pk: int, key: str) -> StepRecord | None:
        row = await self._fetchrow(q.STEP_OF, pk, key)
        return None if row is None else step_from_row(row)

    async def count_steps(self, pk: int) -> int:
        row = await self._fetchrow(q.COUNT_STEPS, pk)
        return 0 if row is None else int(row[0])

    async def step_output(self, pk: int, key: str) -> str | None:
        row = await self._fetchrow(q.STEP_OUTPUT, pk, key)
        return None if row is None else row[0]

    # -- control -----------------------------------------------------------------------------
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
        async def op(conn: asyncpg.Connection) -> BufferedEvent:
            async with conn.transaction():
                # The row lock orders this against a runner suspending the instance.
                row = await conn.fetchrow(q.LOCK_EVENT_TARGET, pk)
                if row is None:
                    raise InstanceNotFound()
                values = tuple(row)
                instance = instance_from_row(values[:-1])
                if instance.status in FINISHED_STATUSES:
                    raise CannotSendEvent(f"instance is {instance.status}; it takes no more events")
                check_buffered(values[-1], payload, limit)
                await conn.execute(q.INSERT_EVENT, pk, event_type, payload, now)
                if instance.status != "waiting":
                    return BufferedEvent(instance)
                if owner is not None:
                    claimed = await conn.fetchrow(
                        q.CLAIM_WOKEN, pk, event_type, now, owner, lease_until
                    )
                    if claimed is not None:
                        await conn.execute(q.HAND_TO_WAIT, pk, event_type, now)
                        steps = [step_from_row(r) for r in await conn.fetch(q.RUN_STEPS_OF, pk)]
                        return BufferedEvent(instance, (instance_from_row(claimed), steps))
                await conn.execute(q.WAKE_FOR_EVENT, pk, event_type, now)
            return BufferedEvent(instance)

        return await self._db.run(op)

    async def update_instance(
        self,
        pk: int,
        *,
        expect: Collection[str],
        changes: dict[str, Any],
        bump_generation: bool = False,
    ) -> InstanceRecord | None:
        unknown = set(changes) - _INSTANCE_COLUMN_NAMES
        if unknown:
            raise ValueError(f"not instance columns: {sorted(unknown)}")
        sets = [f"{column} = ${n}" for n, column in enumerate(changes, start=3)]
        if bump_generation:
            sets.append("generation = generation + 1")
        sql = q.UPDATE_INSTANCE_IF.format(sets=", ".join(sets))
        row = await self._fetchrow(sql, pk, list(expect), *changes.values())
        return None if row is None else instance_from_row(row)

    async def terminate(
        self, pks: Sequence[int], *, now: int, expect: Collection[str] | None = None
    ) -> list[InstanceRecord]:
        if not pks:
            return []
        params: list[Any] = [now, list(pks)]
        if expect is not None:
            sql = q.TERMINATE.format(expect="AND status = ANY($3::text[])")
            params.append(list(expect))
        else:
            sql = q.TERMINATE.format(expect="")

        async def op(conn: asyncpg.Connection) -> list[InstanceRecord]:
            async with conn.transaction():
                rows = await conn.fetch(sql, *params)
                done = [instance_from_row(r) for r in rows]
                if done:
                    await conn.execute(q.ADD_TERMINATION_STEPS, [i.pk for i in done], now)
            return done

        return await self._db.run(op)

    async def resume(self, pk: int, *, now: int) -> InstanceRecord | None:
        row = await self._fetchrow(q.RESUME, pk, now)
        return None if row is None else instance_from_row(row)

    async def restart(self, pk: int, *, from_seq: int | None, now: int) -> InstanceRecord | None:
        async def op(conn: asyncpg.Connection) -> InstanceRecord | None:
            async with conn.transaction():
                # Bump the generation first: runners still writing are fenced from here on,
                # and the deletes below see every step written before.
                row = await conn.fetchrow(q.RESTART, now, pk)
                if row is None:
                    return None
                if from_seq is None:
                    await conn.execute(q.DELETE_ALL_EVENTS, pk)
                    await conn.execute(q.DELETE_ALL_STEPS, pk)
                else:
                    await conn.execute(q.DELETE_EVENTS_OF_WIPED, pk, from_seq)
                    await conn.execute(q.DELETE_STEPS_FROM, pk, from_seq)
                    for key, attempts in await conn.fetch(q.RUNNING_STEPS, pk):
                        kept = without_cut_attempt(attempts)
                        if kept is not None:
                            await conn.execute(q.SET_STEP_ATTEMPTS, kept, pk, key)
            return instance_from_row(row)

        return await self._db.run(op)

    async def delete_instances(self, pks: Sequence[int]) -> set[int]:
        if not pks:
            return set()
        return {row[0] for row in await self._fetch(q.DELETE_INSTANCES, list(pks))}

    async def select_instance_pks(
        self, workflow_id: str, *, statuses: Collection[str], limit: int, created_by: int
    ) -> list[int]:
        rows = await self._fetch(
            q.SELECT_PKS_BY_STATUS, workflow_id, list(statuses), limit, created_by
        )
        return [r[0] for r in rows]

    async def delete_expired(self, now: int, *, limit: int) -> int:
        return _row_count(await self._execute(q.DELETE_EXPIRED, now, limit))

    # -- schedules: firing -----------------------------------------------------------------
    async def fire_schedule(
        self, schedule: ScheduleRecord, *, next_fire_at: int, instance: InstanceRecord, now: int
    ) -> InstanceRecord | None:
        async def op(conn: asyncpg.Connection) -> int | None:
            async with conn.transaction():
                advanced = _row_count(
                    await conn.execute(
                        q.ADVANCE_SCHEDULE,
                        next_fire_at,
                        schedule.workflow_id,
                        schedule.cron,
                        schedule.next_fire_at,
                    )
                )
                if not advanced:  # another engine fired this slot, or the schedule changed
                    return None
                rows = await conn.fetch(
                    q.INSERT_INSTANCES_SKIPPING, *_instance_columns([instance]), now
                )
                return None if not rows else int(rows[0]["pk"])

        pk = await self._db.run(op)
        if pk is None:
            return None
        instance.pk = pk
        return instance


def _instance_columns(batch: Sequence[InstanceRecord]) -> list[list[Any]]:
    """The columns of ``INSERT_INSTANCES``' unnest, one array each."""
    return [
        [r.workflow_id for r in batch],
        [r.id for r in batch],
        [r.version_id for r in batch],
        [r.status for r in batch],
        [r.params for r in batch],
        [r.created_on for r in batch],
        [r.modified_on for r in batch],
        [r.trigger_source for r in batch],
        [r.success_retention_ms for r in batch],
        [r.error_retention_ms for r in batch],
        [r.schedule_cron for r in batch],
        [r.scheduled_time for r in batch],
        [r.started_on for r in batch],
        [r.generation for r in batch],
        [r.lease_owner for r in batch],
        [r.lease_expires for r in batch],
    ]


def _row_count(status: str) -> int:
    """The row count of a command tag such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


def _filter_sql(workflow_id: str, where: InstanceFilter) -> tuple[list[str], list[Any]]:
    clauses = ["workflow_id = $1"]
    params: list[Any] = [workflow_id]
    if where.status is not None:
        params.append(where.status)
        clauses.append(f"status = ${len(params)}")
    if where.created_from is not None:
        params.append(where.created_from)
        clauses.append(f"created_on >= ${len(params)}::bigint")
    if where.created_to is not None:
        params.append(where.created_to)
        clauses.append(f"created_on <= ${len(params)}::bigint")
    if where.live_at is not None:
        params.append(where.live_at)
        clauses.append(f"(expires_on IS NULL OR expires_on > ${len(params)}::bigint)")
    return clauses, params
