"""Events: buffering, FIFO per type, one waiter per event, timeouts (§2.1, §3.5)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import pytest

from stepline import Stepline, WorkflowEntrypoint, WorkflowTimeoutError
from stepline.errors import CannotSendEvent, InvalidEventType
from stepline.testing import StepMocks, TestClock, wait_for_status
from tests.conftest import SUSPEND, MakeStepline
from tests.engine.helpers import cancelled_inside, finished, poke, step

DELIVERY_TIMEOUT = 3.0
"""An event reaches a wait held in memory at once; 3 s is generous (and keeps a failure quick)."""


class WaitsFor(WorkflowEntrypoint):
    """``params``: {"hold": bool, "types": [...], "nap": bool}. With ``hold``, step "hold"
    blocks until the test opens gate "go"; then one wait per type, in order; with ``nap``
    a long sleep follows (to force a replay of the finished waits)."""

    async def run(self, event, step):
        if event.payload.get("hold"):

            @step.do("hold")
            async def hold():
                self.env.hit("holding")
                await self.env.gate("go").wait()

            await hold()
        payloads = []
        for n, event_type in enumerate(event.payload["types"]):
            self.env.hit("waiting", event_type)
            got = await step.wait_for_event(f"wait {n}", event_type, timeout="1 hour")
            payloads.append(got["payload"])
        if event.payload.get("nap"):
            await step.sleep("nap", "1 hour")
        return payloads


async def test_an_event_sent_before_the_wait_is_buffered(any_stepline: Stepline, probe):
    workflow = await any_stepline.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"hold": True, "types": ["approved"]})
    await probe.wait_for("holding")

    await instance.send_event("approved", {"user": "ada"})
    probe.gate("go").set()

    view = await finished(instance)
    assert view["output"] == [{"user": "ada"}]


async def test_an_event_sent_while_queued_is_kept(make_stepline: MakeStepline, probe):
    stepline = await make_stepline(concurrency=1)
    workflow = await stepline.register("waits-for", WaitsFor)
    blocker = await workflow.create(params={"hold": True, "types": []})
    await probe.wait_for("holding")
    waiter = await workflow.create(params={"types": ["approved"]})
    assert (await waiter.status())["status"] == "queued"

    await waiter.send_event("approved", "early")
    probe.gate("go").set()

    assert (await finished(blocker))["status"] == "complete"
    assert (await finished(waiter))["output"] == ["early"]


async def test_an_event_sent_while_waiting_is_delivered(any_stepline: Stepline, probe):
    workflow = await any_stepline.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"types": ["approved"], "nap": True})
    await probe.wait_for("waiting")

    await instance.send_event("approved", {"ok": True})

    view = await finished(instance, timeout=DELIVERY_TIMEOUT)
    assert view["output"] == [{"ok": True}]
    wait = step(view, "wait 0-1")
    assert wait["type"] == "waitForEvent"
    assert wait["finished"] is True
    assert wait["output"] == {"ok": True}


async def test_an_event_that_wakes_a_parked_instance_starts_its_runner_at_once(
    suspending: Stepline, probe
):
    workflow = await suspending.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"types": ["approved"]})
    await wait_for_status(instance, "waiting")

    await instance.send_event("approved", "now")
    # Claimed with the event's own write: running here before any scheduling pass.
    assert [r.instance.id for r in suspending.engine.runners.values()] == [instance.id]

    assert (await finished(instance))["output"] == ["now"]


async def test_an_event_whose_sender_is_cancelled_still_wakes_the_instance(
    suspending: Stepline, probe
):
    """Once its write is submitted, the event is kept whoever stops waiting for it; the
    instance it claimed for this engine runs now, not when its unrenewed lease lapses."""
    workflow = await suspending.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"types": ["approved"]})
    await wait_for_status(instance, "waiting")
    sending = instance.send_event("approved", "anyway")
    await cancelled_inside(suspending.store, "buffer_event", sending)

    view = await finished(instance, timeout=DELIVERY_TIMEOUT)
    assert view["output"] == ["anyway"]


async def test_an_event_sent_after_the_engine_stopped_is_left_for_the_next_one(
    suspending: Stepline, probe
):
    workflow = await suspending.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"types": ["approved"]})
    await wait_for_status(instance, "waiting")
    await suspending.engine.stop()

    await instance.send_event("approved", "later")

    # Not claimed by the stopped engine: still waiting, due now, for whichever engine is next.
    assert (await instance.status())["status"] == "waiting"
    assert suspending.engine.runners == {}


async def test_an_event_for_a_full_engine_runs_when_a_slot_frees(
    make_stepline: MakeStepline, probe
):
    stepline = await make_stepline(concurrency=1, suspend_after=SUSPEND)
    workflow = await stepline.register("waits-for", WaitsFor)
    waiter = await workflow.create(params={"types": ["approved"]})
    await wait_for_status(waiter, "waiting")
    blocker = await workflow.create(params={"hold": True, "types": []})
    await probe.wait_for("holding")

    await waiter.send_event("approved", "later")
    assert (await waiter.status())["status"] == "waiting"
    probe.gate("go").set()

    assert (await finished(blocker))["status"] == "complete"
    assert (await finished(waiter))["output"] == ["later"]


async def test_a_pending_wait_shows_in_the_step_log(any_stepline: Stepline, probe):
    workflow = await any_stepline.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"types": ["approved"]})
    await probe.wait_for("waiting")

    async def pending_wait() -> dict:
        while True:
            view = await instance.status()
            found = [s for s in view["steps"] if s.get("name") == "wait 0-1"]
            if found:
                return found[0]
            await asyncio.sleep(0.01)

    wait = await asyncio.wait_for(pending_wait(), 2)
    assert wait["type"] == "waitForEvent"
    assert wait["finished"] is False
    assert wait["event_type"] == "approved"
    await instance.send_event("approved", 1)
    assert (await finished(instance))["status"] == "complete"


class EventShape(WorkflowEntrypoint):
    async def run(self, event, step):
        got = await step.wait_for_event("approval", "approved", timeout="1 hour")
        return {
            "keys": sorted(got),
            "type": got["type"],
            "payload": got["payload"],
            "timestamp_is_datetime": isinstance(got["timestamp"], datetime),
        }


async def test_a_wait_returns_payload_timestamp_and_type(stepline: Stepline):
    workflow = await stepline.register("event-shape", EventShape)
    instance = await workflow.create()
    await instance.send_event("approved", [1, "two"])

    view = await finished(instance)
    assert view["output"] == {
        "keys": ["payload", "timestamp", "type"],
        "type": "approved",
        "payload": [1, "two"],
        "timestamp_is_datetime": True,
    }


async def test_events_of_a_type_are_delivered_in_fifo_order(any_stepline: Stepline, probe):
    workflow = await any_stepline.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"hold": True, "types": ["a", "a", "b", "a"]})
    await probe.wait_for("holding")

    for event_type, payload in [("a", 1), ("b", "x"), ("a", 2), ("a", 3)]:
        await instance.send_event(event_type, payload)
    probe.gate("go").set()

    view = await finished(instance)
    assert view["output"] == [1, 2, "x", 3]


class TwoWaiters(WorkflowEntrypoint):
    async def run(self, event, step):
        self.env.hit("waiting")
        first, second = await asyncio.gather(
            step.wait_for_event("left", "ping", timeout="1 hour"),
            step.wait_for_event("right", "ping", timeout="1 hour"),
        )
        return [first["payload"], second["payload"]]


async def test_each_event_goes_to_exactly_one_waiter(any_stepline: Stepline, probe):
    workflow = await any_stepline.register("two-waiters", TwoWaiters)
    instance = await workflow.create()
    await probe.wait_for("waiting")

    await instance.send_event("ping", 1)
    await instance.send_event("ping", 2)

    view = await finished(instance, timeout=DELIVERY_TIMEOUT)
    assert sorted(view["output"]) == [1, 2]


class TimesOutThenWaits(WorkflowEntrypoint):
    async def run(self, event, step):
        try:
            await step.wait_for_event("first", "ping", timeout="1 hour")
            caught = None
        except WorkflowTimeoutError as exc:
            caught = str(exc)
        self.env.hit("caught", caught)
        second = await step.wait_for_event("second", "ping", timeout="1 hour")
        return {"caught": caught, "second": second["payload"]}


async def test_a_timed_out_wait_is_catchable_and_does_not_eat_a_later_event(
    any_stepline: Stepline, mocks: StepMocks, probe
):
    mocks.force_event_timeout("first")
    workflow = await any_stepline.register("times-out", TimesOutThenWaits)
    instance = await workflow.create()
    await probe.wait_for("caught")

    await instance.send_event("ping", "late")

    view = await finished(instance, timeout=DELIVERY_TIMEOUT)
    assert view["output"] == {
        "caught": "Execution timed out after 3600000ms",
        "second": "late",
    }
    first = step(view, "first-1")
    assert first["finished"] is True
    assert first["error"] == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 3600000ms",
    }


async def test_a_forced_timeout_times_out_a_wait_whose_event_was_sent_before_it(
    any_stepline: Stepline, mocks: StepMocks, probe
):
    """``force_event_timeout`` times the wait out at once, as it says: an event already
    buffered for it is not taken instead."""
    mocks.force_event_timeout("wait 0")
    workflow = await any_stepline.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"hold": True, "types": ["approved"]})
    await probe.wait_for("holding")
    await instance.send_event("approved", "sent before the wait")
    probe.gate("go").set()

    view = await finished(instance)
    assert view["status"] == "errored"
    assert view["error"] == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 3600000ms",
    }


async def test_a_suspended_wait_times_out_when_the_clock_passes_its_deadline(
    make_stepline: MakeStepline, clock: TestClock, probe
):
    stepline = await make_stepline(suspend_after=SUSPEND)
    workflow = await stepline.register("times-out", TimesOutThenWaits)
    instance = await workflow.create()
    await wait_for_status(instance, "waiting")
    assert probe.calls["caught"] == 0

    clock.advance("61 minutes")
    poke(stepline)
    await probe.wait_for("caught")
    await instance.send_event("ping", "after the timeout")

    view = await finished(instance)
    assert view["output"] == {
        "caught": "Execution timed out after 3600000ms",
        "second": "after the timeout",
    }


@pytest.mark.parametrize("engine_stopped", [True, False], ids=["engine stopped", "engine running"])
async def test_an_event_sent_after_a_wait_timed_out_goes_to_the_next_wait(
    make_stepline: MakeStepline, clock: TestClock, probe, engine_stopped: bool
):
    """The wait's deadline passed while no run said so (the engine stopped, or the event's
    send claims the instance before the scheduler looks); an event sent after that deadline
    is not the timed-out wait's, however late the replay comes to it (§2.3: a wait keeps its
    deadline; §3.5: later events go to the next wait)."""
    stepline = await make_stepline(suspend_after=SUSPEND)
    workflow = await stepline.register("times-out", TimesOutThenWaits)
    instance = await workflow.create()
    await wait_for_status(instance, "waiting")
    if engine_stopped:
        await stepline.engine.stop()

    clock.advance("61 minutes")
    await instance.send_event("ping", "after the deadline")
    if engine_stopped:
        await stepline.engine.start()
    poke(stepline)

    view = await finished(instance)
    assert view["output"] == {
        "caught": "Execution timed out after 3600000ms",
        "second": "after the deadline",
    }


class UncaughtTimeout(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.wait_for_event("approval", "approved", timeout="1 hour")


async def test_an_uncaught_wait_timeout_errors_the_instance(stepline: Stepline, mocks: StepMocks):
    mocks.force_event_timeout("approval")
    workflow = await stepline.register("uncaught-timeout", UncaughtTimeout)
    view = await finished(await workflow.create())

    assert view["status"] == "errored"
    assert view["error"] == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 3600000ms",
    }


async def test_a_mocked_event_is_handed_to_the_wait(stepline: Stepline, mocks: StepMocks):
    mocks.mock_event("approved", {"user": "mock"})
    workflow = await stepline.register("event-shape", EventShape)
    view = await finished(await workflow.create())

    assert view["status"] == "complete"
    assert view["output"]["payload"] == {"user": "mock"}
    assert view["output"]["type"] == "approved"


class Finishes(WorkflowEntrypoint):
    async def run(self, event, step):
        if event.payload == "errored":
            raise RuntimeError("broken")
        if event.payload == "terminated":
            await self.env.gate("never").wait()
        return "done"


@pytest.mark.parametrize("final", ["complete", "errored", "terminated"])
async def test_sending_to_a_finished_instance_raises_cannot_send_event(stepline: Stepline, final):
    workflow = await stepline.register("finishes", Finishes)
    instance = await workflow.create(params=final)
    if final == "terminated":
        await wait_for_status(instance, "running")
        await instance.terminate()
    await wait_for_status(instance, final)

    with pytest.raises(CannotSendEvent) as raised:
        await instance.send_event("late", 1)
    assert raised.value.code == 10403


async def test_an_event_sent_to_a_paused_instance_is_delivered_after_resume(
    stepline: Stepline, probe
):
    workflow = await stepline.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"hold": True, "types": ["approved"]})
    await probe.wait_for("holding")
    await instance.pause()
    probe.gate("go").set()
    await wait_for_status(instance, "paused")

    await instance.send_event("approved", "while paused")
    await instance.resume()

    view = await finished(instance)
    assert view["output"] == ["while paused"]


@pytest.mark.parametrize("event_type", ["has.dot", "has space", "x" * 101, ""])
async def test_sending_an_invalid_event_type_is_rejected(stepline: Stepline, event_type):
    workflow = await stepline.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"types": ["ok"]})

    with pytest.raises(InvalidEventType):
        await instance.send_event(event_type, None)


async def test_an_event_type_of_100_characters_is_accepted(stepline: Stepline):
    workflow = await stepline.register("waits-for", WaitsFor)
    instance = await workflow.create(params={"types": ["e" * 100]})
    await instance.send_event("e" * 100, "long type")

    assert (await finished(instance))["output"] == ["long type"]


async def test_waiting_for_an_invalid_event_type_errors_the_instance(stepline: Stepline):
    workflow = await stepline.register("waits-for", WaitsFor)
    view = await finished(await workflow.create(params={"types": ["has.dot"]}))

    assert view["status"] == "errored"


class ShortTimeout(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.wait_for_event("quick", "ping", timeout=event.payload)


@pytest.mark.parametrize("timeout", [999, "366 days"])
async def test_a_wait_timeout_outside_1_second_to_365_days_errors_the_instance(
    stepline: Stepline, timeout
):
    workflow = await stepline.register("short-timeout", ShortTimeout)
    view = await finished(await workflow.create(params=timeout))

    assert view["status"] == "errored"


class ReturnsTheEvent(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.wait_for_event("approval", "approved", timeout="1 hour")


async def test_the_value_of_a_wait_can_be_returned_its_timestamp_as_javascript_writes_it(
    stepline: Stepline,
):
    workflow = await stepline.register("returns-the-event", ReturnsTheEvent)
    instance = await workflow.create()
    await instance.send_event("approved", {"by": "ada"})

    view = await finished(instance)
    assert view["status"] == "complete"
    output = view["output"]
    assert output["payload"] == {"by": "ada"} and output["type"] == "approved"
    # JSON.stringify of a Date: UTC, milliseconds, "Z".
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", output["timestamp"])
    assert view["queued"] <= output["timestamp"] <= step(view, "approval-1")["end"]


class Stamps(WorkflowEntrypoint):
    """Holds at step "hold" until gate "go", then waits for "approved" and naps an hour (a
    replay, when suspended); returns the wait's timestamp, in epoch ms, as the last run saw it."""

    async def run(self, event, step):
        @step.do("hold")
        async def hold():
            self.env.hit("holding")
            await self.env.gate("go").wait()

        await hold()
        got = await step.wait_for_event("approval", "approved", timeout="1 hour")
        await step.sleep("nap", "1 hour")
        return round(got["timestamp"].timestamp() * 1000)


async def test_a_wait_returns_when_its_event_was_sent_not_when_it_took_it(
    any_stepline: Stepline, clock: TestClock, probe
):
    """Cloudflare's event carries the time it was sent, and the wait resolves with it."""
    workflow = await any_stepline.register("stamps", Stamps)
    instance = await workflow.create()
    await probe.wait_for("holding")
    before = clock.now_ms()
    await instance.send_event("approved", "yes")
    after = clock.now_ms()
    clock.advance("5 minutes")
    probe.gate("go").set()

    view = await finished(instance)
    assert view["status"] == "complete"
    assert before <= view["output"] <= after
    took = datetime.fromisoformat(step(view, "approval-1")["end"].replace("Z", "+00:00"))
    assert took.timestamp() * 1000 >= after + 300_000


class RenamesItsWait(WorkflowEntrypoint):
    """Waits for "ping" as first written (``env.seen["version"]`` empty); redeployed, it holds
    at step "hold" until gate "go" and then waits for "pong" instead."""

    async def run(self, event, step):
        self.env.hit("run")
        if not self.env.seen["version"]:
            return await step.wait_for_event("old wait", "ping", timeout="1 hour")

        @step.do("hold")
        async def hold():
            self.env.hit("holding")
            await self.env.gate("go").wait()

        await hold()
        got = await step.wait_for_event("new wait", "pong", timeout="1 hour")
        return got["payload"]


async def test_an_event_for_a_wait_the_code_no_longer_reaches_does_not_replay_it_again_and_again(
    suspending: Stepline, probe
):
    """A wait stored by an earlier run, that the code as it is now never reaches, takes no
    event: one of its type, sent while the instance ran, must not make every park of it due
    at once (the instance was replayed over and over, as fast as the engine could)."""
    workflow = await suspending.register("renames-its-wait", RenamesItsWait)
    instance = await workflow.create()
    await wait_for_status(instance, "waiting")
    probe.hit("version", 2)  # the code changes, as at a redeploy
    await instance.pause()
    await wait_for_status(instance, "paused")
    await instance.resume()
    await probe.wait_for("holding")
    await instance.send_event("ping", "for the old wait")
    probe.gate("go").set()
    await wait_for_status(instance, "waiting")
    runs = probe.calls["run"]

    await asyncio.sleep(0.5)

    assert probe.calls["run"] == runs
    await instance.send_event("pong", "for the new wait")
    assert (await finished(instance))["output"] == "for the new wait"
