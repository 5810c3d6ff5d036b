"""A database that a newer Stepline migrated is refused at open, on both backends: the older
code would run on tables it does not know. The check is at open only, so a store already open
when the newer one migrates keeps running (a rolling deploy), and the refused process writes
nothing."""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg
import pytest

from stepline.errors import ConfigError, SchemaTooNew
from stepline.store import postgres_migrations as postgres_module
from stepline.store import sqlite_connections
from stepline.store.migrations import Migration, load_migrations
from stepline.store.port import WorkflowSettings

from .conftest import OpenStore

FUTURE = "tables_of_the_future"


async def record_migration(backend: str, database: str, number: int, name: str) -> None:
    """Write what a newer Stepline's migration leaves in ``schema_migrations``."""
    if backend == "postgres":
        conn = await asyncpg.connect(database)
        try:
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_on) VALUES ($1, $2, 0)",
                number,
                name,
            )
        finally:
            await conn.close()
    else:
        with sqlite3.connect(database) as lite:
            lite.execute(
                "INSERT INTO schema_migrations (version, name, applied_on) VALUES (?, ?, 0)",
                (number, name),
            )
        lite.close()


async def fetch(backend: str, database: str, sql: str) -> list[tuple[Any, ...]]:
    if backend == "postgres":
        conn = await asyncpg.connect(database)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()
    with sqlite3.connect(database) as lite:
        rows = lite.execute(sql).fetchall()
    lite.close()
    return rows


def known(backend: str) -> Migration:
    return load_migrations("postgres" if backend == "postgres" else "sqlite")[-1]


async def test_a_database_migrated_by_a_newer_stepline_is_refused(
    backend: str, database: str, open_store: OpenStore
) -> None:
    store = await open_store()
    await store.close()
    last = known(backend)
    await record_migration(backend, database, last.number + 3, FUTURE)

    with pytest.raises(SchemaTooNew) as refused:
        await open_store()

    said = str(refused.value)
    assert said == (
        "this database was last migrated by a newer Stepline (schema migration "
        f"{last.number + 3:04d}_{FUTURE}; this Stepline knows up to "
        f"{last.number:04d}_{last.name}): upgrade Stepline to use it"
    )
    assert "\n" not in said
    assert isinstance(refused.value, ConfigError)  # the CLI shows it as one line


async def test_the_refused_process_applies_no_migration(
    backend: str, database: str, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even one this code has and the database lacks: the check comes before any."""
    store = await open_store()
    await store.close()
    last = known(backend)
    await record_migration(backend, database, last.number + 2, FUTURE)
    before = await fetch(backend, database, "SELECT * FROM schema_migrations ORDER BY version")
    pending = Migration(last.number + 1, "written_by_the_refused", "CREATE TABLE marker (x INT)")
    module = postgres_module if backend == "postgres" else sqlite_connections
    backend_name = "postgres" if backend == "postgres" else "sqlite"
    monkeypatch.setattr(
        module, "load_migrations", lambda _b: [*load_migrations(backend_name), pending]
    )

    with pytest.raises(SchemaTooNew, match=f"{last.number + 2:04d}_{FUTURE};"):
        await open_store()

    after = await fetch(backend, database, "SELECT * FROM schema_migrations ORDER BY version")
    assert after == before
    marker = (
        "SELECT 1 FROM information_schema.tables WHERE table_name = 'marker'"
        if backend == "postgres"
        else "SELECT 1 FROM sqlite_master WHERE name = 'marker'"
    )
    assert await fetch(backend, database, marker) == []


async def test_a_store_already_open_keeps_running_after_a_newer_one_migrates(
    backend: str, database: str, open_store: OpenStore
) -> None:
    """The rolling-deploy rule: the check is at open only."""
    running = await open_store()
    await record_migration(backend, database, known(backend).number + 1, FUTURE)

    workflow, _ = await running.save_workflow(
        "acct", "flow", class_name="Flow", script_name="flows", code_hash="h",
        settings=WorkflowSettings(), now=1,
    )  # fmt: skip
    assert await running.ping()
    with pytest.raises(SchemaTooNew):
        await open_store()  # an older process that starts now is refused
    assert (await running.get_workflow_by_id(workflow.id)) is not None
