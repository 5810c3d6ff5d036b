"""Coarse attempt deadlines fire late by at most their granularity, never early."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from stepline.engine.deadlines import Deadlines


async def test_a_long_deadline_fires_within_its_granularity() -> None:
    deadlines = Deadlines(granularity=0.01)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError), deadlines.limit(0.3):
        await asyncio.sleep(5)
    took = loop.time() - start
    assert 0.3 <= took < 0.3 + 0.1
    deadlines.close()


@pytest.mark.parametrize(
    ("granularity", "seconds"),
    [(0.01, 0.2), (1.0, 0.05)],
    ids=["slotted", "short, on a loop timer"],
)
async def test_work_that_ends_in_time_is_not_cancelled_later(
    granularity: float, seconds: float
) -> None:
    deadlines = Deadlines(granularity=granularity)
    with deadlines.limit(seconds):
        await asyncio.sleep(0.01)
    await asyncio.sleep(seconds + 0.15)  # past the deadline: nothing may be cancelled now
    deadlines.close()


async def test_a_cancellation_from_elsewhere_is_not_a_timeout() -> None:
    deadlines = Deadlines(granularity=0.01)

    async def guarded() -> None:
        with deadlines.limit(10):
            await asyncio.sleep(5)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadlines.close()


async def test_short_deadlines_are_exact() -> None:
    deadlines = Deadlines(granularity=1.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError), deadlines.limit(0.05):
        await asyncio.sleep(1)
    assert loop.time() - start < 0.5


async def test_work_that_ended_leaves_nothing_behind() -> None:
    # A finished attempt must not keep its task (and coroutine) alive until its deadline.
    deadlines = Deadlines(granularity=0.01)

    async def attempt() -> None:
        with deadlines.limit(600):
            await asyncio.sleep(0)

    finished = []
    for _ in range(100):
        task = asyncio.create_task(attempt())
        await task
        finished.append(weakref.ref(task))
    del task
    await asyncio.sleep(0)  # off the loop callback that resumed us with the last task
    gc.collect()
    assert all(ref() is None for ref in finished)
    deadlines.close()
