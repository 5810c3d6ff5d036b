"""Fixtures for the PostgreSQL fleet tests: an empty database of the test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.store.databases import (
    blocking,
    create_database,
    drop_database,
    postgres_url,
    unique_name,
)


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A database with no tables: the processes under test migrate it, all at once."""
    url = postgres_url()
    name = unique_name("stepline_fleet")
    yield blocking(create_database(url, name))
    blocking(drop_database(url, name))
