"""The SQLite writer's two ways to commit: on the writer thread, and, when commits do not wait
for the disk and the thread is idle, on the event loop's own thread. Whichever commits a write,
writes commit in the order they were submitted, and the WAL stays bounded."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from stepline.store.sqlite_writer import SqliteWriter
from stepline.store.sqlite_writes import FencedWrite, NoSync


def _connector(path: Path, synchronous: str) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        if synchronous == "NORMAL":
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, value INTEGER)")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS instances "
            "(pk INTEGER PRIMARY KEY, generation INTEGER, value TEXT)"
        )
        return conn

    return connect


@pytest.fixture(params=["FULL", "NORMAL"])
async def writer(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqliteWriter]:
    synchronous = str(request.param)
    writer = SqliteWriter(
        _connector(tmp_path / "w.sqlite3", synchronous), inline=synchronous == "NORMAL"
    )
    await asyncio.to_thread(writer.start)
    yield writer
    await asyncio.to_thread(writer.stop)


def _append(value: int) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        return int(conn.execute("INSERT INTO log (value) VALUES (?)", (value,)).lastrowid or 0)

    return op


async def _until_idle(writer: SqliteWriter) -> None:
    """Until the writer thread has let go of the connection: it hands a caller its result
    just before it does, and a turn that finds the connection taken goes to the thread."""

    def wait() -> None:
        with writer._conn_lock:
            pass

    await asyncio.to_thread(wait)


def _values(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [v for (v,) in conn.execute("SELECT value FROM log ORDER BY id")]


async def test_writes_commit_in_the_order_they_were_submitted(
    writer: SqliteWriter, tmp_path: Path
) -> None:
    # Turns of 1 to 40 writes: small ones may commit on the loop, big ones go to the thread,
    # and a small turn must not overtake a big one the thread has not committed yet.
    # Both ``run`` and ``queue`` submit at the call, so that is the order of submission.
    rng = random.Random(7)
    pending: list[asyncio.Future[object]] = []
    value = 0
    for _ in range(60):
        for _ in range(rng.choice([1, 1, 2, 5, 40])):
            if rng.random() < 0.3:
                writer.queue(_append(value))
            else:
                pending.append(writer.run(_append(value)))
            value += 1
        await asyncio.sleep(0)
    await asyncio.gather(*pending)
    await writer.run(_append(value))  # behind every queued write
    assert _values(tmp_path / "w.sqlite3") == list(range(value + 1))


async def test_a_failing_write_is_undone_alone(writer: SqliteWriter, tmp_path: Path) -> None:
    def fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO log (value) VALUES (-1)")
        raise ValueError("no")

    ok = writer.run(_append(1))
    bad = writer.run(fails)
    results = await asyncio.gather(ok, bad, return_exceptions=True)
    assert isinstance(results[1], ValueError)
    assert _values(tmp_path / "w.sqlite3") == [1]


async def test_the_wal_stays_bounded_when_commits_run_on_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite3"
    writer = SqliteWriter(_connector(path, "NORMAL"), inline=True)
    await asyncio.to_thread(writer.start)
    try:
        # One page per commit: unchecked, 3,000 commits would leave a WAL of over 12 MB.
        for value in range(3_000):
            await writer.run(_append(value))
        await writer.run(_append(-1))
        await asyncio.sleep(0.05)  # a checkpoint asked for may still be running
        wal = await asyncio.to_thread(os.path.getsize, f"{path}-wal")
    finally:
        await asyncio.to_thread(writer.stop)
    assert wal < 4 * 1024 * 1024
    assert len(_values(path)) == 3_001


async def test_a_write_queued_just_before_stopping_is_kept(
    writer: SqliteWriter, tmp_path: Path
) -> None:
    writer.queue(_append(1))
    writer.flush()
    await asyncio.to_thread(writer.stop)
    assert _values(tmp_path / "w.sqlite3") == [1]


async def test_a_batch_of_no_sync_writes_alone_skips_the_disk_wait(
    writer: SqliteWriter, tmp_path: Path
) -> None:
    def level(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    def append_and_level(conn: sqlite3.Connection) -> int:
        _append(1)(conn)
        return level(conn)

    configured = await writer.run(level)
    assert await writer.run(NoSync(append_and_level)) == min(configured, 1)
    # Mixed with a write that must be durable, the batch waits for the disk as configured.
    gate = threading.Event()
    held = None
    if configured > 1:  # hold the writer thread so that both writes land in one batch
        held = asyncio.ensure_future(writer.run(lambda _conn: gate.wait(5)))
        await asyncio.sleep(0.01)
    mixed = asyncio.gather(writer.run(NoSync(level)), writer.run(_append(2)))
    await asyncio.sleep(0.01)
    gate.set()
    assert (await mixed)[0] == configured
    if held is not None:
        await held
    assert await writer.run(level) == configured
    assert _values(tmp_path / "w.sqlite3") == [1, 2]


async def test_a_turn_of_no_sync_writes_commits_on_the_loop_when_the_thread_is_idle(
    writer: SqliteWriter, tmp_path: Path
) -> None:
    # A claim waits for no disk in any mode: two thread switches would cost more than it.
    def thread_and_checkpointing(conn: sqlite3.Connection) -> tuple[str, int]:
        _append(1)(conn)
        limit = int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        return threading.current_thread().name, limit

    def autocheckpoint(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

    configured = await writer.run(autocheckpoint)
    await _until_idle(writer)
    thread, limit = await writer.run(NoSync(thread_and_checkpointing))
    assert thread == threading.current_thread().name
    # SQLite's own checkpoint waits for the disk: it is off while the loop commits.
    assert limit == 0
    assert await writer.run(autocheckpoint) == configured
    await _until_idle(writer)
    durable = await writer.run(lambda _conn: threading.current_thread().name)
    loop_commits_everything = configured == 0  # the NORMAL writer commits all on the loop
    assert (durable == thread) == loop_commits_everything
    assert _values(tmp_path / "w.sqlite3") == [1]


_SET_VALUE = "UPDATE instances SET value = ? WHERE pk = ? AND generation = ?"


def _set_value(pk: int, value: object) -> FencedWrite:
    return FencedWrite(_SET_VALUE, (value, pk, 1), pk, 1)


async def test_a_write_the_driver_cannot_bind_fails_alone_and_the_writer_lives_on(
    writer: SqliteWriter, tmp_path: Path
) -> None:
    """A value with no SQLite form (a lone surrogate has no UTF-8; an int beyond 64 bits)
    fails its own write only: the others of its group commit, and the writer goes on."""

    def seed(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO instances (pk, generation, value) VALUES (?, 1, 'old')",
            [(pk,) for pk in range(1, 7)],
        )

    await writer.run(seed)
    bad = {3: "lone \ud800", 5: 2**70}
    writes = [writer.run(_set_value(pk, bad.get(pk, f"new {pk}"))) for pk in range(1, 6)]
    # (A writer thread that died of it would leave every write waiting: bounded here.)
    outcomes = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 10)
    assert [type(o).__name__ for o in outcomes] == [
        "NoneType",
        "NoneType",
        "UnicodeEncodeError",
        "NoneType",
        "OverflowError",
    ]
    alone = await asyncio.wait_for(
        asyncio.gather(writer.run(_set_value(6, "\udfff")), return_exceptions=True), 10
    )
    assert isinstance(alone[0], UnicodeEncodeError)
    await writer.run(_set_value(6, "new 6"))
    with sqlite3.connect(tmp_path / "w.sqlite3") as conn:
        values = [v for (v,) in conn.execute("SELECT value FROM instances ORDER BY pk")]
    assert values == ["new 1", "new 2", "old", "new 4", "old", "new 6"]
