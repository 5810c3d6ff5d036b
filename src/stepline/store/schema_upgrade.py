"""Apply a database's pending migrations and nothing else: ``stepline migrate``, a deploy step.

Opening a store migrates too. Doing it apart lets the processes that serve run as a
PostgreSQL role that may only read and write Stepline's tables, while the deploy applies the
migrations as one that may create and alter them (the database's owner). A database that a
newer Stepline migrated is refused here as at a start
(:func:`~stepline.store.migrations.refuse_newer_schema`).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    created: bool = False
    """A SQLite file that was not there, made now: a mistyped path, perhaps."""


async def upgrade_schema(url: str) -> SchemaUpgrade:
    """Apply the migrations the database at ``url`` lacks (``open_store``'s URLs)."""
    store = open_store(url)
    if isinstance(store, SqliteStore):
        created = not store.path.exists()
        applied = await store.apply_migrations()
        return SchemaUpgrade(str(store.path), applied, load_migrations("sqlite")[-1], created)
    from stepline.store.postgres import PostgresStore  # asyncpg only when asked for
    from stepline.store.postgres_access import public_url

    assert isinstance(store, PostgresStore)
    applied = await store.apply_migrations()
    return SchemaUpgrade(public_url(store.dsn), applied, load_migrations("postgres")[-1])
