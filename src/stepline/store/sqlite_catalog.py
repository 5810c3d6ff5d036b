"""The SQLite store's catalog: workflows, versions, schedules and tokens.

A mixin of :class:`~stepline.store.sqlite.SqliteStore`, split out to keep each module about
one thing; it reaches the database only through the store's ``_read`` and ``_write``
(:class:`~stepline.store.sqlite_connections.Database`).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence

from stepline.errors import InvalidRequest
from stepline.store import sqlite_queries as q
from stepline.store.port import WorkflowSettings
from stepline.store.records import ScheduleRecord, TokenRecord, VersionRecord, WorkflowRecord
from stepline.store.sqlite_connections import Database
from stepline.store.sqlite_rows import (
    escape_like,
    marks,
    token_from_row,
    version_from_row,
    workflow_from_row,
)

__all__ = ["SqliteCatalog"]


class SqliteCatalog:
    """Workflows, versions, schedules and tokens on SQLite."""

    # -- workflows and versions --------------------------------------------------------------
    async def save_workflow(
        self: Database,
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
        def op(conn: sqlite3.Connection) -> tuple[WorkflowRecord, VersionRecord]:
            saved = save(conn)
            if schedules is not None:
                _put_schedules(conn, saved[0], schedules, schedule_limit)
            return saved

        def save(conn: sqlite3.Connection) -> tuple[WorkflowRecord, VersionRecord]:
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

    async def get_workflow(self: Database, account_id: str, name: str) -> WorkflowRecord | None:
        row = self._lookup(q.WORKFLOW_BY_NAME, (account_id, name))
        return None if row is None else workflow_from_row(row)

    async def get_workflow_by_id(self: Database, workflow_id: str) -> WorkflowRecord | None:
        row = self._lookup(q.WORKFLOW_BY_ID, (workflow_id,))
        return None if row is None else workflow_from_row(row)

    async def list_workflows(
        self: Database, account_id: str, *, offset: int, limit: int, search: str | None
    ) -> tuple[list[WorkflowRecord], int]:
        pattern = "%" if not search else "%" + escape_like(search) + "%"

        def op(conn: sqlite3.Connection) -> tuple[list[WorkflowRecord], int]:
            rows = conn.execute(q.LIST_WORKFLOWS, (account_id, pattern, limit, offset)).fetchall()
            total = conn.execute(q.COUNT_WORKFLOWS, (account_id, pattern)).fetchone()[0]
            return [workflow_from_row(r) for r in rows], int(total)

        return await self._read(op)

    async def count_instances_by_status(
        self: Database, workflow_ids: Sequence[str], *, live_at: int
    ) -> dict[str, dict[str, int]]:
        if not workflow_ids:
            return {}
        sql = q.COUNT_BY_STATUS.format(marks=marks(len(workflow_ids)))

        def op(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {w: {} for w in workflow_ids}
            for workflow_id, status, count in conn.execute(sql, (*workflow_ids, live_at)):
                out[workflow_id][status] = count
            return out

        return await self._read(op)

    async def delete_workflow(self: Database, workflow_id: str) -> None:
        await self._write(lambda c: c.execute(q.DELETE_WORKFLOW, (workflow_id,)))

    async def start_terminator(
        self: Database, workflow_id: str, job: str, *, lease_until: int
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return bool(conn.execute(q.START_TERMINATOR, (job, lease_until, workflow_id)).rowcount)

        return await self._write(op)

    async def end_terminator(self: Database, workflow_id: str, job: str) -> None:
        await self._write(lambda c: c.execute(q.END_TERMINATOR, (workflow_id, job)))

    async def take_terminator_jobs(
        self: Database, *, now: int, lease_until: int
    ) -> list[tuple[str, str]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(q.TAKE_TERMINATOR_JOBS, (lease_until, now)).fetchall()
            return [(workflow_id, job) for workflow_id, job in rows]

        return await self._write(op)

    async def hold_terminator_jobs(
        self: Database, jobs: Sequence[tuple[str, str]], *, lease_until: int | None
    ) -> None:
        rows = [(lease_until, workflow_id, job) for workflow_id, job in jobs]
        await self._write(lambda c: c.executemany(q.HOLD_TERMINATOR_JOB, rows))

    async def list_versions(
        self: Database, workflow_id: str, *, offset: int, limit: int
    ) -> tuple[list[VersionRecord], int]:
        def op(conn: sqlite3.Connection) -> tuple[list[VersionRecord], int]:
            rows = conn.execute(q.LIST_VERSIONS, (workflow_id, limit, offset)).fetchall()
            total = conn.execute(q.COUNT_VERSIONS, (workflow_id,)).fetchone()[0]
            return [version_from_row(r) for r in rows], int(total)

        return await self._read(op)

    async def get_version(self: Database, version_id: str) -> VersionRecord | None:
        row = self._lookup(q.VERSION_BY_ID, (version_id,))
        return None if row is None else version_from_row(row)

    # -- schedules ---------------------------------------------------------------------------
    async def list_schedules(self: Database, workflow_ids: Sequence[str]) -> list[ScheduleRecord]:
        if not workflow_ids:
            return []
        sql = q.SCHEDULES_OF.format(marks=marks(len(workflow_ids)))
        rows = await self._read(lambda c: c.execute(sql, tuple(workflow_ids)).fetchall())
        return [ScheduleRecord(*r) for r in rows]

    async def due_schedules(self: Database, now: int, *, limit: int) -> list[ScheduleRecord]:
        rows = self._lookup_rows(q.DUE_SCHEDULES, (now, limit))
        return [ScheduleRecord(*r) for r in rows]

    async def next_schedule_fire(self: Database) -> int | None:
        row = self._lookup(q.NEXT_SCHEDULE_FIRE)
        return None if row is None or row[0] is None else int(row[0])

    # -- time --------------------------------------------------------------------------------
    async def database_time_ms(self: Database) -> int | None:
        """A file of this machine's: its clock is this machine's, shared by nobody else."""
        return None

    # -- tokens ------------------------------------------------------------------------------
    async def save_token(self: Database, token: TokenRecord) -> None:
        values = (
            token.token_hash,
            token.account_id,
            int(token.can_write),
            token.name,
            token.created_on,
        )
        await self._write(lambda c: c.execute(q.INSERT_TOKEN, values))

    async def find_token(self: Database, token_hash: str) -> TokenRecord | None:
        row = self._lookup(q.TOKEN_BY_HASH, (token_hash,))
        return None if row is None else token_from_row(row)


def _put_schedules(
    conn: sqlite3.Connection,
    workflow: WorkflowRecord,
    schedules: Sequence[tuple[str, int]],
    limit: int,
) -> None:
    """Make ``schedules`` the workflow's, unless they are its expressions already."""
    current = conn.execute(q.SCHEDULES_OF.format(marks="?"), (workflow.id,)).fetchall()
    if sorted(ScheduleRecord(*r).cron for r in current) == sorted(c for c, _ in schedules):
        return  # unchanged: keep the next firing times
    others = conn.execute(q.COUNT_ACCOUNT_SCHEDULES, (workflow.account_id, workflow.id)).fetchone()
    if others[0] + len(schedules) > limit:
        raise InvalidRequest(f"an account may have at most {limit} schedules")
    conn.execute(q.DELETE_SCHEDULES, (workflow.id,))
    conn.executemany(q.INSERT_SCHEDULE, [(workflow.id, cron, first) for cron, first in schedules])
