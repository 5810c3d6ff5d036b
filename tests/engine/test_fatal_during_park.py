"""An instance that fails while another branch of its run parks it: it ends errored.

The failure here is a step's result that is not JSON, which fails the instance; the other
branch reaches a step boundary after a pause was asked, and begins the suspension while the
failing step still executes. The signal that decides the run's end is the failure: kept as
the suspension's, in a task group or a ``gather`` that returns exceptions, the run ended
paused, and, resumed, errored with the group's error or completed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from stepline import Stepline, WorkflowEntrypoint
from tests.engine.helpers import finished
from tests.workflows.probe import Probe

ONE_ATTEMPT = {"retries": {"limit": 0}}


class FailsAsItParks(WorkflowEntrypoint):
    """``bad`` returns a set once released; ``other`` reaches a step boundary once let."""

    async def run(self, event, step):
        probe = self.env

        async def bad():
            probe.hit("bad")
            await probe.gate("release").wait()
            return {1}

        async def other():
            await probe.gate("boundary").wait()
            return await step.do("x", lambda: 1)

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
