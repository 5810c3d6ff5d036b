"""The writer of a SQLite file waits for another process's write lock by trying again, not in
SQLite's busy handler; on the event loop's thread it does not wait at all."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from stepline import Stepline
from stepline.store.sqlite import SqliteStore
from stepline.store.sqlite_lock_wait import LockHeld, LockWaitingConnection
from tests.store.test_sqlite_notices import Quick

SCRIPT = "tests.store.test_sqlite_notices"


def _holder(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
    return holder


def _waiter(path: Path) -> LockWaitingConnection:
    return sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        factory=LockWaitingConnection,
        timeout=0,
    )


def test_a_statement_waits_for_another_connections_lock_and_takes_it_once_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lock.sqlite3"
    holder, waiter = _holder(path), _waiter(path)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    took: list[float] = []

    def take() -> None:
        waiter.execute("BEGIN IMMEDIATE")
        took.append(time.monotonic())

    thread = threading.Thread(target=take)
    thread.start()
    time.sleep(0.05)
    assert not took  # still waiting: the holder has the lock
    released = time.monotonic()
    holder.execute("COMMIT")
    thread.join(timeout=5)
    assert took and took[0] >= released
    assert waiter.in_transaction
    assert waiter.execute("SELECT count(*) FROM t").fetchone() == (1,)
    waiter.execute("COMMIT")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        waiter.execute("SELECT * FROM missing")  # other errors are not tried again
    holder.close()
    waiter.close()


def test_told_not_to_wait_it_raises_lock_held_at_once(tmp_path: Path) -> None:
    path = tmp_path / "lock.sqlite3"
    holder, waiter = _holder(path), _waiter(path)
    holder.execute("BEGIN IMMEDIATE")
    waiter.wait_for_lock = False
    started = time.monotonic()
    with pytest.raises(LockHeld):
        waiter.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    assert time.monotonic() - started < 0.5
    assert not waiter.in_transaction
    holder.execute("COMMIT")
    waiter.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])  # nothing was written before
    assert waiter.execute("SELECT count(*) FROM t").fetchone() == (2,)
    holder.close()
    waiter.close()


async def test_a_locked_file_does_not_hold_up_the_event_loop(tmp_path: Path) -> None:
    # With NORMAL, small commits run on the loop's thread; another process holding the lock
    # must not stop the loop there: the writes go to the writer's thread, which waits.
    database = tmp_path / "stepline.sqlite3"
    store = SqliteStore(database, synchronous="NORMAL")
    async with Stepline(store, account_id="acct", run_engine=False) as stepline:
        await stepline.register("quick", Quick, script_name=SCRIPT)
        holder = _holder(database)
        holder.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        creating = asyncio.create_task(stepline.workflow("quick").create(params=1))
        await asyncio.sleep(0.3)
        assert not creating.done()
        assert ticks >= 10  # the loop ran on meanwhile
        holder.execute("COMMIT")
        handle = await asyncio.wait_for(creating, 5)
        ticker.cancel()
        assert (await handle.status())["status"] == "queued"
        holder.close()


_COMPETITOR = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
end = time.monotonic() + float(sys.argv[2])
print("ready", flush=True)
while time.monotonic() < end:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (1)")
    time.sleep(0.005)
    conn.execute("COMMIT")
    time.sleep(0.0005)
"""


async def test_writes_get_through_between_another_processs_back_to_back_commits(
    tmp_path: Path,
) -> None:
    # Another process holds the lock 5 ms at a time with half a millisecond between. Waiting
    # in SQLite's busy handler (sleeps of up to 100 ms) a write catches such a gap only now and
    # then; trying again every 0.1 ms it gets through within a few of the other's commits.
    database = tmp_path / "stepline.sqlite3"
    async with Stepline(f"sqlite:///{database}", account_id="acct", run_engine=False) as sl:
        await sl.register("quick", Quick, script_name=SCRIPT)
        _holder(database).close()
        competitor = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _COMPETITOR,
            str(database),
            "30",
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert competitor.stdout is not None
            assert (await competitor.stdout.readline()).decode().strip() == "ready"
            started = time.monotonic()
            for n in range(20):
                await sl.workflow("quick").create(params=n)
            took = time.monotonic() - started
        finally:
            competitor.kill()
            await competitor.communicate()
    assert took < 3.0, f"20 creates took {took:.1f} s"
