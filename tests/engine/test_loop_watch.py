"""A warning names the code that holds up the event loop (an ``async def`` step that blocks):
every instance, timer and request waits for it."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from stepline.engine.loop_watch import LoopWatch


def blocking_call() -> None:
    time.sleep(0.6)  # the standard library's frame is passed over: its caller is named


async def a_step_that_blocks() -> None:
    blocking_call()


async def test_a_held_up_loop_is_named_where_it_is_held(caplog: pytest.LogCaptureFixture):
    watch = LoopWatch(held_after_s=0.2)
    watch.start()
    try:
        with caplog.at_level(logging.WARNING, logger="stepline.engine"):
            await a_step_that_blocks()
            await asyncio.sleep(0.2)  # the loop comes round again
    finally:
        watch.stop()

    held, went_on = [r.getMessage() for r in caplog.records]
    assert held.startswith("the event loop has been held up for 0.")
    assert f", at {__file__}:" in held
    assert " in blocking_call <- " in held and " in a_step_that_blocks" in held
    assert went_on.startswith("the event loop went on after 0.")


async def test_a_loop_that_comes_round_is_not_reported(caplog: pytest.LogCaptureFixture):
    watch = LoopWatch(held_after_s=0.2)
    watch.start()
    try:
        with caplog.at_level(logging.WARNING, logger="stepline.engine"):
            for _ in range(10):
                time.sleep(0.05)  # noqa: ASYNC251 - held a little, less than the threshold
                await asyncio.sleep(0.01)
    finally:
        watch.stop()
    assert caplog.records == []
