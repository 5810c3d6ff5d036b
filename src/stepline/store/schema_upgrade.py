"""Apply a database's pending migrations and nothing else: ``stepline migrate``, a deploy step.

Opening a store migrates too. Doing it apart lets the processes that serve run as a
PostgreSQL role that may only read and write Stepline's tables, while the deploy applies the
migrations as one that may create and alter them (the database's owner). A database that a
newer Stepline migrated is refused here as at a start
(:func:`~stepline.store.migrations.refuse_newer_schema`).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from stepline.store import sqlite_queries
from stepline.store.migrations import Migration, load_migrations
from stepline.store.open import open_store
from stepline.store.sqlite import SqliteStore

__all__ = ["SchemaUpgrade", "upgrade_schema"]


@dataclass(frozen=True, slots=True)
class SchemaUpgrade:
    database: str
    """The database as it may be shown: a SQLite path, or a URL without its password."""
    applied: list[Migration]
    """The migrations applied now, in order; none when the schema was current."""
    current: Migration
    """The newest migration this Stepline has: the one the schema is at now."""


async def upgrade_schema(url: str) -> SchemaUpgrade:
    """Apply the migrations the database at ``url`` lacks (``open_store``'s URLs)."""
    store = open_store(url)
    if isinstance(store, SqliteStore):
        backend = "sqlite"
        before = _recorded(store.path)
        # SQLite migrates in the writer's transaction at open, and nothing else at open needs
        # a privilege that writing does not: opening is applying.
        await store.open()
        await store.close()
        applied = _recorded(store.path) - before
        shown = str(store.path)
    else:
        from stepline.store.postgres import PostgresStore  # asyncpg only when asked for
        from stepline.store.postgres_access import public_url

        assert isinstance(store, PostgresStore)
        backend = "postgres"
        applied = {m.number for m in await store.apply_migrations()}
        shown = public_url(store.dsn)
    known = load_migrations(backend)
    return SchemaUpgrade(shown, [m for m in known if m.number in applied], known[-1])


def _recorded(path: Path) -> set[int]:
    """The migrations ``schema_migrations`` records in the SQLite file at ``path``; none for
    a file that does not exist yet or has no such table (or is not a database, which opening
    it then says)."""
    if not path.exists():
        return set()  # not made here: check_writable makes the folder, and says when it cannot
    try:
        with closing(sqlite3.connect(path, timeout=10)) as conn:
            return {row[0] for row in conn.execute(sqlite_queries.APPLIED_MIGRATIONS)}
    except sqlite3.Error:
        return set()
