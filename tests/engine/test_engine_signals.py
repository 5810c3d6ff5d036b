"""What workflow code cannot turn into a result: the engine's own signals (a suspension, a
fatal limit) passed through ``gather(..., return_exceptions=True)``, a cancellation that
``run`` lets out, and a ``TimeoutError`` of the step's own that is not its deadline's."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.engine.step_threads import StepThreads
from stepline.testing import wait_for_status
from tests.conftest import MakeStepline
from tests.engine.helpers import finished, ms, step


class GathersASleep(WorkflowEntrypoint):
    """A sleep and a step in one gather that keeps exceptions as results."""

    async def run(self, event, step):
        results = await asyncio.gather(
            step.sleep("nap", "1 minute"), step.do("work", lambda: 1), return_exceptions=True
        )
        return [type(r).__name__ if isinstance(r, BaseException) else r for r in results]


async def test_a_suspension_gathered_as_a_result_does_not_complete_the_instance(
    suspending: Stepline,
):
    workflow = await suspending.register("gathers-a-sleep", GathersASleep)
    view = await finished(await workflow.create())

    # The run went on after the sleep, as it would have without return_exceptions.
    assert view["status"] == "complete"
    assert view["output"] == [None, 1]


class GathersPastTheLimit(WorkflowEntrypoint):
    async def run(self, event, step):
        results = await asyncio.gather(
            *(step.do(f"item {k}", lambda k=k: k) for k in range(5)), return_exceptions=True
        )
        return [type(r).__name__ if isinstance(r, BaseException) else r for r in results]


async def test_the_step_limit_gathered_as_a_result_still_fails_the_instance(stepline: Stepline):
    workflow = await stepline.register("gathers-too-many", GathersPastTheLimit, step_limit=3)
    view = await finished(await workflow.create())

    assert view["status"] == "errored"
    assert view["error"]["name"] == "WorkflowFatalError"
    assert view["error"]["message"].startswith("The limit of 3 steps has been reached.")


class GathersAnUnstorableResult(WorkflowEntrypoint):
    async def run(self, event, step):
        results = await asyncio.gather(
            step.do("fine", lambda: 1), step.do("a set", lambda: {1, 2}), return_exceptions=True
        )
        after = await step.do("after", lambda: "ran")
        return [results, after]


async def test_an_unstorable_result_gathered_as_a_result_still_fails_the_instance(
    stepline: Stepline,
):
    workflow = await stepline.register("gathers-a-set", GathersAnUnstorableResult)
    view = await finished(await workflow.create())

    assert view["status"] == "errored"
    assert view["error"]["name"] == "WorkflowFatalError"
    assert "not serialisable" in view["error"]["message"]
    assert "after-1" not in [s.get("name") for s in view["steps"]]


class LetsOutACancellation(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("before", lambda: 1)
        task = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        task.cancel()
        await task  # CancelledError, from a task of the workflow's, not from the engine
        return "unreachable"


async def test_a_cancellation_let_out_of_run_errors_the_instance(stepline: Stepline):
    workflow = await stepline.register("lets-out-a-cancellation", LetsOutACancellation)
    view = await finished(await workflow.create(), timeout=5)

    assert view["status"] == "errored"
    assert view["error"] == {
        "name": "CancelledError",
        "message": "the workflow's code raised CancelledError: a task it awaited was cancelled",
    }


async def test_a_cancellation_let_out_of_run_frees_the_concurrency_slot(stepline: Stepline):
    workflow = await stepline.register(
        "lets-out-a-cancellation", LetsOutACancellation, concurrency=1
    )
    first = await workflow.create()
    second = await workflow.create()

    assert (await finished(first, timeout=5))["status"] == "errored"
    assert (await finished(second, timeout=5))["status"] == "errored"


class RaisesItsOwnTimeout(WorkflowEntrypoint):
    async def run(self, event, step):
        async def slow_upstream():
            await asyncio.sleep(0)
            raise TimeoutError("upstream too slow")

        async def waits_for_upstream():
            await asyncio.wait_for(asyncio.sleep(10), 0.01)

        def sync_upstream():
            raise TimeoutError("sync upstream too slow")

        seen = []
        for name, fn in [("async", slow_upstream), ("wait_for", waits_for_upstream)]:
            try:
                await step.do(name, fn, config={"retries": {"limit": 0}})
            except Exception as exc:
                seen.append([name, type(exc).__name__, str(exc)])
        try:
            await step.do("sync", sync_upstream, config={"retries": {"limit": 0}})
        except Exception as exc:
            seen.append(["sync", type(exc).__name__, str(exc)])
        return seen


async def test_a_timeout_error_of_the_steps_own_is_not_its_deadline(stepline: Stepline):
    workflow = await stepline.register("raises-its-own-timeout", RaisesItsOwnTimeout)
    view = await finished(await workflow.create())

    assert view["status"] == "complete"
    assert view["output"] == [
        ["async", "TimeoutError", "upstream too slow"],
        ["wait_for", "TimeoutError", ""],
        ["sync", "TimeoutError", "sync upstream too slow"],
    ]
    assert step(view, "async-1")["attempts"][0]["error"] == {
        "name": "TimeoutError",
        "message": "upstream too slow",
    }


class OutlivesItsTimeout(WorkflowEntrypoint):
    async def run(self, event, step):
        async def hangs():
            await asyncio.sleep(10)

        try:
            await step.do("hangs", hangs, config={"retries": {"limit": 0}, "timeout": 50})
        except Exception as exc:
            return [type(exc).__name__, str(exc)]
        return None


async def test_the_deadline_itself_is_still_a_workflow_timeout(make_stepline):
    from stepline.engine.clock import SystemClock

    stepline = await make_stepline(clock=SystemClock())
    workflow = await stepline.register("outlives-its-timeout", OutlivesItsTimeout)
    view = await finished(await workflow.create())

    assert view["output"] == ["WorkflowTimeoutError", "Execution timed out after 50ms"]


class Exits(WorkflowEntrypoint):
    async def run(self, event, step):
        if event.payload == "in a step":

            def leave():
                raise SystemExit(4)

            await step.do("leave", leave, config={"retries": {"limit": 0}})
        raise SystemExit(3)


async def test_a_system_exit_in_workflow_code_errors_its_instance_not_the_engine(
    stepline: Stepline,
):
    workflow = await stepline.register("exits", Exits)
    first = await finished(await workflow.create())
    second = await finished(await workflow.create(params="in a step"))

    assert first["status"] == "errored"
    assert first["error"] == {"name": "SystemExit", "message": "3"}
    assert second["status"] == "errored"
    assert second["error"] == {"name": "SystemExit", "message": "4"}
    quick = await stepline.register("quick", QuickOnAThread)
    assert (await finished(await quick.create()))["output"] == "done"


class Alarm(BaseException):
    """A workflow's own ``BaseException``, as a library may define one to escape
    ``except Exception``."""


class RaisesItsOwnBaseException(WorkflowEntrypoint):
    async def run(self, event, step):
        config = {"retries": {"limit": 1, "delay": 10}}
        if event.payload == "async step":

            @step.do("ring", config=config)
            async def ring():
                raise Alarm("async")

            await ring()
        elif event.payload == "sync step":

            def ring_on_a_thread():
                raise Alarm("sync")

            await step.do("ring", ring_on_a_thread, config=config)
        raise Alarm("run")


@pytest.mark.parametrize(
    ("where", "message", "attempts"),
    [("async step", "async", 2), ("sync step", "sync", 2), ("run", "run", 0)],
)
async def test_a_base_exception_of_the_workflows_own_errors_its_instance(
    stepline: Stepline, where: str, message: str, attempts: int
):
    """§2.4: a step's failure is retried as its config says, then raised into ``run``; what
    ``run`` lets out errors the instance. Not only an ``Exception``: the instance was left
    ``running`` for good, its runner's task dead."""
    workflow = await stepline.register("base-exception", RaisesItsOwnBaseException)
    view = await finished(await workflow.create(params=where), timeout=5)

    assert (view["status"], view["error"]) == ("errored", {"name": "Alarm", "message": message})
    if attempts:
        errors = [a["error"] for a in step(view, "ring-1")["attempts"]]
        assert errors == [{"name": "Alarm", "message": message}] * attempts
    quick = await stepline.register("quick", QuickOnAThread)
    assert (await finished(await quick.create()))["output"] == "done"


class SleepsInATaskGroup(WorkflowEntrypoint):
    async def run(self, event, step):
        async with asyncio.TaskGroup() as group:
            for n in range(2):
                group.create_task(step.sleep(f"nap {n}", "1 second"))
        if event.payload == "past the limit":
            await step.do("the one allowed", lambda: 1)
            async with asyncio.TaskGroup() as group:
                group.create_task(step.do("one too many", lambda: 2))
        return "rested"


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        ("", "complete", None),
        (
            "past the limit",
            "errored",
            {
                "name": "WorkflowFatalError",
                "message": "The limit of 1 steps has been reached. This limit can be changed "
                "in your worker configuration.",
            },
        ),
    ],
)
async def test_the_engines_own_signals_out_of_a_task_group_decide_as_they_would_alone(
    make_stepline: MakeStepline, payload: str, status: str, error: dict | None
):
    """A task group wraps what its tasks raise: the instance parked by its sleeps is parked
    (it was errored with the group), a step past the limit fails the instance as itself."""
    stepline = await make_stepline(suspend_after="50 ms")  # each sleep parks the instance
    workflow = await stepline.register("task-group", SleepsInATaskGroup, step_limit=1)
    view = await finished(await workflow.create(params=payload), timeout=10)

    assert (view["status"], view["error"]) == (status, error)
    if status == "complete":
        assert view["output"] == "rested"


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words for it")


class FailsUnprintably(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("fail", config={"retries": {"limit": 1, "delay": 10}})
        async def fail():
            raise UnprintableError()

        await fail()


async def test_an_error_that_cannot_be_put_in_words_is_still_a_failure_of_its_step(
    stepline: Stepline,
):
    """Its ``str()`` raises: the attempt fails, is retried and recorded, under its own name
    (it was Stepline's own RuntimeError, no retry and no step recorded)."""
    workflow = await stepline.register("unprintable", FailsUnprintably)
    view = await finished(await workflow.create(), timeout=5)

    unprintable = {"name": "UnprintableError", "message": "<str() raised RuntimeError>"}
    assert (view["status"], view["error"]) == ("errored", unprintable)
    assert [a["error"] for a in step(view, "fail-1")["attempts"]] == [unprintable] * 2


_GATE = threading.Event()


class HoldsAThread(WorkflowEntrypoint):
    """A sync step that waits for ``_GATE`` (a call with no timeout of its own); with
    ``params["timeout"]`` it outlives that timeout and ``run`` returns the error's name."""

    async def run(self, event, step):
        def hold():
            _GATE.wait(10)
            return "held"

        timeout = (event.payload or {}).get("timeout")
        if timeout is None:
            return await step.do("hold", hold)
        try:
            await step.do("hold", hold, config={"retries": {"limit": 0}, "timeout": timeout})
        except Exception as exc:
            return type(exc).__name__
        return None


class QuickOnAThread(WorkflowEntrypoint):
    async def run(self, event, step):
        timeout = (event.payload or {}).get("timeout", 2000)
        return await step.do(
            "quick", lambda: "done", config={"retries": {"limit": 0}, "timeout": timeout}
        )


@contextlib.asynccontextmanager
async def step_threads(stepline: Stepline, size: int):
    """The engine's step threads, ``size`` of them, while ``_GATE`` holds what waits on it."""
    _GATE.clear()
    stepline.engine.step_threads.close()
    stepline.engine.step_threads = StepThreads(size)
    try:
        yield
    finally:
        _GATE.set()


async def test_sync_steps_that_outlive_their_timeout_leave_threads_for_the_others(
    stepline: Stepline,
):
    holds = await stepline.register("holds", HoldsAThread)
    quick = await stepline.register("quick", QuickOnAThread)
    async with step_threads(stepline, 2):
        hung = [await holds.create(params={"timeout": 100}) for _ in range(2)]
        for instance in hung:
            assert (await finished(instance))["output"] == "WorkflowTimeoutError"
        # Both threads are still in the hung calls; a new sync step gets a thread anyway.
        view = await finished(await quick.create())
        assert view["status"] == "complete"
        assert view["output"] == "done"


async def test_a_sync_step_times_out_on_its_own_work_not_on_its_wait_for_a_thread(
    stepline: Stepline,
):
    holds = await stepline.register("holds", HoldsAThread)
    quick = await stepline.register("quick", QuickOnAThread)
    async with step_threads(stepline, 1):
        holding = await holds.create()
        await asyncio.sleep(0.05)  # the one thread is taken
        waiting = await quick.create(params={"timeout": 200})
        await asyncio.sleep(0.4)  # longer than the quick step's timeout, queued all along
        _GATE.set()
        assert (await finished(holding))["output"] == "held"
        view = await finished(waiting)
        assert view["status"] == "complete"
        assert view["output"] == "done"
        # The attempt began when a thread took it up, not when it queued.
        [attempt] = step(view, "quick-1")["attempts"]
        assert ms(attempt["end"]) - ms(attempt["start"]) < 200


_RAN: list[str] = []
"""What ``CountsOnAThread``'s step function did, from its thread."""


class CountsOnAThread(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("count", lambda: _RAN.append(event.instance_id) or len(_RAN))


async def _queued_behind_a_held_thread(stepline: Stepline):
    """One step thread, held by a ``HoldsAThread`` instance, and a ``CountsOnAThread``
    instance whose sync step queues for it."""
    _RAN.clear()
    holds = await stepline.register("holds", HoldsAThread)
    counts = await stepline.register("counts", CountsOnAThread)
    await holds.create()
    await asyncio.sleep(0.05)  # the one thread is taken
    queued = await counts.create()
    await asyncio.sleep(0.05)  # its step waits for the thread
    return queued


async def test_a_stopping_engine_starts_no_sync_step_that_still_queued(
    make_stepline: MakeStepline, tmp_path
):
    """A graceful stop lets executing attempts finish; a sync attempt still waiting for a
    thread is not executing, and starts nowhere but in the next engine, as attempt 1."""
    stepline = await make_stepline(tmp_path)
    async with step_threads(stepline, 1):
        queued = await _queued_behind_a_held_thread(stepline)
        stopping = asyncio.create_task(stepline.stop())
        await asyncio.sleep(0.05)
        _GATE.set()  # the held call returns within the grace: its thread is free again
        await stopping
        assert _RAN == []

    again = await make_stepline(tmp_path)
    await again.register("counts", CountsOnAThread)
    view = await finished(await again.workflow("counts").get(queued.id))
    assert (view["status"], view["output"]) == ("complete", 1)
    [attempt] = step(view, "count-1")["attempts"]
    assert attempt["success"] is True


async def test_a_pause_withdraws_a_sync_step_that_still_queued(stepline: Stepline):
    """A sync step waiting for a thread is not in flight: the pause parks the instance at
    once, and the step runs after the resume."""
    async with step_threads(stepline, 1):
        queued = await _queued_behind_a_held_thread(stepline)
        assert await queued.pause() == "waitingForPause"
        view = await wait_for_status(queued, "paused", timeout=3)
        assert _RAN == []
        assert step(view, "count-1")["attempts"] == []
        _GATE.set()
        await queued.resume()
        view = await finished(queued)
    assert (view["status"], view["output"]) == ("complete", 1)
    assert len(step(view, "count-1")["attempts"]) == 1


class RaisesGeneratorExit(WorkflowEntrypoint):
    async def run(self, event, step):
        def on_a_thread():
            raise GeneratorExit("from a sync step")

        async def on_the_loop():
            raise GeneratorExit("from an async step")

        once = {"retries": {"limit": 0}}
        if event.payload == "sync":
            await step.do("sync", on_a_thread, config=once)
        elif event.payload == "async":
            await step.do("async", on_the_loop, config=once)
        elif event.payload == "gathered":
            await asyncio.gather(
                step.do("stay", lambda: 1), step.do("async", on_the_loop, config=once)
            )
        raise GeneratorExit("from run")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("sync", "from a sync step"),
        ("async", "from an async step"),
        ("gathered", "from an async step"),
        ("run", "from run"),
    ],
)
async def test_a_generator_exit_in_workflow_code_errors_its_instance(
    stepline: Stepline, where: str, message: str
):
    # Let out as the close of the run's coroutine would be, it ended the run's task alone:
    # the instance stayed running for good (and a restart replayed it into the same end).
    workflow = await stepline.register("generator-exit", RaisesGeneratorExit)
    view = await finished(await workflow.create(params=where))

    assert view["status"] == "errored"
    assert view["error"] == {"name": "GeneratorExit", "message": message}


class ExitsInADecoratedStep(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("leave", config={"retries": {"limit": 1, "delay": 10}})
        async def leave():
            sys.exit(5)

        if event.payload == "gathered":
            await asyncio.gather(step.do("stay", lambda: 1), leave())
        else:
            await leave()


@pytest.mark.parametrize("how", ["decorated", "gathered"])
async def test_a_system_exit_in_a_step_run_as_a_task_errors_its_instance(
    stepline: Stepline, how: str
):
    workflow = await stepline.register("exits-in-a-task", ExitsInADecoratedStep)
    view = await finished(await workflow.create(params=how))

    assert view["status"] == "errored"
    assert view["error"] == {"name": "SystemExit", "message": "5"}
    attempts = step(view, "leave-1")["attempts"]
    assert [a["error"]["name"] for a in attempts] == ["SystemExit", "SystemExit"]
    quick = await stepline.register("quick", QuickOnAThread)
    assert (await finished(await quick.create()))["output"] == "done"


class RunsOutOfItems(WorkflowEntrypoint):
    async def run(self, event, step):
        def first_item():
            return next(iter(()))  # StopIteration, from a sync step on its thread

        try:
            await step.do("first item", first_item, config={"retries": {"limit": 1, "delay": 10}})
        except RuntimeError as exc:
            return str(exc)


async def test_a_stop_iteration_in_a_sync_step_fails_its_attempts(stepline: Stepline):
    workflow = await stepline.register("runs-out-of-items", RunsOutOfItems)
    view = await finished(await workflow.create(), timeout=5)

    # As a coroutine's StopIteration becomes (PEP 479); an asyncio future cannot hold one,
    # and the attempt waited for its 10-minute timeout.
    assert (view["status"], view["output"]) == ("complete", "function raised StopIteration")
    attempts = step(view, "first item-1")["attempts"]
    assert [a["error"]["name"] for a in attempts] == ["RuntimeError", "RuntimeError"]
