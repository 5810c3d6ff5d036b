"""A long wait in one branch of a ``gather`` parks the instance only once the other branches
have gone as far as they can (§2.3: parallel ``gather`` is fine): their sleeps start
together, and their steps run now, not after the wait."""

from __future__ import annotations

import asyncio

import pytest

from stepline import Stepline, WorkflowEntrypoint
from tests.engine.helpers import finished, ms, step


class TwoSleeps(WorkflowEntrypoint):
    async def run(self, event, step):
        await asyncio.gather(step.sleep("a", "3 seconds"), step.sleep("b", "3 seconds"))
        return "slept"


async def test_sleeps_in_one_gather_start_together(any_stepline: Stepline):
    workflow = await any_stepline.register("two-sleeps", TwoSleeps)
    view = await finished(await workflow.create())

    assert view["output"] == "slept"
    a, b = step(view, "a-1"), step(view, "b-1")
    assert ms(b["start"]) - ms(a["start"]) < 1_000
    assert ms(b["end"]) - ms(a["end"]) < 1_000


class SleepBesideAChain(WorkflowEntrypoint):
    """A long sleep beside three steps, one after the other, and a short sleep."""

    async def run(self, event, step):
        async def chain():
            first = await step.do("first", lambda: 1)
            await step.sleep("breath", "10 milliseconds")
            second = await step.do("second", lambda: first + 1)
            return await step.do("third", lambda: second + 1)

        _, last = await asyncio.gather(step.sleep("nap", "1 hour"), chain())
        return last


class WaitBesideSteps(WorkflowEntrypoint):
    async def run(self, event, step):
        async def slow():
            await asyncio.sleep(0.1)  # longer than the instance waits in memory (50 ms)
            return "slow"

        async def chain():
            first = await step.do("slow", slow)
            return await step.do("then", lambda: first + " then")

        approval, worked = await asyncio.gather(
            step.wait_for_event("approval", "approved", timeout="1 hour"), chain()
        )
        return [approval["payload"], worked]


async def test_steps_beside_a_long_wait_for_an_event_run_before_the_event(
    suspending: Stepline,
):
    workflow = await suspending.register("wait-beside-steps", WaitBesideSteps)
    instance = await workflow.create()
    for _ in range(300):
        view = await instance.status()
        if view["status"] == "waiting":
            break
        await asyncio.sleep(0.01)
    assert view["status"] == "waiting"
    assert step(view, "then-1")["output"] == "slow then"

    await instance.send_event("approved", {"by": "ada"})
    view = await finished(instance)
    assert view["output"] == [{"by": "ada"}, "slow then"]


class SleepBesideDecoratedSteps(WorkflowEntrypoint):
    """The same, with steps declared by the decorator (each runs as a task of its own)."""

    async def run(self, event, step):
        @step.do("first")
        async def first():
            return 1

        @step.do("second")
        async def second(first):
            return first + 1

        @step.do("third")
        async def third(ctx):
            return ctx.attempt + 2

        async def chain():
            values = [await first(), await second()]
            await step.sleep("breath", "10 milliseconds")
            return [*values, await third()]

        _, last = await asyncio.gather(step.sleep("nap", "1 hour"), chain())
        return last


@pytest.mark.parametrize(
    ("flow", "output"),
    [(SleepBesideAChain, 3), (SleepBesideDecoratedSteps, [1, 2, 3])],
    ids=["direct", "decorated"],
)
async def test_steps_beside_a_long_sleep_run_before_it_ends(suspending: Stepline, flow, output):
    # (Only where the sleep parks the instance: with the test clock, a sleep in memory
    # skips its hour at once, before the steps beside it start.)
    workflow = await suspending.register("sleep-beside-steps", flow)
    view = await finished(await workflow.create())

    assert view["status"] == "complete"
    assert view["output"] == output
    nap = step(view, "nap-1")
    for name in ("first-1", "second-1", "third-1"):
        assert ms(step(view, name)["start"]) < ms(nap["end"]), name
