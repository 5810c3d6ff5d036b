"""A process on a shared database goes by the database's clock (``ClockKeeper``)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import cast

import pytest

from stepline.engine import shared_clock
from stepline.engine.clock import SystemClock
from stepline.engine.shared_clock import ClockKeeper
from stepline.errors import StoreUnavailable
from stepline.store.port import Store
from stepline.store.sqlite import SqliteStore
from stepline.testing import TestClock


class RemoteClock:
    """Only what the keeper asks of a store: a database whose clock is ``ahead_ms`` ahead of
    this machine's, or down."""

    def __init__(self, ahead_ms: int) -> None:
        self.ahead_ms = ahead_ms
        self.down = False
        self.reads = 0

    async def database_time_ms(self) -> int | None:
        self.reads += 1
        if self.down:
            raise StoreUnavailable("the database is down")
        await asyncio.sleep(0)
        return int(time.time() * 1000) + self.ahead_ms


async def test_the_clock_goes_by_the_databases_and_follows_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(shared_clock, "_EVERY_S", 0.01)
    database = RemoteClock(ahead_ms=-30_000)  # this machine is half a minute fast
    clock = SystemClock()
    keeper = ClockKeeper(clock, cast(Store, database))
    with caplog.at_level(logging.WARNING, logger="stepline"):
        await keeper.start()
    try:
        assert abs(clock.offset_ms + 30_000) <= 100
        assert any("30.0 s ahead of the database's" in r.getMessage() for r in caplog.records)
        database.ahead_ms = 2_000  # this machine's clock was stepped back
        for _ in range(200):
            if abs(clock.offset_ms - 2_000) <= 100:
                break
            await asyncio.sleep(0.01)
        assert abs(clock.offset_ms - 2_000) <= 100
        database.down = True  # a lost database keeps the last difference measured
        reads = database.reads
        for _ in range(200):
            if database.reads > reads + 2:
                break
            await asyncio.sleep(0.01)
        assert abs(clock.offset_ms - 2_000) <= 100
    finally:
        await keeper.stop()


async def test_a_small_difference_is_applied_without_a_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SystemClock()
    keeper = ClockKeeper(clock, cast(Store, RemoteClock(ahead_ms=300)))
    with caplog.at_level(logging.WARNING, logger="stepline"):
        await keeper.start()
    await keeper.stop()
    assert abs(clock.offset_ms - 300) <= 100
    assert not caplog.records


async def test_a_test_clock_is_never_moved() -> None:
    clock = TestClock()
    before = clock.now_ms()
    database = RemoteClock(ahead_ms=60_000)
    keeper = ClockKeeper(clock, cast(Store, database))
    await keeper.start()
    await keeper.stop()
    assert clock.now_ms() - before < 1_000  # wall time went on; 60 s was not added
    assert database.reads == 0


async def test_a_sqlite_file_has_no_clock_to_share(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "stepline.sqlite3")
    await store.open()
    try:
        clock = SystemClock()
        keeper = ClockKeeper(clock, store)
        await keeper.start()
        await keeper.stop()
        assert clock.offset_ms == 0
    finally:
        await store.close()


async def test_a_later_measurement_within_the_noise_leaves_the_clock_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shared_clock, "_EVERY_S", 0.01)
    database = RemoteClock(ahead_ms=5_000)
    clock = SystemClock()
    keeper = ClockKeeper(clock, cast(Store, database))
    await keeper.start()
    try:
        clock.offset_ms = 5_003  # three milliseconds off: below what a round trip tells
        reads = database.reads
        for _ in range(200):
            if database.reads > reads + 6:
                break
            await asyncio.sleep(0.01)
        assert clock.offset_ms == 5_003
    finally:
        await keeper.stop()
