"""The PostgreSQL pool hands connections back without a reset round trip, and still never
with a transaction left open."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from stepline.store.postgres_pool import Database

from .databases import opened_pool

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database(postgres_database: str) -> AsyncIterator[Database]:
    async with opened_pool(postgres_database) as db:
        yield db


async def test_releasing_a_connection_sends_nothing_more(
    database: Database, postgres_database: str
) -> None:
    pid = await database.run(lambda conn: conn.fetchval("SELECT pg_backend_pid()"))
    observer = await asyncpg.connect(postgres_database)
    try:
        last = await observer.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await observer.close()
    assert last == "SELECT pg_backend_pid()"  # not asyncpg's RESET ALL / UNLISTEN * ...


async def test_a_transaction_left_open_is_rolled_back_on_release(database: Database) -> None:
    async def leave_open(conn: asyncpg.Connection) -> None:
        await conn.execute("BEGIN")
        await conn.execute("CREATE TABLE scratch (x int)")

    await database.run(leave_open)

    async def look(conn: asyncpg.Connection) -> tuple[bool, bool]:
        gone = await conn.fetchval("SELECT to_regclass('scratch') IS NULL")
        return bool(gone), conn.is_in_transaction()

    assert await database.run(look) == (True, False)
