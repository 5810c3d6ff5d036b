"""The PostgreSQL store's catalog: workflows, versions, schedules and tokens, and the
one-statement helpers every part of the store uses.

A mixin of :class:`~stepline.store.postgres.PostgresStore`, split out to keep each module
about one thing. The helpers are a class of their own (:class:`PostgresStatements`), the
base of this mixin and of the instances' (:mod:`~stepline.store.postgres_instances`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from stepline.errors import InvalidRequest, StoreUnavailable
from stepline.store import postgres_queries as q
from stepline.store.port import WorkflowSettings
from stepline.store.postgres_pool import Database
from stepline.store.records import ScheduleRecord, TokenRecord, VersionRecord, WorkflowRecord
from stepline.store.sqlite_rows import (
    escape_like,
    token_from_row,
    version_from_row,
    workflow_from_row,
)

__all__ = ["PostgresCatalog", "PostgresStatements"]


class PostgresStatements:
    """One statement on a pooled connection, what the store's parts run most."""

    _db: Database

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._db.run(lambda c: c.fetch(sql, *args))
        return result

    async def _fetchrow(self, sql: str, *args: Any, wait_s: float = 0.0) -> asyncpg.Record | None:
        return await self._db.run(lambda c: c.fetchrow(sql, *args), wait_s=wait_s)

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        return await self._db.run(lambda c: c.fetchval(sql, *args))

    async def _execute(self, sql: str, *args: Any) -> str:
        result: str = await self._db.run(lambda c: c.execute(sql, *args))
        return result


class PostgresCatalog(PostgresStatements):
    """Workflows, versions, schedules and tokens on PostgreSQL."""

    write_grace_s: float
    """How long a runner's write (and the lookups that start a run) waits out an outage."""

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
        schedules: Sequence[tuple[str, int]] | None = None,
        schedule_limit: int = 0,
    ) -> tuple[WorkflowRecord, VersionRecord]:
        settings_values = (
            settings.step_limit,
            settings.success_retention_ms,
            settings.error_retention_ms,
            settings.concurrency_limit,
        )
        wanted = (class_name, script_name, code_hash, *settings_values)

        async def op(conn: asyncpg.Connection) -> tuple[WorkflowRecord, VersionRecord]:
            async with conn.transaction():  # ``save``'s own is a savepoint within it
                saved = await save(conn)
                if schedules is not None:
                    await _put_schedules(conn, saved[0], schedules, schedule_limit)
                return saved

        async def save(conn: asyncpg.Connection) -> tuple[WorkflowRecord, VersionRecord]:
            async with conn.transaction():
                # Processes starting together register the same workflows: one at a time.
                await conn.execute(q.LOCK_WORKFLOW_NAME, account_id, name)
                row = await conn.fetchrow(q.WORKFLOW_BY_NAME, account_id, name)
                if row is not None:
                    workflow = workflow_from_row(row)
                    current = version_from_row(
                        await conn.fetchrow(q.VERSION_BY_ID, workflow.version_id)
                    )
                    unchanged = (
                        current.class_name,
                        current.script_name,
                        current.code_hash,
                        current.step_limit,
                        current.success_retention_ms,
                        current.error_retention_ms,
                        current.concurrency_limit,
                    ) == wanted
                    if unchanged and not force_new_version:
                        return workflow, current
                    workflow_id = workflow.id
                else:
                    workflow_id = str(uuid.uuid4())
                version = VersionRecord(
                    str(uuid.uuid4()), workflow_id, class_name, script_name, code_hash, now,
                    *settings_values,
                )  # fmt: skip
                if row is None:
                    await conn.execute(
                        q.INSERT_WORKFLOW,
                        workflow_id,
                        account_id,
                        name,
                        class_name,
                        script_name,
                        version.id,
                        now,
                        now,
                        *settings_values,
                    )
                else:
                    if schedules is not None:  # to be replaced: their rows before the workflow's
                        await conn.execute(q.LOCK_SCHEDULES_OF, workflow_id)
                    await conn.execute(
                        q.UPDATE_WORKFLOW,
                        class_name,
                        script_name,
                        version.id,
                        now,
                        *settings_values,
                        workflow_id,
                    )
                await conn.execute(
                    q.INSERT_VERSION, version.id, workflow_id, *wanted[:3], now, *settings_values
                )
                saved = await conn.fetchrow(q.WORKFLOW_BY_NAME, account_id, name)
                return workflow_from_row(saved), version

        return await self._db.run(op)

    async def get_workflow(self, account_id: str, name: str) -> WorkflowRecord | None:
        row = await self._fetchrow(q.WORKFLOW_BY_NAME, account_id, name)
        return None if row is None else workflow_from_row(row)

    async def get_workflow_by_id(self, workflow_id: str) -> WorkflowRecord | None:
        # The engine asks this before running an instance: ride out a short outage.
        row = await self._fetchrow(q.WORKFLOW_BY_ID, workflow_id, wait_s=self.write_grace_s)
        return None if row is None else workflow_from_row(row)

    async def list_workflows(
        self, account_id: str, *, offset: int, limit: int, search: str | None
    ) -> tuple[list[WorkflowRecord], int]:
        pattern = "%" if not search else "%" + escape_like(search) + "%"

        async def op(conn: asyncpg.Connection) -> tuple[list[WorkflowRecord], int]:
            async with conn.transaction(readonly=True, isolation="repeatable_read"):
                rows = await conn.fetch(q.LIST_WORKFLOWS, account_id, pattern, limit, offset)
                total = await conn.fetchval(q.COUNT_WORKFLOWS, account_id, pattern)
            return [workflow_from_row(r) for r in rows], int(total)

        return await self._db.run(op)

    async def count_instances_by_status(
        self, workflow_ids: Sequence[str], *, live_at: int
    ) -> dict[str, dict[str, int]]:
        if not workflow_ids:
            return {}
        out: dict[str, dict[str, int]] = {w: {} for w in workflow_ids}
        rows = await self._fetch(q.COUNT_BY_STATUS, list(workflow_ids), live_at)
        for workflow_id, status, count in rows:
            out[workflow_id][status] = count
        return out

    async def delete_workflow(self, workflow_id: str) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                # The schedules' rows before the workflow's, which the cascade would take after,
                # and its instances' in pk order, not the cascade's.
                await conn.execute(q.LOCK_SCHEDULES_OF, workflow_id)
                await conn.execute(q.LOCK_INSTANCES_OF, workflow_id)
                await conn.execute(q.DELETE_WORKFLOW, workflow_id)

        await self._db.run(op)

    async def start_terminator(self, workflow_id: str, job: str, *, lease_until: int) -> bool:
        return await self._execute(q.START_TERMINATOR, job, lease_until, workflow_id) == "UPDATE 1"

    async def end_terminator(self, workflow_id: str, job: str) -> None:
        await self._execute(q.END_TERMINATOR, workflow_id, job)

    async def take_terminator_jobs(self, *, now: int, lease_until: int) -> list[tuple[str, str]]:
        rows = await self._fetch(q.TAKE_TERMINATOR_JOBS, lease_until, now)
        return [(row[0], row[1]) for row in rows]

    async def hold_terminator_jobs(
        self, jobs: Sequence[tuple[str, str]], *, lease_until: int | None
    ) -> None:
        for workflow_id, job in jobs:
            await self._execute(q.HOLD_TERMINATOR_JOB, lease_until, workflow_id, job)

    async def list_versions(
        self, workflow_id: str, *, offset: int, limit: int
    ) -> tuple[list[VersionRecord], int]:
        async def op(conn: asyncpg.Connection) -> tuple[list[VersionRecord], int]:
            async with conn.transaction(readonly=True, isolation="repeatable_read"):
                rows = await conn.fetch(q.LIST_VERSIONS, workflow_id, limit, offset)
                total = await conn.fetchval(q.COUNT_VERSIONS, workflow_id)
            return [version_from_row(r) for r in rows], int(total)

        return await self._db.run(op)

    async def get_version(self, version_id: str) -> VersionRecord | None:
        # The engine asks this before running an instance: ride out a short outage.
        row = await self._fetchrow(q.VERSION_BY_ID, version_id, wait_s=self.write_grace_s)
        return None if row is None else version_from_row(row)

    # -- schedules ---------------------------------------------------------------------------
    async def list_schedules(self, workflow_ids: Sequence[str]) -> list[ScheduleRecord]:
        if not workflow_ids:
            return []
        rows = await self._fetch(q.SCHEDULES_OF, list(workflow_ids))
        return [ScheduleRecord(*r) for r in rows]

    async def due_schedules(self, now: int, *, limit: int) -> list[ScheduleRecord]:
        return [ScheduleRecord(*r) for r in await self._fetch(q.DUE_SCHEDULES, now, limit)]

    async def next_schedule_fire(self) -> int | None:
        try:
            value = await self._fetchval(q.NEXT_SCHEDULE_FIRE)
        except StoreUnavailable:
            return None
        return None if value is None else int(value)

    # -- time --------------------------------------------------------------------------------
    async def database_time_ms(self) -> int | None:
        return int(await self._fetchval(q.DATABASE_TIME_MS))

    # -- tokens ------------------------------------------------------------------------------
    async def save_token(self, token: TokenRecord) -> None:
        await self._execute(
            q.INSERT_TOKEN,
            token.token_hash,
            token.account_id,
            token.can_write,
            token.name,
            token.created_on,
        )

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        row = await self._fetchrow(q.TOKEN_BY_HASH, token_hash)
        return None if row is None else token_from_row(row)


async def _put_schedules(
    conn: asyncpg.Connection,
    workflow: WorkflowRecord,
    schedules: Sequence[tuple[str, int]],
    limit: int,
) -> None:
    """Make ``schedules`` the workflow's, unless they are its expressions already."""
    # One writer per account's schedules at a time, so the limit holds.
    await conn.execute(q.LOCK_WORKFLOW_SCHEDULES, workflow.account_id)
    current = await conn.fetch(q.SCHEDULES_OF, [workflow.id])
    if sorted(ScheduleRecord(*r).cron for r in current) == sorted(c for c, _ in schedules):
        return  # unchanged: keep the next firing times
    others = await conn.fetchval(q.COUNT_ACCOUNT_SCHEDULES, workflow.account_id, workflow.id)
    if others + len(schedules) > limit:
        raise InvalidRequest(f"an account may have at most {limit} schedules")
    await conn.execute(q.DELETE_SCHEDULES, workflow.id)
    await conn.execute(
        q.INSERT_SCHEDULES,
        workflow.id,
        [cron for cron, _ in schedules],
        [first for _, first in schedules],
    )
