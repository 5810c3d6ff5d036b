"""Bring a PostgreSQL database's schema up to date: at every open, and by ``stepline migrate``.

A start against an up-to-date database does no DDL. PostgreSQL checks the privilege to
create in the schema before it looks whether a table exists, so even ``CREATE TABLE IF NOT
EXISTS`` fails for a role that may only read and write Stepline's tables (the usual
application role; since PostgreSQL 15 nobody may create in ``public`` unless granted). Such a
role starts once the schema is current; while migrations are pending, it is refused in one
line that says to apply them with a role that may (:func:`~stepline.store.postgres_access.
cannot_migrate`).

Tables go where this connection's unqualified ``CREATE TABLE`` puts them, the first schema
of its ``search_path`` that exists, and are looked for there: the same place the store's
unqualified queries find them. Tables found only further down the path (a role's own schema
first, the owner's tables in ``public``) are refused, as is a path with no schema: either
would otherwise start a second, empty Stepline or fail with PostgreSQL's words. So is another
tool's ``schema_migrations`` (Rails', Ecto's, golang-migrate's) where Stepline's would be:
Stepline needs a schema of its own there.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from stepline.errors import StoreUnavailable
from stepline.store import postgres_queries as q
from stepline.store.migrations import Migration, load_migrations, refuse_newer_schema
from stepline.store.postgres_access import (
    cannot_migrate,
    cannot_use_tables,
    name_taken,
    no_schema,
    not_stepline_table,
    read_only_server,
    tables_elsewhere,
)

__all__ = ["migrate"]

log = logging.getLogger("stepline.store.postgres")

_LOCK_POLL_S = 0.25
_SAY_WAITING_EVERY_S = 10.0


async def migrate(conn: asyncpg.Connection, dsn: str, *, timeout: float) -> list[Migration]:
    """Apply the migrations not yet applied, one process at a time, and return them (none
    when the schema was current); refuse, before any, a database that a newer Stepline
    migrated (under the lock, so not half-way through its migrating). ``dsn``: the database's,
    for what a refusal says.

    ``conn`` has no command timeout: a migration may build an index for as long as that takes.
    Everything else is bounded by ``timeout``: each query, and each lock a migration waits for
    (``lock_timeout``: DDL queued behind a long transaction would hold up every query on its
    table meanwhile). The wait for another process's migrating is not: it is logged."""
    await _take_migration_lock(conn, timeout)
    try:
        state = await conn.fetchrow(q.SCHEMA_STATE, timeout=timeout)
        if state["schema"] is None:
            raise no_schema(dsn, await conn.fetchval("SHOW search_path", timeout=timeout))
        if state["found_in"] is not None and state["found_in"] != state["schema"]:
            # Another role's tables, further down this role's search_path: creating a fresh
            # Stepline in the first schema would silently start from nothing.
            raise tables_elsewhere(dsn, schema=state["schema"], found_in=state["found_in"])
        if state["recorded"] and state["found_in"] is None:
            # The unqualified name finds the one in this schema first, and it is not
            # Stepline's: reading its rows as Stepline's migrations fails, or takes another
            # tool's versions for Stepline's.
            raise not_stepline_table(dsn, schema=state["schema"])
        migrations = load_migrations("postgres")
        applied: dict[int, str] = {}
        if state["recorded"]:
            try:
                rows = await conn.fetch(q.APPLIED_MIGRATIONS, timeout=timeout)
                applied = {row[0]: row[1] for row in rows}
            except asyncpg.InsufficientPrivilegeError as error:
                raise cannot_use_tables(dsn, error, schema=state["schema"]) from error
        refuse_newer_schema(applied, migrations)
        if state["read_only"]:
            # A standby, say: refused at start, not at the first write. The CREATE TABLE
            # that every start ran used to find this out.
            raise read_only_server(dsn, "the server takes no writes (transaction_read_only)")
        pending = [m for m in migrations if m.number not in applied]
        done = 0
        try:
            if pending:
                await conn.execute(f"SET lock_timeout = {int(timeout * 1000)}", timeout=timeout)
            recorded = state["recorded"]
            for migration in pending:
                # Each in a transaction of its own: one that fails leaves nothing of itself
                # (the first, not even the table that records them).
                async with conn.transaction():
                    if not recorded:
                        await conn.execute(q.CREATE_MIGRATIONS_TABLE, timeout=timeout)
                        recorded = True
                    await conn.execute(migration.sql)
                    await conn.execute(
                        q.RECORD_MIGRATION,
                        migration.number,
                        migration.name,
                        int(time.time() * 1000),
                    )
                done += 1
                log.info("applied PostgreSQL migration %s", migration.label)
        except asyncpg.InsufficientPrivilegeError as error:
            schema = None if state["recorded"] else state["schema"]
            raise cannot_migrate(dsn, error, pending[done:], schema=schema) from error
        except (
            asyncpg.DuplicateTableError,
            asyncpg.DuplicateObjectError,
            asyncpg.DuplicateFunctionError,
        ) as error:
            raise name_taken(dsn, error, pending[done].label, schema=state["schema"]) from error
        except asyncpg.LockNotAvailableError:
            raise StoreUnavailable(
                f"schema migration {pending[done].label} waited over {timeout:g} s "
                "for a lock on its table, which another session's transaction holds: start "
                "again once it has ended (nothing of that migration was applied)"
            ) from None
        return pending
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", q.MIGRATION_LOCK, timeout=timeout)


async def _take_migration_lock(conn: asyncpg.Connection, timeout: float) -> None:
    """Take the migration lock, waiting while another process migrates for as long as that
    takes, and saying so every 10 seconds with the session that holds it (one left by a
    client that vanished holds it until the server notices)."""
    waited_s = 0.0
    while not await conn.fetchval(q.TRY_MIGRATION_LOCK, q.MIGRATION_LOCK, timeout=timeout):
        if waited_s and waited_s % _SAY_WAITING_EVERY_S == 0:
            holder = await conn.fetchval(q.MIGRATION_LOCK_HOLDER, q.MIGRATION_LOCK, timeout=timeout)
            log.warning(
                "waiting for another process's schema migration to end (PostgreSQL backend "
                "pid %s holds the migration lock; waited %.0f s)",
                holder,
                waited_s,
            )
        await asyncio.sleep(_LOCK_POLL_S)
        waited_s += _LOCK_POLL_S
