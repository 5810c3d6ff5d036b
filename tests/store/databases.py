"""PostgreSQL databases for tests: the server's URL, a migrated template, clones of it.

The server comes from ``STEPLINE_TEST_POSTGRES`` (``scripts/test`` sets it when the server
answers). Unset, PostgreSQL tests are skipped, except under CI (``CI`` set), where they fail:
a CI run that silently skipped them would prove nothing.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlparse, urlunparse

import asyncpg
import pytest

from stepline.store.postgres import PostgresStore
from stepline.store.postgres_pool import Database

__all__ = [
    "blocking",
    "clone_database",
    "create_database",
    "database_url",
    "drop_database",
    "make_template",
    "opened_pool",
    "postgres_url",
    "unique_name",
]

ENV = "STEPLINE_TEST_POSTGRES"
T = TypeVar("T")


def blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end on a loop of its own thread (from sync fixtures, without
    touching the test's event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def postgres_url() -> str:
    """The test server's URL; skips the test (or fails it under CI) when there is none."""
    url = os.environ.get(ENV, "")
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{ENV} is not set under CI: the PostgreSQL tests cannot run")
        pytest.skip(f"{ENV} is not set (scripts/test sets it when PostgreSQL is up)")
    return url


def database_url(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    return urlunparse(urlparse(url)._replace(path="/" + name))


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


async def create_database(url: str, name: str, *, template: str | None = None) -> str:
    conn = await asyncpg.connect(url)
    try:
        suffix = f" TEMPLATE {template}" if template else ""
        for attempt in range(20):
            try:
                await conn.execute(f"CREATE DATABASE {name}{suffix}")
                break
            except asyncpg.ObjectInUseError:  # someone else is cloning the template right now
                if attempt == 19:
                    raise
                await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return database_url(url, name)


async def drop_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


async def fetch_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on the database at ``url``, on a connection of its own."""
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


@asynccontextmanager
async def opened_pool(url: str) -> AsyncIterator[Database]:
    """The PostgreSQL store's pool on ``url``, one connection, open for the block."""
    db = Database(url, min_size=1, max_size=1)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def make_template(url: str) -> str:
    """A new database with every migration applied, to clone tests' databases from."""
    name = unique_name("stepline_template")
    store = PostgresStore(await create_database(url, name))
    await store.open()
    await store.close()
    return name


async def clone_database(url: str, template: str) -> tuple[str, str]:
    """A new database cloned from ``template``: (name, url)."""
    name = unique_name("stepline_t")
    return name, await create_database(url, name, template=template)
