"""One real ``stepline serve`` for the whole folder (each module marks its tests ``clients``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import RunningServer, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from start_server(tmp_path_factory.mktemp("stepline-serve"))
