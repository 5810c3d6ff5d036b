"""Steps called from a sync step's body, which waits for them on its step thread.

A sync step's body that calls ``step.do`` (through ``asyncio.run_coroutine_threadsafe``)
holds its thread until the inner step is done, and an inner sync step, or a sync delay
function, needs a thread of its own. With every thread held by bodies that wait so, the
inner ones queued for a thread for ever: each instance hung until its outer step timed out,
and its retries met the same wait.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from stepline import Stepline, WorkflowEntrypoint
from stepline.engine.step_threads import StepThreads
from tests.conftest import MakeStepline
from tests.engine.helpers import finished

OUTER = {"retries": {"limit": 0}, "timeout": "3 seconds"}
"""The outer steps' config: with no thread for the steps inside, they time out, and fail."""


_TOGETHER = threading.Barrier(2)


class SyncBodiesInside(WorkflowEntrypoint):
    """``depth`` sync steps, each called from the body of the one before; the innermost
    returns ``depth``. With ``together``, the outermost bodies call the next in pairs
    (``_TOGETHER``): both have a thread by then."""

    async def run(self, event, step):
        loop = asyncio.get_running_loop()
        depth = event.payload["depth"]
        together = event.payload.get("together", False)

        def level(n: int):
            def body() -> int:
                if n == 1 and together:
                    _TOGETHER.wait(5)
                if n == depth:
                    return n
                inner = step.do(f"level {n + 1}", level(n + 1), config=OUTER)
                return asyncio.run_coroutine_threadsafe(inner, loop).result()

            return body

        return await step.do("level 1", level(1), config=OUTER)


async def test_sync_steps_inside_sync_bodies_that_hold_every_thread_still_run(
    make_stepline: MakeStepline,
):
    """Two threads, four instances: the outer bodies took both, and the inner steps queued."""
    stepline = await make_stepline(step_threads=2)
    workflow = await stepline.register("sync-inside-sync", SyncBodiesInside)
    _TOGETHER.reset()
    params = {"depth": 2, "together": True}
    instances = [await workflow.create(params=params) for _ in range(4)]

    views = [await finished(instance) for instance in instances]

    assert [(v["status"], v["output"]) for v in views] == [("complete", 2)] * 4


async def test_sync_steps_nested_deeper_than_there_are_threads_run(make_stepline: MakeStepline):
    stepline = await make_stepline(step_threads=1)
    workflow = await stepline.register("sync-inside-sync", SyncBodiesInside)

    view = await finished(await workflow.create(params={"depth": 5}))

    assert (view["status"], view["output"]) == ("complete", 5)
    assert all(s["attempts"][-1]["success"] for s in view["steps"])


def _one_millisecond(ctx: Any, error: Exception) -> str:
    return "1 millisecond"


class RetriesInsideASyncBody(WorkflowEntrypoint):
    """Sync step "outer" calls async step "flaky", which fails once and is retried after a
    delay that a sync function gives."""

    async def run(self, event, step):
        loop = asyncio.get_running_loop()
        failed: list[int] = []

        async def flaky() -> str:
            if not failed:
                failed.append(1)
                raise RuntimeError("once")
            return "second time"

        def outer() -> str:
            inner = step.do("flaky", flaky, config={"retries": {"delay": _one_millisecond}})
            return asyncio.run_coroutine_threadsafe(inner, loop).result()

        return await step.do("outer", outer, config=OUTER)


async def test_a_sync_delay_function_inside_a_sync_body_runs(make_stepline: MakeStepline):
    """The one thread held by "outer", the delay function queued past its 5 seconds, and the
    retry was refused as a delay that never came."""
    stepline = await make_stepline(step_threads=1)
    workflow = await stepline.register("retries-inside", RetriesInsideASyncBody)

    view = await finished(await workflow.create())

    assert (view["status"], view["output"]) == ("complete", "second time")


async def test_threads_lent_to_waiting_bodies_are_given_back(stepline: Stepline):
    stepline.engine.step_threads.close()
    threads = stepline.engine.step_threads = StepThreads(4, name="given-back")
    workflow = await stepline.register("sync-inside-sync", SyncBodiesInside)
    for instance in [await workflow.create(params={"depth": 3}) for _ in range(8)]:
        assert (await finished(instance))["output"] == 3

    assert threads.lent == 0
    # The threads over ``size`` leave once they have taken up work again.
    for _ in range(3 * threads.size):
        await threads.run(lambda: None)

    def ours() -> int:
        return sum(t.name.startswith("given-back_") for t in threading.enumerate())

    for _ in range(200):  # the last of them may still be on its way out
        if ours() <= threads.size:
            break
        await asyncio.sleep(0.01)
    assert ours() <= threads.size


_AT_WORK = threading.Lock()
_at_work = [0, 0]
"""Bodies working on their threads after the step inside them, now and at most."""


def _work_a_while(seconds: float = 0.2) -> str:
    """A body's own work, on its thread, counted in ``_at_work``."""
    with _AT_WORK:
        _at_work[0] += 1
        _at_work[1] = max(_at_work)
    time.sleep(seconds)  # it waits for no step now
    with _AT_WORK:
        _at_work[0] -= 1
    return "worked"


class WorksAfterTheStepInside(WorkflowEntrypoint):
    """Sync step "outer" waits for a sync step inside it, then works on its thread."""

    async def run(self, event, step):
        loop = asyncio.get_running_loop()

        def outer() -> str:
            inner = step.do("inner", lambda: "inside")
            asyncio.run_coroutine_threadsafe(inner, loop).result()
            return _work_a_while()

        return await step.do("outer", outer, config=OUTER)


async def test_a_body_done_waiting_counts_against_the_threads_again(
    make_stepline: MakeStepline,
):
    """Lent until its body ended, each thread let one more start, which took up the next
    queued body: all four worked at once on one thread's worth, and with more instances the
    threads grew without bound."""
    views, lent = await _on_one_thread(make_stepline, WorksAfterTheStepInside, 4)

    assert [(v["status"], v["output"]) for v in views] == [("complete", "worked")] * 4
    assert _at_work[1] == 1
    assert lent == 0


_HUNG = threading.Event()
"""Holds the inner steps of ``GoesOnAfterItsInnerStepTimedOut`` until the test ends."""


class GoesOnAfterItsInnerStepTimedOut(WorkflowEntrypoint):
    """Sync step "outer" waits for a sync step inside it that hangs past its timeout, then
    works on its thread: its wait is over, though the inner step's thread is not free."""

    async def run(self, event, step):
        loop = asyncio.get_running_loop()

        def outer() -> str:
            inner = step.do(
                "inner", _HUNG.wait, config={"retries": {"limit": 0}, "timeout": "100 ms"}
            )
            try:
                asyncio.run_coroutine_threadsafe(inner, loop).result()
            except Exception:
                pass  # given up: this body goes on without it
            return _work_a_while()

        return await step.do("outer", outer, config=OUTER)


async def test_a_body_whose_inner_step_was_given_up_counts_against_the_threads_again(
    make_stepline: MakeStepline,
):
    """Its thread stayed lent until the hung inner step returned, which may be never: the
    body went on working for no thread, and the next queued body started beside it."""
    views, lent = await _on_one_thread(make_stepline, GoesOnAfterItsInnerStepTimedOut, 3)

    assert [(v["status"], v["output"]) for v in views] == [("complete", "worked")] * 3
    assert _at_work[1] == 1
    assert lent == 0


class GoesOnAfterTheStepInsideTimedOutWaiting(WorkflowEntrypoint):
    """Sync step "outer" calls sync step "middle", whose body waits for sync step "inner",
    hung (until its own timeout); "middle" times out waiting, and "outer" then works on its
    thread."""

    async def run(self, event, step):
        loop = asyncio.get_running_loop()

        def middle() -> str:
            inner = step.do(
                "inner", _HUNG.wait, config={"retries": {"limit": 0}, "timeout": "2 seconds"}
            )
            return asyncio.run_coroutine_threadsafe(inner, loop).result()

        def outer() -> str:
            inside = step.do(
                "middle", middle, config={"retries": {"limit": 0}, "timeout": "100 ms"}
            )
            try:
                asyncio.run_coroutine_threadsafe(inside, loop).result()
            except Exception:
                pass  # given up: this body goes on without it
            with _AT_WORK:
                _at_work[0] += 1
                _at_work[1] = max(_at_work)
            time.sleep(0.2)
            with _AT_WORK:
                _at_work[0] -= 1
            return "worked"

        return await step.do("outer", outer, config=OUTER)


async def test_a_body_whose_step_was_given_up_counts_again_though_a_step_inside_that_runs_on(
    make_stepline: MakeStepline,
):
    """Step "inner" lent the threads of both bodies it ran inside, until it returned: "outer",
    no longer waiting once "middle" was given up, went on working for no thread, and the
    next queued body started beside it."""
    views, lent = await _on_one_thread(make_stepline, GoesOnAfterTheStepInsideTimedOutWaiting, 3)

    assert [(v["status"], v["output"]) for v in views] == [("complete", "worked")] * 3
    assert _at_work[1] == 1
    assert lent == 0


class WaitsForWhatAStepInsideStarted(WorkflowEntrypoint):
    """Sync step "outer" calls sync step "starter", whose body starts async step "later" and
    returns without waiting; "later" calls sync step "last" once "starter" is over, and
    "outer" waits for "later"."""

    async def run(self, event, step):
        loop = asyncio.get_running_loop()
        started: list[Any] = []

        async def later() -> str:
            await asyncio.sleep(0.1)  # "starter" has returned by now
            return await step.do("last", lambda: "last", config=OUTER)

        def starter() -> str:
            later_step = step.do("later", later, config=OUTER)
            started.append(asyncio.run_coroutine_threadsafe(later_step, loop))
            return "started"

        def outer() -> str:
            asyncio.run_coroutine_threadsafe(step.do("starter", starter), loop).result()
            return started[0].result()

        return await step.do("outer", outer, config=OUTER)


async def test_a_body_waiting_for_what_a_returned_step_inside_it_started_lends_its_thread(
    make_stepline: MakeStepline,
):
    """ "starter" over, "last" lent no thread: "outer" held the only one, waiting for it, and
    "last" queued until "outer" timed out."""
    stepline = await make_stepline(step_threads=1)
    workflow = await stepline.register("waits-for-started", WaitsForWhatAStepInsideStarted)

    view = await finished(await workflow.create())

    assert (view["status"], view["output"]) == ("complete", "last")
    assert stepline.engine.step_threads.lent == 0


class ReturnsACoroutineThatWorks(WorkflowEntrypoint):
    """Sync step "outer" is a lambda around an async call, which calls sync step "inner"."""

    async def run(self, event, step):
        async def inside() -> str:
            return await step.do("inner", _work_a_while, config=OUTER)

        return await step.do("outer", lambda: inside(), config=OUTER)


async def test_a_sync_body_that_returned_a_coroutine_lends_no_thread(
    make_stepline: MakeStepline,
):
    """Its thread free once the lambda returned, "outer" lent it to "inner" all the same:
    the "inner" steps of three instances worked at once on one thread."""
    views, lent = await _on_one_thread(make_stepline, ReturnsACoroutineThatWorks, 3)

    assert [(v["status"], v["output"]) for v in views] == [("complete", "worked")] * 3
    assert _at_work[1] == 1
    assert lent == 0


class GivesUpAStepWhoseInnerStepWorksOn(WorkflowEntrypoint):
    """Sync step "outer" calls sync step "middle", given up after 100 ms while it waits for
    sync step "inner", which works for a second; "outer" then returns."""

    async def run(self, event, step):
        loop = asyncio.get_running_loop()

        def middle() -> str:
            inner = step.do("inner", lambda: _work_a_while(1.0), config=OUTER)
            return asyncio.run_coroutine_threadsafe(inner, loop).result()

        def outer() -> str:
            _work_a_while(0.05)
            given_up = {"retries": {"limit": 0}, "timeout": "100 ms"}
            try:
                asyncio.run_coroutine_threadsafe(
                    step.do("middle", middle, config=given_up), loop
                ).result()
            except Exception:
                pass  # given up: this body goes on without it
            return "gave up"

        return await step.do(
            "outer", outer, config={"retries": {"limit": 0}, "timeout": "10 seconds"}
        )


async def test_a_step_inside_a_given_up_body_counts_against_the_threads(
    make_stepline: MakeStepline,
):
    """ "middle", given up, was counted as such, and lent its thread to "inner" as well: each
    "inner" worked for no thread, and the next queued "outer" started beside it."""
    views, lent = await _on_one_thread(make_stepline, GivesUpAStepWhoseInnerStepWorksOn, 3)

    assert [(v["status"], v["output"]) for v in views] == [("complete", "gave up")] * 3
    assert _at_work[1] == 1
    assert lent == 0


async def _on_one_thread(
    make_stepline: MakeStepline, cls: type[WorkflowEntrypoint], count: int
) -> tuple[list[dict[str, Any]], int]:
    """``count`` instances of ``cls`` on one step thread, their bodies' own work counted in
    ``_at_work``: their views once finished, and the threads still lent then (read before
    ``_HUNG`` lets the inner steps that hang go)."""
    stepline = await make_stepline(step_threads=1)
    workflow = await stepline.register("on-one-thread", cls)
    _at_work[:] = [0, 0]
    _HUNG.clear()
    try:
        instances = [await workflow.create() for _ in range(count)]
        views = [await finished(instance) for instance in instances]
        return views, stepline.engine.step_threads.lent
    finally:
        _HUNG.set()
