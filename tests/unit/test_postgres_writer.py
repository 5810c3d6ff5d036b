"""The PostgreSQL store's batched step writes, against a stand-in for the database: which
rows go out together, in what order, and what each waiting writer learns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection

import pytest

from stepline.errors import StoreUnavailable
from stepline.store.postgres_writer import Finishes, QueuedSteps, StepBatch


def row(pk: int, key: str, status: str = "complete") -> tuple[object, ...]:
    return (pk, key, status)


class FakeDatabase:
    """Records every batch; fences out the pks in ``stale``; can be held, broken or cut."""

    def __init__(self) -> None:
        self.batches: list[StepBatch] = []
        self.ended: Finishes = {}
        self.stale: set[int] = set()
        self.refuse: set[int] = set()
        self.hold: asyncio.Event | None = None
        self.up = asyncio.Event()
        self.up.set()

    async def write(self, batch: StepBatch, finishes: Finishes) -> Collection[int]:
        if not self.up.is_set():
            raise StoreUnavailable("cut")
        if any(pk in self.refuse for pk, _, _ in batch):
            raise ValueError("a row the database refuses")
        self.batches.append(batch)
        if self.hold is not None:
            await self.hold.wait()
        passed = {pk for pk, _, _ in batch if pk not in self.stale}
        self.ended.update((pk, end) for pk, end in finishes.items() if pk in passed)
        return passed

    def rows_of(self, pk: int) -> list[str]:
        return [r[1] for batch in self.batches for p, _, rows in batch if p == pk for r in rows]


async def write_held(
    db: FakeDatabase, queue: QueuedSteps, first: tuple[object, ...]
) -> asyncio.Task[bool]:
    """Start a write of instance 1 whose flush the database holds until ``db.hold`` is set."""
    db.hold = asyncio.Event()
    return await writing(queue, [first])


async def writing(
    queue: QueuedSteps, rows: list[tuple[object, ...]], *, finish: tuple[object, ...] | None = None
) -> asyncio.Task[bool]:
    """Start a write of instance 1 (run 1) and let it reach the queue."""
    task = asyncio.create_task(queue.write(1, 1, rows, timeout=5, finish=finish))
    await asyncio.sleep(0.01)
    return task


async def written(db: FakeDatabase, pk: int, key: str) -> None:
    """Until a flush nobody waits for has sent ``key`` of instance ``pk``."""
    for _ in range(200):
        if key in db.rows_of(pk):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{key} of instance {pk} was never written")


@pytest.fixture
async def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
async def queue(db: FakeDatabase) -> AsyncIterator[QueuedSteps]:
    steps = QueuedSteps(db.write, available=db.up.wait)
    steps.start()
    yield steps
    await steps.stop(timeout=1)


async def test_concurrent_writes_of_many_instances_share_statements(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    results = await asyncio.gather(
        *(queue.write(pk, 1, [row(pk, "s")], timeout=5) for pk in range(200))
    )
    assert results == [True] * 200
    assert sorted(pk for batch in db.batches for pk, _, _ in batch) == list(range(200))
    assert len(db.batches) <= 3  # one to start with, then everything that queued behind it


async def test_a_fenced_out_instance_learns_its_run_is_stale(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    db.stale = {2}
    first, second = (queue.write(pk, 1, [row(pk, "s")], timeout=5) for pk in (1, 2))
    assert await asyncio.gather(first, second) == [True, False]


async def test_an_instance_in_flight_waits_for_its_flush_before_its_next_rows_go(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    first = await write_held(db, queue, row(1, "a"))
    second = asyncio.create_task(queue.write(1, 1, [row(1, "b")], timeout=5))
    other = asyncio.create_task(queue.write(2, 1, [row(2, "x")], timeout=5))
    await asyncio.sleep(0.05)
    # A second flush went out for instance 2, but not with instance 1's newer row.
    assert db.rows_of(1) == ["a"] and db.rows_of(2) == ["x"]
    assert not second.done()
    db.hold.set()
    assert await asyncio.gather(first, second, other) == [True, True, True]
    assert db.rows_of(1) == ["a", "b"]


async def test_a_later_write_of_the_same_step_replaces_the_queued_one(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    blocker = await write_held(db, queue, row(1, "first"))
    queue.queue(1, 1, row(1, "s", "running"))
    done = await writing(queue, [row(1, "s", "complete")])
    db.hold.set()
    assert await asyncio.gather(blocker, done) == [True, True]
    sent = [r for batch in db.batches for p, _, rows in batch if p == 1 for r in rows]
    assert sent == [row(1, "first"), row(1, "s", "complete")]


async def test_a_bad_row_fails_only_its_own_instances_write(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    db.refuse = {3}
    results = await asyncio.gather(
        *(queue.write(pk, 1, [row(pk, "s")], timeout=5) for pk in range(1, 6)),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [bool, bool, ValueError, bool, bool]
    assert all(db.rows_of(pk) == ["s"] for pk in (1, 2, 4, 5))
    assert db.rows_of(3) == []


async def test_an_outage_outlasting_the_grace_raises_and_the_rows_land_later(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    db.up.clear()
    with pytest.raises(StoreUnavailable):
        await queue.write(1, 1, [row(1, "s")], timeout=0.2)
    assert db.rows_of(1) == []
    db.up.set()
    await written(db, 1, "s")
    assert db.rows_of(1) == ["s"]


async def test_a_newer_run_of_the_instance_tells_the_older_writer_it_is_stale(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    blocker = await write_held(db, queue, row(1, "a"))
    older = await writing(queue, [row(1, "b")])
    queue.queue(1, 2, row(1, "c"))
    assert await older is False
    assert await queue.write(1, 1, [row(1, "d")], timeout=5) is False  # gen 2 is queued
    db.hold.set()
    assert await blocker is True
    await written(db, 1, "c")
    assert db.rows_of(1) == ["a", "c"]


async def test_take_waits_for_a_waiting_writers_rows_to_land_first(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    blocker = await write_held(db, queue, row(1, "a"))
    waiting = await writing(queue, [row(1, "b")])
    taking = asyncio.create_task(queue.take(1, 1, timeout=5))
    await asyncio.sleep(0.02)
    assert not taking.done()
    db.hold.set()
    assert await taking == []  # both writes went out in flushes of their own, in order
    assert await asyncio.gather(blocker, waiting) == [True, True]
    assert db.rows_of(1) == ["a", "b"]


async def test_stop_settles_writers_whose_rows_could_not_be_sent(db: FakeDatabase) -> None:
    steps = QueuedSteps(db.write, available=db.up.wait)
    steps.start()
    db.up.clear()
    waiting = asyncio.create_task(steps.write(1, 1, [row(1, "s")], timeout=30))
    await asyncio.sleep(0.05)
    await steps.stop(timeout=0.1)
    with pytest.raises(StoreUnavailable):
        await waiting


async def test_runs_end_in_the_same_batches_as_other_instances_steps(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    db.stale = {3}
    writes = [queue.write(pk, 1, [row(pk, "s")], timeout=5) for pk in (1, 2)]
    ends = [queue.write(pk, 1, [], timeout=5, finish=("complete", pk)) for pk in (3, 4)]
    assert await asyncio.gather(*writes, *ends) == [True, True, False, True]
    assert db.ended == {4: ("complete", 4)}
    assert len(db.batches) == 1


async def test_a_run_that_ends_takes_its_queued_rows_along(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    blocker = await write_held(db, queue, row(1, "a"))
    queue.queue(1, 1, row(1, "b", "running"))
    ending = await writing(queue, [], finish=("errored", 1))
    assert db.ended == {}  # not before the flush holding its earlier row has landed
    db.hold.set()
    assert await asyncio.gather(blocker, ending) == [True, True]
    assert db.rows_of(1) == ["a", "b"] and db.ended == {1: ("errored", 1)}
    assert [p for batch in db.batches for p, _, rows in batch if p == 1] == [1, 1]


async def test_the_end_of_a_newer_run_replaces_an_older_runs_queued_rows(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    blocker = await write_held(db, queue, row(1, "a"))
    older = await writing(queue, [row(1, "b")])
    newer = asyncio.create_task(queue.write(1, 2, [], timeout=5, finish=("terminated", 2)))
    assert await older is False
    db.hold.set()
    assert await asyncio.gather(blocker, newer) == [True, True]
    assert db.rows_of(1) == ["a"] and db.ended == {1: ("terminated", 2)}


async def test_a_cancelled_writer_leaves_the_queue_working_for_the_next(
    db: FakeDatabase, queue: QueuedSteps
) -> None:
    blocker = await write_held(db, queue, row(1, "a"))
    cancelled = await writing(queue, [row(1, "b")])
    cancelled.cancel()
    next_one = await writing(queue, [row(1, "c")])
    db.hold.set()
    assert await asyncio.gather(blocker, next_one) == [True, True]
    assert cancelled.cancelled()
    assert db.rows_of(1) == ["a", "b", "c"]  # the cancelled writer's row still went
