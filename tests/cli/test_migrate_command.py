"""``stepline migrate``: a deploy step that applies a database's pending migrations, says
which, and exits; run again, it says the schema is current. It refuses a database that a
newer Stepline migrated, as a start does."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest

from stepline.store import sqlite_connections
from stepline.store.migrations import Migration, load_migrations
from stepline.store.postgres_access import public_url
from stepline.store.sqlite import SqliteStore
from tests.cli_live.live import clean_environment, stepline_command
from tests.store.databases import (
    blocking,
    create_database,
    drop_database,
    postgres_url,
    unique_name,
)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables yet: a SQLite path with no file, an empty PostgreSQL one."""
    if backend == "sqlite":
        yield str(tmp_path / "data" / "stepline.sqlite3")
        return
    server = postgres_url()
    name = unique_name("stepline_migrate")
    yield blocking(create_database(server, name))
    blocking(drop_database(server, name))


def migrate(database: str, *, by_environment: bool = False) -> subprocess.CompletedProcess[str]:
    env = clean_environment()
    args = [*stepline_command(), "migrate"]
    if by_environment:
        env["STEPLINE_DATABASE"] = database
    else:
        args += ["--database", database]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)


def known(backend: str) -> list[Migration]:
    return load_migrations("postgres" if backend == "postgres" else "sqlite")


def named(migration: Migration) -> str:
    return f"{migration.number:04d}_{migration.name}"


async def record_future(backend: str, database: str, number: int) -> None:
    """What a newer Stepline's migration leaves in ``schema_migrations``."""
    sql = "INSERT INTO schema_migrations (version, name, applied_on) VALUES ({}, '{}', 0)"
    sql = sql.format(number, "tables_of_the_future")
    if backend == "postgres":
        conn = await asyncpg.connect(database)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
        return
    with sqlite3.connect(database) as lite:
        lite.execute(sql)
    lite.close()


def test_applies_every_migration_then_says_the_schema_is_current(
    backend: str, database: str
) -> None:
    migrations = known(backend)
    last = named(migrations[-1])
    shown = public_url(database) if backend == "postgres" else database
    # A SQLite path with no file may be a mistyped one: made, and said so.
    created = [f"created a new SQLite database at {database} (there was no file)"]

    first = migrate(database)
    again = migrate(database, by_environment=True)  # STEPLINE_DATABASE, as serve reads it

    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert first.stdout.splitlines() == [
        *(created if backend == "sqlite" else []),
        *(f"applied {named(m)}" for m in migrations),
        f"the schema of {shown} is current ({last})",
    ]
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"the schema of {shown} is current ({last}): nothing to apply"
    ]


async def test_applies_only_what_is_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "stepline.sqlite3"
    migrations = known("sqlite")
    with monkeypatch.context() as older:  # the release before the last migration
        older.setattr(sqlite_connections, "load_migrations", lambda _backend: migrations[:-1])
        store = SqliteStore(path)
        await store.open()
        await store.close()

    done = migrate(f"sqlite:///{path}")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"applied {named(migrations[-1])}",
        f"the schema of {path} is current ({named(migrations[-1])})",
    ]
    with closing(sqlite3.connect(path)) as conn:
        recorded = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(recorded) == [m.number for m in migrations]


def test_refuses_a_database_that_a_newer_stepline_migrated(backend: str, database: str) -> None:
    migrations = known(backend)
    assert migrate(database).returncode == 0
    future = migrations[-1].number + 1
    blocking(record_future(backend, database, future))

    refused = migrate(database)

    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert refused.stderr.splitlines() == [
        "error: this database was last migrated by a newer Stepline (schema migration "
        f"{future:04d}_tables_of_the_future; this Stepline knows up to "
        f"{named(migrations[-1])}): upgrade Stepline to use it"
    ]
    assert refused.stdout == ""
