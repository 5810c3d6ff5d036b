"""A long wait in one branch of a ``gather`` parks the instance only once the other branches
have gone as far as they can (§2.3: parallel ``gather`` is fine): their sleeps start
together, and their steps run now, not after the wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stepline import Stepline, WorkflowEntrypoint, WorkflowTimeoutError
from stepline.testing import StepMocks, wait_for_status
from tests.conftest import HOT, MakeStepline
from tests.engine.helpers import finished, ms, step
from tests.workflows.probe import Probe


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


class FiveWaitsOfOneType(WorkflowEntrypoint):
    async def run(self, event, step):
        waits = [
            step.wait_for_event(f"ping {n}", "ping", timeout=f"{n + 1} hours") for n in range(5)
        ]
        return [got["payload"] for got in await asyncio.gather(*waits)]


async def test_waits_of_one_type_side_by_side_take_its_events_in_the_order_they_began(
    stepline: Stepline,
):
    # On PostgreSQL each wait took its event in a statement of its own, on a connection of
    # its own: whichever committed first won, and an event sent first could go to a wait
    # begun later (which, timing out later, left the earlier one to fail the instance).
    instance = await (await stepline.register("five-waits", FiveWaitsOfOneType)).create()
    for _ in range(300):
        view = await instance.status()
        if sum(entry.get("type") == "waitForEvent" for entry in view["steps"]) == 5:
            break
        await asyncio.sleep(0.01)
    for n in range(5):
        await instance.send_event("ping", n)
    view = await finished(instance)
    assert view["output"] == [0, 1, 2, 3, 4]


class TwoWaitsAfterAHold(WorkflowEntrypoint):
    """Step "hold" blocks until gate "go" opens; then waits "first" and "second" for a ping,
    side by side."""

    async def run(self, event, step):
        @step.do("hold")
        async def hold():
            self.env.hit("holding")
            await self.env.gate("go").wait()

        await hold()

        async def first():
            try:
                return (await step.wait_for_event("first", "ping", timeout="1 hour"))["payload"]
            except WorkflowTimeoutError:
                return "timed out"

        second = step.wait_for_event("second", "ping", timeout="2 hours")
        took_first, took_second = await asyncio.gather(first(), second)
        return [took_first, took_second["payload"]]


async def test_a_wait_that_ends_without_its_event_leaves_it_to_the_next(
    make_stepline: MakeStepline, mocks: StepMocks, probe: Probe
):
    # The first wait's turn ends as it times out; the second, asleep already, takes the
    # event that was there all along, not only when another comes (or a replay, an hour on).
    mocks.force_event_timeout("first")
    stepline = await make_stepline(suspend_after="1 hour")
    instance = await (await stepline.register("two-waits", TwoWaitsAfterAHold)).create()
    await probe.wait_for("holding")
    await instance.send_event("ping", "sent before both")
    probe.gate("go").set()

    view = await finished(instance, timeout=5)
    assert view["output"] == ["timed out", "sent before both"]


class WaitsReachedOutOfOrderOnReplay(WorkflowEntrypoint):
    """Wait "early" begins first (its step "quick" finishes at once); wait "late" begins
    once step "hold" is let go by gate "go". Replayed, with both steps cached, "late" is
    reached first: "hold" is awaited in place, "quick" as a task of its own."""

    async def run(self, event, step):
        async def late():
            async def hold():
                self.env.hit("holding")
                await self.env.gate("go").wait()

            await step.do("hold", hold)
            return (await step.wait_for_event("late", "ping", timeout="2 hours"))["payload"]

        async def early():
            @step.do("quick")
            async def quick():
                return 1

            await quick()
            return (await step.wait_for_event("early", "ping", timeout="1 hour"))["payload"]

        took_late, took_early = await asyncio.gather(late(), early())
        return {"early": took_early, "late": took_late}


async def _until(instance, reached) -> None:
    for _ in range(500):
        if reached(await instance.status()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(await instance.status())


def _waits(view) -> list[dict]:
    return [entry for entry in view["steps"] if entry.get("type") == "waitForEvent"]


async def test_waits_of_one_type_keep_the_order_they_began_when_replayed(
    make_stepline: MakeStepline, probe: Probe
):
    # Queued in the order a replay reached them, the wait begun last took the first event
    # sent after the replay (while a parked instance hands it to the one begun first).
    stepline = await make_stepline(suspend_after=HOT)
    workflow = await stepline.register("out-of-order", WaitsReachedOutOfOrderOnReplay)
    instance = await workflow.create()
    await probe.wait_for("holding")
    await _until(instance, lambda view: len(_waits(view)) == 1)  # "early" has begun
    probe.gate("go").set()
    await _until(instance, lambda view: len(_waits(view)) == 2)
    await instance.pause()  # and resumed: a replay
    await wait_for_status(instance, "paused")
    await instance.resume()
    await _until(instance, lambda view: view["status"] in ("running", "waiting"))
    await asyncio.sleep(0.2)  # both waits are waiting again in the replay
    await instance.send_event("ping", "first sent")
    await _until(instance, lambda view: any(wait["finished"] for wait in _waits(view)))
    await instance.send_event("ping", "second sent")

    view = await finished(instance)
    assert view["output"] == {"early": "first sent", "late": "second sent"}


class WaitBesideAHeldChain(WorkflowEntrypoint):
    """A wait for "ping" (an hour) beside step "hold", held at gate "go", then step "after"."""

    async def run(self, event, step):
        async def chain():
            @step.do("hold")
            async def hold():
                self.env.hit("holding")
                await self.env.gate("go").wait()

            await hold()
            return await step.do("after", lambda: self.env.hit("after"))

        _, after = await asyncio.gather(
            step.wait_for_event("ping", "ping", timeout="1 hour"), chain()
        )
        return after


async def test_a_branch_an_engine_stop_cuts_off_between_steps_runs_on_the_next_engine(
    make_stepline: MakeStepline, probe: Probe, tmp_path: Path
):
    # The stop let "hold" finish and parked the instance before "after", for its wait's
    # time: the next engine ran "after" an hour later, when the wait timed out.
    first = await make_stepline(tmp_path, suspend_after="1 hour")
    await (await first.register("held-chain", WaitBesideAHeldChain)).create(id="held")
    await probe.wait_for("holding")
    stopping = asyncio.create_task(first.stop())
    await asyncio.sleep(0.05)
    probe.gate("go").set()  # the attempt the stop waits for ends
    await stopping
    assert probe.calls["after"] == 0

    second = await make_stepline(tmp_path, suspend_after="1 hour")
    await second.register("held-chain", WaitBesideAHeldChain)
    await probe.wait_for("after", timeout=5)


class TakeBesideALongerWait(WorkflowEntrypoint):
    """Wait "a" for a ping (an hour), then step "after a"; beside it, wait "b" for a pong
    (two hours)."""

    async def run(self, event, step):
        async def first():
            await step.wait_for_event("a", "ping", timeout="1 hour")
            return await step.do("after a", lambda: self.env.hit("after a"))

        async def second():
            return (await step.wait_for_event("b", "pong", timeout="2 hours"))["payload"]

        return await asyncio.gather(first(), second())


async def test_a_park_while_a_wait_takes_its_event_waits_for_the_take(
    make_stepline: MakeStepline, probe: Probe
):
    # Wait "b" parked the instance (its time in memory over) while "a" had its event in
    # hand but not yet its answer: the park wrote "a" as waiting over its take, the event
    # was no longer there to wake the instance, and "after a" ran at a's deadline.
    stepline = await make_stepline(suspend_after=500)
    take = stepline.store.consume_event

    async def slow_take(*args, **kwargs):
        event = await take(*args, **kwargs)
        if event is not None:
            await asyncio.sleep(0.8)  # answered late: b's half second ends meanwhile
        return event

    stepline.store.consume_event = slow_take
    instance = await (await stepline.register("take", TakeBesideALongerWait)).create()
    for _ in range(300):
        view = await instance.status()
        if sum(entry.get("type") == "waitForEvent" for entry in view["steps"]) == 2:
            break
        await asyncio.sleep(0.01)
    await instance.send_event("ping", "now")

    await probe.wait_for("after a", timeout=3)
    await instance.send_event("pong", "then")
    assert (await finished(instance))["output"] == [1, "then"]
