"""``stepline.engine.eager``: a coroutine started at once, finished later by the same task."""

from __future__ import annotations

import asyncio

import pytest

from stepline.engine.eager import start


async def _value() -> int:
    return 7


async def _raises() -> None:
    raise ValueError("before any wait")


async def _waits(gate: asyncio.Event, seen: list[str]) -> str:
    seen.append("before")
    await gate.wait()
    seen.append("after")
    return "done"


async def _waits_forever(cleaned: list[str]) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        cleaned.append("finally")


async def test_a_coroutine_that_never_waits_finishes_in_start():
    assert start(_value()) == (True, 7)


async def test_an_error_before_any_wait_is_raised_by_start():
    with pytest.raises(ValueError, match="before any wait"):
        start(_raises())


async def test_a_coroutine_that_waits_is_finished_by_awaiting_the_rest():
    gate, seen = asyncio.Event(), []
    finished, rest = start(_waits(gate, seen))

    assert not finished
    assert seen == ["before"]
    asyncio.get_running_loop().call_later(0.01, gate.set)
    assert await rest == "done"
    assert seen == ["before", "after"]


async def test_cancelling_the_task_throws_into_the_coroutine_where_it_waits():
    cleaned: list[str] = []

    async def runner() -> None:
        _, rest = start(_waits_forever(cleaned))
        await rest

    task = asyncio.create_task(runner())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def test_a_coroutine_that_handles_the_cancellation_goes_on_and_returns():
    async def body() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            return "handled"
        return "not reached"

    async def runner() -> str:
        _, rest = start(body())
        return await rest

    task = asyncio.create_task(runner())
    await asyncio.sleep(0.01)
    task.cancel()
    assert await task == "handled"


async def test_closing_the_rest_closes_the_coroutine():
    cleaned: list[str] = []

    _, rest = start(_waits_forever(cleaned))
    awaiting = rest.__await__()
    next(awaiting)
    awaiting.close()
    assert cleaned == ["finally"]
