"""One real ``stepline serve`` per database backend for the whole folder: every client test
runs against a server on SQLite and against one on PostgreSQL (each module marks its tests
``clients``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import store_factory

from .server import RunningServer, start_server


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp(f"stepline-serve-{request.param}")
    database = store_factory(request.param, folder)
    assert isinstance(database, str)
    yield from start_server(folder, database)
