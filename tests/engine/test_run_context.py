"""A run starts in the engine's own context (``contextvars``), whatever claimed it: the
scheduler, or a create or an event claimed in some request's context. Otherwise what a
request had set (a request id for logging, a tracing span) would follow every step of the
instances it happened to start, and only when the create, not the scheduler, started them."""

from __future__ import annotations

import asyncio
import contextvars

from stepline import WorkflowEntrypoint
from stepline.testing import TestClock, wait_for_status
from tests.conftest import SUSPEND, MakeStepline
from tests.engine.helpers import finished

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("CALLER", default="engine")


class ReadsContext(WorkflowEntrypoint):
    async def run(self, event, step):
        async def caller() -> str:
            return CALLER.get()

        before = await step.do("before", caller)
        await step.wait_for_event("go", "go", timeout="1 day")
        after = await step.do("after", caller)
        return [before, after]


async def test_a_run_is_not_in_the_context_of_the_create_or_event_that_claimed_it(
    make_stepline: MakeStepline, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=SUSPEND)
    workflow = await stepline.register("reads-context", ReadsContext)

    async def in_a_request(name: str, call):  # a task of its own, as a request has
        CALLER.set(name)
        return await call()

    instance = await asyncio.create_task(in_a_request("create request", workflow.create))
    await wait_for_status(instance, "waiting")
    await asyncio.sleep(SUSPEND / 1000 + 0.05)  # parked: the event starts a new runner
    assert stepline.engine.runners == {}
    await asyncio.create_task(in_a_request("event request", lambda: instance.send_event("go", 1)))

    assert (await finished(instance))["output"] == ["engine", "engine"]
