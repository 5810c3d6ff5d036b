"""The concurrency cap: running instances count, sleeping and waiting ones do not (§3.1, §4)."""

from __future__ import annotations

import asyncio

from stepline import WorkflowEntrypoint
from stepline.testing import TestClock, wait_for_status
from tests.conftest import SUSPEND, MakeStepline
from tests.engine.helpers import finished


class Busy(WorkflowEntrypoint):
    """Holds a step open until gate "release"; tracks how many are inside at once."""

    async def run(self, event, step):
        @step.do("busy")
        async def busy():
            env = self.env
            env.calls["inside"] += 1
            env.calls["most inside"] = max(env.calls["most inside"], env.calls["inside"])
            env.hit("entered")
            try:
                await env.gate("release").wait()
            finally:
                env.calls["inside"] -= 1
            return "done"

        return await busy()


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
