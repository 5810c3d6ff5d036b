"""The concurrency cap: running instances count, sleeping and waiting ones do not (§3.1, §4)."""

from __future__ import annotations

import asyncio

from stepline import WorkflowEntrypoint
from stepline.testing import TestClock, wait_for_status
from tests.conftest import SUSPEND, MakeStepline
from tests.engine.helpers import finished


async def busy_step(env, step) -> str:
    """A step held open until gate "release"; counts how many are inside at once."""

    @step.do("busy")
    async def busy():
        env.calls["inside"] += 1
        env.calls["most inside"] = max(env.calls["most inside"], env.calls["inside"])
        env.hit("entered")
        try:
            await env.gate("release").wait()
        finally:
            env.calls["inside"] -= 1
        return "done"

    return await busy()


class Busy(WorkflowEntrypoint):
    async def run(self, event, step):
        return await busy_step(self.env, step)


class BusyOnEvent(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.wait_for_event("go", "go", timeout="1 day")
        return await busy_step(self.env, step)


async def test_at_most_the_concurrency_limit_runs_at_once(make_stepline: MakeStepline, probe):
    stepline = await make_stepline(concurrency=2)
    workflow = await stepline.register("busy", Busy)
    instances = [await workflow.create(id=f"busy-{n}") for n in range(5)]
    await probe.wait_for("entered", 2)
    await asyncio.sleep(0.1)

    statuses = sorted([(await i.status())["status"] for i in instances])
    assert statuses == ["queued"] * 3 + ["running"] * 2
    assert probe.calls["most inside"] == 2

    probe.gate("release").set()
    views = [await finished(i) for i in instances]
    assert [v["status"] for v in views] == ["complete"] * 5
    assert probe.calls["most inside"] == 2


async def test_creates_at_the_same_moment_share_the_free_slots(make_stepline: MakeStepline, probe):
    """Each create that would claim its batch for this engine holds its slots from the check
    on, so that three batches of two, each fitting alone, do not all start on two slots."""
    stepline = await make_stepline(concurrency=2)
    workflow = await stepline.register("busy", Busy)
    batches = [[{"id": f"b{n}-{m}"} for m in range(2)] for n in range(3)]
    created = await asyncio.gather(*(workflow.create_batch(b) for b in batches))
    await probe.wait_for("entered", 2)
    await asyncio.sleep(0.1)

    assert probe.calls["most inside"] == 2
    assert len(stepline.engine.runners) == 2
    probe.gate("release").set()
    views = [await finished(i) for batch in created for i in batch]
    assert [v["status"] for v in views] == ["complete"] * 6
    assert probe.calls["most inside"] == 2


async def test_events_at_the_same_moment_wake_no_more_than_the_free_slots(
    make_stepline: MakeStepline, probe, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline(concurrency=1, suspend_after=SUSPEND)
    workflow = await stepline.register("busy-on-event", BusyOnEvent)
    waiters = [await workflow.create(id=f"w{n}") for n in range(3)]
    for waiter in waiters:
        await wait_for_status(waiter, "waiting")
    await asyncio.sleep(SUSPEND / 1000 + 0.05)  # parked: no runner, no slot
    assert stepline.engine.runners == {}

    await asyncio.gather(*(w.send_event("go", None) for w in waiters))
    await probe.wait_for("entered")
    await asyncio.sleep(0.1)

    assert probe.calls["most inside"] == 1
    probe.gate("release").set()
    views = [await finished(w) for w in waiters]
    assert [v["output"] for v in views] == ["done"] * 3
    assert probe.calls["most inside"] == 1


class SleepsOrWaits(WorkflowEntrypoint):
    async def run(self, event, step):
        if event.payload == "sleep":
            await step.sleep("nap", "1 day")
        else:
            await step.wait_for_event("approval", "approved", timeout="1 day")
        return event.payload


class Quick(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("quick", lambda: "quick")


async def test_sleeping_and_waiting_instances_do_not_hold_a_slot(
    make_stepline: MakeStepline, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline(concurrency=2, suspend_after=SUSPEND)
    parked = await stepline.register("parked", SleepsOrWaits)
    sleeper = await parked.create(params="sleep")
    waiter = await parked.create(params="wait")
    await wait_for_status(sleeper, "waiting")
    await wait_for_status(waiter, "waiting")

    quick = await (await stepline.register("quick", Quick)).create()

    assert (await finished(quick, timeout=3))["output"] == "quick"
    await waiter.send_event("approved", None)
    assert (await finished(waiter))["output"] == "wait"
