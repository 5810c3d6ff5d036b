"""The testing helpers as their docstrings promise. ``TestClock``: sleeps and backoffs are
skipped, a ``wait_for_event`` deadline is neither skipped nor jumped past, and ``advance`` or
``advance_to`` fires what comes due, parked or waited in memory. ``wait_for_status``: gives up
at once on an instance that has ended otherwise."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from stepline import InstanceHandle, Stepline, WorkflowEntrypoint, WorkflowTimeoutError
from stepline.testing import TestClock, wait_for_status
from tests.conftest import MakeStepline
from tests.engine.helpers import FINISHED, finished
from tests.workflows.probe import Probe


class Approval(WorkflowEntrypoint):
    async def run(self, event, step):
        try:
            got = await step.wait_for_event("approval", "approved", timeout="1 hour")
        except WorkflowTimeoutError:
            return "timed out"
        return got["payload"]


class Reminder(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("a day", "1 day")
        return "reminded"


async def test_skipping_a_sleep_never_passes_a_pending_wait_deadline(stepline: Stepline):
    approval = await (await stepline.register("approval", Approval)).create()
    await wait_for_status(approval, "waiting")
    reminder = await (await stepline.register("reminder", Reminder)).create()
    await wait_for_status(reminder, "waiting")
    await asyncio.sleep(0.3)  # the engine has looked: it skipped nothing past the deadline
    assert (await approval.status())["status"] == "waiting"
    assert (await reminder.status())["status"] == "waiting"

    await approval.send_event("approved", "ada")
    assert (await finished(approval))["output"] == "ada"
    # With no deadline pending, the day is skipped.
    assert (await finished(reminder))["output"] == "reminded"


@pytest.mark.parametrize("how", ["advance", "advance_to"])
async def test_moving_the_clock_past_a_deadline_fires_it(
    stepline: Stepline, clock: TestClock, how: str
):
    approval = await (await stepline.register("approval", Approval)).create()
    await wait_for_status(approval, "waiting")
    if how == "advance":
        clock.advance("2 hours")
    else:
        clock.advance_to(clock.now_ms() + 2 * 3_600_000)
    view = await finished(approval, timeout=5)
    assert view["output"] == "timed out"


class Nap(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("nap", "10 seconds")
        return "rested"


class Flaky(WorkflowEntrypoint):
    async def run(self, event, step):
        async def charge(ctx):
            if ctx.attempt == 1:
                raise ConnectionError("card network down")
            return "charged"

        retries = {"limit": 1, "delay": "10 seconds"}
        return await step.do("charge", charge, config={"retries": retries})


class CountedApproval(WorkflowEntrypoint):
    async def run(self, event, step):
        self.env.hit("run")
        try:
            await step.wait_for_event("approval", "approved", timeout="1 hour")
        except WorkflowTimeoutError:
            return "timed out"
        return "approved"


def sleeping(view: dict[str, Any]) -> bool:
    return any(entry.get("name") == "nap-1" for entry in view["steps"])


def backing_off(view: dict[str, Any]) -> bool:
    return any(
        attempt["success"] is False for entry in view["steps"] for attempt in entry["attempts"]
    )


def waiting_for_approval(view: dict[str, Any]) -> bool:
    return any(entry.get("name") == "approval-1" for entry in view["steps"])


async def until_view(instance: InstanceHandle, reached: Callable[[dict[str, Any]], bool]) -> None:
    """Until ``reached`` holds of the describe view, for at most five seconds: a wait in
    memory has begun, its end stored, so a clock moved from now on moves past it."""
    for _ in range(500):
        if reached(await instance.status()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not seen: {reached.__name__}")


async def still_unfinished(instance: InstanceHandle) -> None:
    await asyncio.sleep(0.2)
    assert (await instance.status())["status"] not in FINISHED


@pytest.mark.parametrize(
    ("workflow", "reached", "output"),
    [(Nap, sleeping, "rested"), (Flaky, backing_off, "charged")],
    ids=["sleep", "retry backoff"],
)
async def test_moving_the_clock_ends_a_sleep_or_backoff_waited_in_memory(
    make_stepline: MakeStepline,
    workflow: type[WorkflowEntrypoint],
    reached: Callable[[dict[str, Any]], bool],
    output: str,
):
    clock = TestClock(auto_skip=False)
    # Ten seconds in memory: without the move, the instance outlasts the wait below.
    stepline = await make_stepline(clock=clock, suspend_after="1 hour")
    instance = await (await stepline.register("flow", workflow)).create()
    await until_view(instance, reached)
    await still_unfinished(instance)  # not skipped: the clock is moved by hand only
    clock.advance("1 minute")
    view = await finished(instance, timeout=3)
    assert view["output"] == output


@pytest.mark.parametrize("auto_skip", [True, False], ids=["auto_skip", "manual"])
@pytest.mark.parametrize("suspend_after", ["1 hour", "1 minute"], ids=["all hot", "hot first"])
async def test_moving_the_clock_past_a_deadline_ends_a_wait_in_memory(
    make_stepline: MakeStepline, probe: Probe, auto_skip: bool, suspend_after: str
):
    clock = TestClock(auto_skip=auto_skip)
    stepline = await make_stepline(clock=clock, suspend_after=suspend_after)
    approval = await (await stepline.register("approval", CountedApproval)).create()
    await until_view(approval, waiting_for_approval)
    await still_unfinished(approval)  # a deadline is never skipped
    clock.advance("2 hours")
    view = await finished(approval, timeout=3)
    assert view["output"] == "timed out"
    assert probe.calls["run"] == 1  # timed out in memory, not parked and replayed


class Fails(WorkflowEntrypoint):
    async def run(self, event, step):
        raise LookupError("no such order")


async def test_waiting_for_a_status_an_ended_instance_will_not_reach_fails_at_once(
    stepline: Stepline,
):
    instance = await (await stepline.register("fails", Fails)).create()
    await wait_for_status(instance, "errored")
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError, match=r"ended 'errored'.*no such order"):
        await wait_for_status(instance, "complete", timeout=30)
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_clock_shared_by_tests_keeps_no_engine_it_outlives(tmp_path):
    clock = TestClock(auto_skip=False)
    async with Stepline(f"sqlite:///{tmp_path / 'first.sqlite3'}", clock=clock) as first:
        engine = weakref.ref(first.engine)
    del first
    gc.collect()
    assert engine() is None

    # The second engine's sleeper is parked; moving the clock past its day makes it look.
    async with Stepline(f"sqlite:///{tmp_path / 'second.sqlite3'}", clock=clock) as second:
        instance = await (await second.register("reminder", Reminder)).create()
        await until_view(instance, lambda view: view["status"] == "waiting")
        clock.advance("2 days")
        assert (await finished(instance, timeout=5))["output"] == "reminded"
