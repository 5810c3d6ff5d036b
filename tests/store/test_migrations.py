"""Migrations: applied one by one (an upgrade path) they give the schema a fresh database gets,
on both backends; PostgreSQL mirrors SQLite's tables; processes that start together migrate
once."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from stepline.errors import CannotSendEvent, StoreUnavailable
from stepline.store import postgres_migrations as postgres_module
from stepline.store import postgres_queries, sqlite_connections
from stepline.store.migrations import Migration, load_migrations
from stepline.store.port import WorkflowSettings
from stepline.store.postgres import PostgresStore
from stepline.store.records import InstanceRecord
from stepline.store.sqlite import SqliteStore

from .databases import (
    blocking,
    create_database,
    drop_database,
    fetch_rows,
    postgres_url,
    unique_name,
)

Dump = list[tuple[Any, ...]]


def sqlite_catalog(path: Path) -> Dump:
    with sqlite3.connect(path) as conn:
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
        columns = [
            (table, *column)
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for column in conn.execute(f"PRAGMA table_info({table})")
        ]
    return sorted(objects) + sorted(columns)


async def postgres_catalog(url: str) -> Dump:
    conn = await asyncpg.connect(url)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, "
            "column_default, is_identity FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        )
        indexes = await conn.fetch(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = 'public' ORDER BY tablename, indexname"
        )
        constraints = await conn.fetch(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
        )
    finally:
        await conn.close()
    return [tuple(r) for r in [*columns, *indexes, *constraints]]


def applying_first(monkeypatch: pytest.MonkeyPatch, module: Any, count: int) -> None:
    """Make ``module``'s store know only its first ``count`` migrations."""
    backend = "postgres" if module is postgres_module else "sqlite"
    known: list[Migration] = load_migrations(backend)[:count]
    monkeypatch.setattr(module, "load_migrations", lambda _backend: known)


@pytest.fixture
async def postgres_databases() -> AsyncIterator[Callable[[], Any]]:
    """Makes empty databases (no migrations) and drops them afterwards."""
    url = postgres_url()
    made: list[str] = []

    async def make() -> str:
        name = unique_name("stepline_m")
        made.append(name)
        return await create_database(url, name)

    yield make
    for name in made:
        await drop_database(url, name)


async def test_sqlite_migrations_one_by_one_equal_a_fresh_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tmp_path / "fresh.sqlite3"
    store = SqliteStore(fresh)
    await store.open()
    await store.close()
    upgraded = tmp_path / "upgraded.sqlite3"
    total = len(load_migrations("sqlite"))
    for count in range(1, total + 1):
        with monkeypatch.context() as patch:
            applying_first(patch, sqlite_connections, count)
            store = SqliteStore(upgraded)
            await store.open()
            await store.close()
    store = SqliteStore(upgraded)  # opening an up-to-date database changes nothing
    await store.open()
    await store.close()
    assert sqlite_catalog(upgraded) == sqlite_catalog(fresh)
    with sqlite3.connect(upgraded) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == list(range(1, total + 1))


@pytest.mark.postgres
async def test_postgres_migrations_one_by_one_equal_a_fresh_schema(
    postgres_databases: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh, upgraded = await postgres_databases(), await postgres_databases()
    store = PostgresStore(fresh)
    await store.open()
    await store.close()
    total = len(load_migrations("postgres"))
    for count in [*range(1, total + 1), total]:
        with monkeypatch.context() as patch:
            applying_first(patch, postgres_module, count)
            store = PostgresStore(upgraded)
            await store.open()
            await store.close()
    assert await postgres_catalog(upgraded) == await postgres_catalog(fresh)


@pytest.mark.postgres
async def test_processes_starting_together_migrate_once(
    postgres_databases: Callable[[], Any],
) -> None:
    url = await postgres_databases()
    stores = [PostgresStore(url) for _ in range(5)]
    await asyncio.gather(*(s.open() for s in stores))
    for store in stores:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()
    assert sorted(versions) == list(range(1, len(load_migrations("postgres")) + 1))


@pytest.mark.postgres
async def test_a_start_waits_for_a_migration_that_outlasts_the_command_timeout(
    postgres_databases: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The lock is held while another process migrates, an index build included: however long
    that takes, a start waits for it rather than failing on the queries' timeout."""
    url = await postgres_databases()
    migrating = await asyncpg.connect(url)  # another process, migrating
    await migrating.execute("SELECT pg_advisory_lock($1)", postgres_queries.MIGRATION_LOCK)
    monkeypatch.setattr(postgres_module, "_SAY_WAITING_EVERY_S", 0.5)
    store = PostgresStore(url, command_timeout=0.5)
    opening = asyncio.create_task(store.open())
    try:
        await asyncio.sleep(1.5)
        assert not opening.done()
        # The wait is said, with the session that holds the lock.
        holder = f"PostgreSQL backend pid {migrating.get_server_pid()} holds the migration lock"
        assert any(holder in r.getMessage() for r in caplog.records), caplog.text
    finally:
        await migrating.execute("SELECT pg_advisory_unlock($1)", postgres_queries.MIGRATION_LOCK)
        await migrating.close()
    await asyncio.wait_for(opening, 30)
    await store.close()


async def test_a_migration_queued_behind_a_long_transaction_gives_up_in_one_line(
    postgres_databases: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration's DDL waiting for a table that a long transaction holds would hold up every
    query on that table behind it: it gives up after the command timeout, applies nothing of
    itself, and a later start applies it."""
    url = await postgres_databases()
    known = load_migrations("postgres")
    with monkeypatch.context() as patch:
        applying_first(patch, postgres_module, len(known) - 1)
        await _open_and_close(PostgresStore(url))
    reading = await asyncpg.connect(url)  # a long transaction of another process
    reading_tx = reading.transaction()
    await reading_tx.start()
    await reading.fetch("SELECT 1 FROM instances LIMIT 1")
    try:
        with pytest.raises(StoreUnavailable) as waited:
            await asyncio.wait_for(PostgresStore(url, command_timeout=0.5).open(), 20)
    finally:
        await reading_tx.rollback()
        await reading.close()
    said = str(waited.value)
    assert "\n" not in said
    assert f"schema migration {known[-1].number:04d}_{known[-1].name} waited over 0.5 s" in said
    store = PostgresStore(url)
    await store.open()
    try:
        assert await _applied(url) == [m.number for m in known]
    finally:
        await store.close()


async def _open_and_close(store: PostgresStore) -> None:
    await store.open()
    await store.close()


async def _applied(url: str) -> list[int]:
    return [r[0] for r in await fetch_rows(url, "SELECT version FROM schema_migrations ORDER BY 1")]


@pytest.fixture
def both_schemas(tmp_path: Path) -> Iterator[tuple[dict[str, list[str]], dict[str, list[str]]]]:
    """Columns per table, in order: (SQLite's, PostgreSQL's)."""
    url = postgres_url()
    path = tmp_path / "s.sqlite3"

    async def migrate_both() -> tuple[dict[str, list[str]], str]:
        store = SqliteStore(path)
        await store.open()
        await store.close()
        name = unique_name("stepline_m")
        pg = PostgresStore(await create_database(url, name))
        await pg.open()
        await pg.close()
        rows = await postgres_catalog(pg.dsn)
        tables: dict[str, list[str]] = {}
        for row in rows:
            if len(row) == 7:  # a column
                tables.setdefault(row[0], []).append(row[1])
        return tables, name

    pg_tables, name = blocking(migrate_both())
    with sqlite3.connect(path) as conn:
        sqlite_tables = {
            table: [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    yield sqlite_tables, pg_tables
    blocking(drop_database(url, name))


@pytest.mark.postgres
def test_postgres_tables_mirror_sqlite_tables(
    both_schemas: tuple[dict[str, list[str]], dict[str, list[str]]],
) -> None:
    sqlite_tables, pg_tables = both_schemas
    pg_tables["versions"].remove("seq")  # SQLite's implicit rowid, made explicit
    assert pg_tables == sqlite_tables


async def test_sqlite_upgrade_counts_the_events_already_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite3"
    with monkeypatch.context() as patch:
        applying_first(patch, sqlite_connections, 3)  # before untaken events were counted
        pk = await one_instance(SqliteStore(path))
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO events (instance_pk, type, payload, created_on, consumed_by) "
            "VALUES (?, ?, ?, 0, ?)",
            [(pk, t, payload, by) for t, payload, by in _EVENTS_BEFORE],
        )
    await full_after_the_upgrade(SqliteStore(path), pk)


@pytest.mark.postgres
async def test_postgres_upgrade_counts_the_events_already_waiting(
    postgres_databases: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await postgres_databases()
    with monkeypatch.context() as patch:
        applying_first(patch, postgres_module, 3)
        pk = await one_instance(PostgresStore(url))
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO events (instance_pk, type, payload, created_on, consumed_by) "
            "VALUES ($1, $2, $3, 0, $4)",
            [(pk, t, payload, by) for t, payload, by in _EVENTS_BEFORE],
        )
    finally:
        await conn.close()
    await full_after_the_upgrade(PostgresStore(url), pk)


_EVENTS_BEFORE = [
    ("go", '"é1"', None),  # 5 bytes in UTF-8, untaken
    ("other", "12", None),  # 2, untaken
    ("go", '"taken by a wait"', "wait:1:w"),  # taken: does not count
]


async def one_instance(store: SqliteStore | PostgresStore) -> int:
    """Open ``store``, give it one running instance (its pk is the answer), and close it."""
    await store.open()
    try:
        workflow, _ = await store.save_workflow(
            "acct", "flow", class_name="Flow", script_name="flows", code_hash="h",
            settings=WorkflowSettings(), now=1,
        )  # fmt: skip
        record = InstanceRecord(
            pk=0, workflow_id=workflow.id, id="a", version_id=workflow.version_id,
            status="running", params="{}", created_on=1, modified_on=1,
        )  # fmt: skip
        [inserted] = await store.insert_instances([record], skip_existing=False, now=1)
        return inserted.pk
    finally:
        await store.close()


async def full_after_the_upgrade(store: SqliteStore | PostgresStore, pk: int) -> None:
    """Open ``store`` (which migrates it): the 7 bytes sent before the upgrade count, so 3
    more fill a limit of 10 and 1 more passes it."""
    await store.open()
    try:
        await store.buffer_event(pk, "go", "123", now=2, limit=10)
        with pytest.raises(CannotSendEvent):
            await store.buffer_event(pk, "go", "1", now=2, limit=10)
    finally:
        await store.close()
