"""Fixtures for the store contract: the same tests on SQLite and on PostgreSQL.

Each PostgreSQL test gets its own database, cloned from a template migrated once per session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from stepline.store.port import Store
from stepline.store.postgres import PostgresStore
from stepline.store.sqlite import SqliteStore

from .databases import blocking, clone_database, drop_database, make_template, postgres_url

OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[str, str]]:
    """(server URL, template database name), migrated once per session."""
    url = postgres_url()
    template = blocking(make_template(url))
    yield url, template
    blocking(drop_database(url, template))


@pytest.fixture
def postgres_database(postgres_template: tuple[str, str]) -> Iterator[str]:
    """The URL of a fresh, migrated database of this test's own."""
    url, template = postgres_template
    name, db_url = blocking(clone_database(url, template))
    yield db_url
    blocking(drop_database(url, name))


@pytest.fixture(
    params=["sqlite", "sqlite-normal", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """This test's database: a SQLite file path or a PostgreSQL URL."""
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_database"))
    return str(tmp_path / "store.sqlite3")


@pytest.fixture
async def open_store(backend: str, database: str) -> AsyncIterator[OpenStore]:
    """Opens stores on this test's database; each call is another "process" on it."""
    opened: list[Store] = []

    async def open_one() -> Store:
        store: Store
        if backend == "postgres":
            store = PostgresStore(database)
        else:
            synchronous = "NORMAL" if backend == "sqlite-normal" else "FULL"
            store = SqliteStore(database, synchronous=synchronous)
        await store.open()
        opened.append(store)
        return store

    yield open_one
    for store in reversed(opened):
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()
