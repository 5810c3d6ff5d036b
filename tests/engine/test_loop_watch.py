"""A warning names the code that holds up the event loop (an ``async def`` step that blocks):
every instance, timer and request waits for it."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import pytest

from stepline.engine.loop_watch import LoopWatch, _where


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

    held, went_on = [r.getMessage() for r in caplog.records if "event loop" in r.getMessage()]
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
    assert [r for r in caplog.records if "event loop" in r.getMessage()] == []


def test_the_place_named_is_the_projects_code_not_the_library_it_calls():
    """A blocking HTTP client in a step: the innermost frames are an installed package's,
    and the step's own line is the one to change."""
    import httpx

    namespace: dict[str, Any] = {}
    # A function whose code says it is httpx's, as a blocking call's frames would.
    exec(compile("def blocking(take):\n    return take()\n", httpx.__file__, "exec"), namespace)
    inner = namespace["blocking"](sys._getframe)  # its frame, called from this test

    where = _where(inner)
    assert where.startswith(f"{__file__}:")
    assert " in test_the_place_named_is_the_projects_code_not_the_library_it_calls" in where
    assert httpx.__file__ not in where
