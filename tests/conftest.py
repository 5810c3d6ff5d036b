"""Shared fixtures: a started Stepline on a fresh store, once per store backend.

``store_factory(kind, directory)`` is the one place that knows the backends; a new backend
is a new branch there and a new entry in ``STORE_KINDS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stepline import Stepline
from stepline.store.port import Store
from stepline.store.sqlite import SqliteStore
from stepline.testing import StepMocks, TestClock
from tests.workflows.probe import Probe

STORE_KINDS = ("sqlite", "sqlite-normal", pytest.param("postgres", marks=pytest.mark.postgres))
"""``sqlite-normal`` is SQLite with ``synchronous=NORMAL``, whose idle writer commits on the
event loop's thread instead of the writer thread."""

HOT = 3_600_000
"""``suspend_after`` (ms) under which every wait of a test stays in memory (the hot path)."""
SUSPEND = 50
"""``suspend_after`` (ms) over which every wait suspends the instance and replays ``run``."""

MakeStepline = Callable[..., Awaitable[Stepline]]


def store_factory(kind: str, directory: Path) -> str | Store:
    """A database URL (or an unopened store) of backend ``kind``, private to ``directory``."""
    if kind == "sqlite":
        return f"sqlite:///{directory / 'stepline.sqlite3'}"
    if kind == "sqlite-normal":
        return SqliteStore(directory / "stepline.sqlite3", synchronous="NORMAL")
    if kind == "postgres":
        return _postgres_database(directory)
    raise ValueError(f"unknown store backend {kind!r}")


_TEMPLATE: list[str] = []
_CLONES: list[str] = []


def _postgres_database(directory: Path) -> str:
    """A database cloned from a migrated template; the same one again for the same folder
    (a test that restarts its engine on one database passes the same ``directory``)."""
    from tests.store.databases import blocking, clone_database, make_template, postgres_url

    marker = directory / "postgres-url"
    if marker.exists():
        return marker.read_text()
    url = postgres_url()  # skips locally, fails under CI, when there is no server
    if not _TEMPLATE:
        _TEMPLATE.append(blocking(make_template(url)))
    name, clone_url = blocking(clone_database(url, _TEMPLATE[0]))
    _CLONES.append(name)
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text(clone_url)
    return clone_url


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_databases() -> Iterator[None]:
    yield
    if not _TEMPLATE:
        return
    from tests.store.databases import blocking, drop_database, postgres_url

    url = postgres_url()
    for name in [*_CLONES, *_TEMPLATE]:
        blocking(drop_database(url, name))


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def mocks() -> StepMocks:
    return StepMocks()


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
async def make_stepline(
    store_kind: str, tmp_path: Path, clock: TestClock, mocks: StepMocks, probe: Probe
) -> AsyncIterator[MakeStepline]:
    """``await make_stepline(**overrides)``: a started Stepline with the test's clock, mocks
    and probe (as ``env``); stopped at teardown. ``directory=`` reuses a database."""
    started: list[Stepline] = []

    async def make(directory: Path | None = None, **overrides: Any) -> Stepline:
        directory = directory or tmp_path
        overrides.setdefault("clock", clock)
        overrides.setdefault("hooks", mocks)
        overrides.setdefault("env", probe)
        # Steps a test leaves blocked at its end need not hold up teardown for long.
        overrides.setdefault("stop_grace", 200)
        stepline = Stepline(store_factory(store_kind, directory), **overrides)
        await stepline.start()
        started.append(stepline)
        return stepline

    yield make
    for stepline in reversed(started):
        await stepline.stop()


@pytest.fixture
async def stepline(make_stepline: MakeStepline) -> Stepline:
    """The defaults: TestClock (sleeps and backoffs instant), suspend_after 1 second."""
    return await make_stepline()


@pytest.fixture(params=[HOT, SUSPEND], ids=["hot", "suspend"])
async def any_stepline(request: pytest.FixtureRequest, make_stepline: MakeStepline) -> Stepline:
    """Once with every wait in memory, once with every wait suspended and replayed."""
    return await make_stepline(suspend_after=request.param)


@pytest.fixture
async def suspending(make_stepline: MakeStepline) -> Stepline:
    """Every wait longer than 50 ms suspends the instance, so ``run`` replays."""
    return await make_stepline(suspend_after=SUSPEND)
