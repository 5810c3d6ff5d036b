"""One real ``stepline serve`` for the folder, and a CLI runner connected to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .live import Cli, LiveServer, start_server


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from start_server(tmp_path_factory.mktemp("cli-live-serve"))


@pytest.fixture
def cli(live_server: LiveServer) -> Cli:
    """The CLI, connected through the ``STEPLINE_*`` variables."""
    return Cli(env=live_server.stepline_env)
