"""An instance that fails while another branch of its run parks it: it ends errored.

The failure here is a step's result that is not JSON, which fails the instance; the other
branch reaches a step boundary after a pause was asked, and begins the suspension while the
failing step still executes. The signal that decides the run's end is the failure: kept as
the suspension's, in a task group or a ``gather`` that returns exceptions, the run ended
paused, and, resumed, errored with the group's error or completed.

A failure that comes once the suspension is being written is stored with its step, and the
run's end waits for that write; when the instance is claimed again in between, that end is
fenced off, and the next run meets the failure as it replays the step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.engine.runner import Runner
from stepline.testing import TestClock
from tests.conftest import MakeStepline
from tests.engine.helpers import finished, stored_instance
from tests.engine.test_engine_loops import insert_orphan
from tests.workflows.probe import Probe

ONE_ATTEMPT = {"retries": {"limit": 0}}


def _branches(step, probe: Probe) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``bad``, a step body that returns a set once released, and ``other``, a branch that
    reaches a step boundary once let."""

    async def bad():
        probe.hit("bad")
        await probe.gate("release").wait()
        return {1}

    async def other():
        await probe.gate("boundary").wait()
        return await step.do("x", lambda: 1)

    return bad, other


class FailsAsItParks(WorkflowEntrypoint):
    """``bad`` returns a set once released; ``other`` reaches a step boundary once let."""

    async def run(self, event, step):
        bad, other = _branches(step, self.env)
        how = event.payload
        if how == "task group":
            async with asyncio.TaskGroup() as group:
                group.create_task(step.do("bad", bad, config=ONE_ATTEMPT))
                group.create_task(other())
        elif how == "gather returning exceptions":
            await asyncio.gather(
                step.do("bad", bad, config=ONE_ATTEMPT), other(), return_exceptions=True
            )
        elif how == "inside a step":

            async def outer():
                await asyncio.gather(step.do("bad", bad, config=ONE_ATTEMPT), other())
                return "o"

            await step.do("outer", outer, config=ONE_ATTEMPT)
        else:
            await asyncio.gather(step.do("bad", bad, config=ONE_ATTEMPT), other())
        return "done"


async def fails_as_it_parks(stepline: Stepline, probe: Probe, how: str) -> dict:
    workflow = await stepline.register("fails-as-it-parks", FailsAsItParks)
    instance = await workflow.create(params=how)
    await probe.wait_for("bad")
    await instance.pause()
    runner = stepline.engine.runner_of(next(iter(stepline.engine.runners)))
    assert runner is not None
    await until(lambda: runner.pause_requested, "the pause reaches the runner")
    probe.gate("boundary").set()
    await until(lambda: runner._suspending, "the other branch begins the suspension")
    probe.gate("release").set()
    return await finished(instance)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Until ``condition`` holds, for at most two seconds."""
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not seen: {what}")


@pytest.mark.parametrize("how", ["task group", "gather returning exceptions", "gather"])
async def test_an_instance_that_fails_as_a_branch_parks_it_ends_errored(
    stepline: Stepline, probe: Probe, how: str
):
    view = await fails_as_it_parks(stepline, probe, how)

    assert view["status"] == "errored"
    assert view["error"]["name"] == "WorkflowFatalError"
    assert "not serialisable" in view["error"]["message"]


async def test_a_step_that_a_failure_inside_it_ends_keeps_its_attempt(
    stepline: Stepline, probe: Probe
):
    """Its attempt cut by the suspension, the step was recorded failed with no attempt."""
    view = await fails_as_it_parks(stepline, probe, "inside a step")

    assert view["status"] == "errored"
    outer = next(s for s in view["steps"] if s["name"] == "outer-1")
    assert outer["success"] is False
    assert [a["error"]["name"] for a in outer["attempts"]] == ["WorkflowFatalError"]


class FailsWhileItParks(WorkflowEntrypoint):
    """``bad`` returns a set once released, inside a ``try`` that a failure of the instance
    must pass; ``other`` reaches a step boundary once let."""

    async def run(self, event, step):
        bad, other = _branches(step, self.env)

        async def caught():
            try:
                return await step.do("bad", bad, config=ONE_ATTEMPT)
            except Exception as exc:
                return f"caught {type(exc).__name__}"

        return await asyncio.gather(caught(), other())


async def test_a_failure_met_while_the_park_is_written_ends_the_next_run_too(
    make_stepline: MakeStepline, clock: TestClock, probe: Probe
):
    """The failure comes while the suspension's write is under way, and the instance is
    claimed again before the run's end is written (resumed at once, here): the old run's
    end is fenced off, and the new run replays the failed step. Replayed as the step's
    error, the failure was caught by the workflow's ``try``, and the instance completed.

    The first attempt after a crash stores its start before its code runs (``_careful``):
    its step is not yet executing as the suspension begins, and fails as it is written."""
    stepline = await make_stepline(lease="600 ms")
    await stepline.register("fails-while-it-parks", FailsWhileItParks)
    store: Any = stepline.store
    save_step, suspend = store.save_step, store.suspend
    parking = asyncio.Event()
    runners: list[Runner] = []

    async def started_once_parking(pk, generation, step, **kwargs):
        if step.name == "bad-1":
            await parking.wait()  # the careful start of the step, before its code
        return await save_step(pk, generation, step, **kwargs)

    async def resumed_as_it_parks(pk, generation, **kwargs):
        parking.set()
        [old] = runners
        await until(lambda: old._fatal is not None, "the failure")
        woken = await suspend(pk, generation, **kwargs)
        store.suspend = suspend
        await instance.resume()
        # Until the first run is gone: a new run's claim cancels it (it waits for this).
        await until(lambda: stepline.engine.runner_of(pk) is not old, "a new run")
        return woken

    store.save_step, store.suspend = started_once_parking, resumed_as_it_parks
    await insert_orphan(stepline, "fails-while-it-parks", clock)
    instance = await stepline.workflow("fails-while-it-parks").get("orphan")
    await until(lambda: bool(stepline.engine.runners), "the run")
    runners.extend(stepline.engine.runners.values())
    await instance.pause()
    await until(lambda: runners[0].pause_requested, "the pause reaches the runner")
    probe.gate("boundary").set()
    await probe.wait_for("bad")
    probe.gate("release").set()
    view = await finished(instance)

    again = await stored_instance(stepline, "fails-while-it-parks", "orphan")
    assert again.generation > runners[0].generation  # claimed again: a second run
    assert view["status"] == "errored", view.get("output")
    assert view["error"]["name"] == "WorkflowFatalError"
    assert "not serialisable" in view["error"]["message"]
    assert probe.calls["bad"] == 1
