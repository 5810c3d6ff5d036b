"""Restart: from the top, or from a named step keeping earlier results (§3.3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepline import InstanceHandle, Stepline, WorkflowEntrypoint
from stepline.errors import CannotRestart, InvalidRequest
from stepline.testing import wait_for_status
from tests.engine.helpers import finished, step_names, stored_instance
from tests.engine.test_testing_helpers import until_view


class ThreeSteps(WorkflowEntrypoint):
    """Steps a, b, c each return how many times they have run; ``params["fail_once"]``
    makes the first run fail after b."""

    async def run(self, event, step):
        self.env.hit("run", event.timestamp.isoformat())

        @step.do()
        async def a():
            return self.env.hit("a")

        @step.do()
        async def b():
            return self.env.hit("b")

        @step.do()
        async def c():
            return self.env.hit("c")

        first, second = await a(), await b()
        if (event.payload or {}).get("fail_once") and self.env.calls["run"] == 1:
            raise RuntimeError("first run fails")
        return {"a": first, "b": second, "c": await c(), "params": event.payload}


async def _complete(stepline: Stepline, params=None) -> InstanceHandle:
    workflow = await stepline.register("three-steps", ThreeSteps)
    instance = await workflow.create(id="order-1", params=params)
    assert (await finished(instance))["status"] == "complete"
    return instance


async def test_restart_from_the_top_reruns_every_step(stepline: Stepline, probe):
    instance = await _complete(stepline, params={"sku": "A1"})

    assert await instance.restart() == "queued"

    view = await finished(instance)
    assert view["status"] == "complete"
    assert view["output"] == {"a": 2, "b": 2, "c": 2, "params": {"sku": "A1"}}
    assert step_names(view) == ["a-1", "b-1", "c-1"]


async def test_restart_keeps_the_instance_id_and_creation_event(stepline: Stepline, probe):
    instance = await _complete(stepline)
    await instance.restart()
    await finished(instance)

    assert instance.id == "order-1"
    first, second = probe.seen["run"][0], probe.seen["run"][-1]
    assert first == second


async def test_restart_of_an_errored_instance_runs_it_again(stepline: Stepline, probe):
    workflow = await stepline.register("three-steps", ThreeSteps)
    instance = await workflow.create(params={"fail_once": True})
    assert (await finished(instance))["status"] == "errored"

    await instance.restart()

    view = await finished(instance)
    assert view["status"] == "complete"
    assert view["error"] is None
    assert view["output"]["c"] == 1


class Blocking(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def hold():
            runs = self.env.hit("hold")
            if runs == 1:
                await self.env.gate("never").wait()
            return runs

        return await hold()


async def test_restart_of_a_running_instance_cancels_and_reruns(stepline: Stepline, probe):
    workflow = await stepline.register("blocking", Blocking)
    instance = await workflow.create()
    await probe.wait_for("hold")

    await instance.restart()

    view = await finished(instance)
    assert view["output"] == 2
    assert probe.calls["hold"] == 2
    assert len(view["steps"]) == 1


class HoldBeside(WorkflowEntrypoint):
    """Step "hold" (no retries) blocks on its first run while step "beside", begun after it
    in a gather, returns at once."""

    async def run(self, event, step):
        @step.do(config={"retries": {"limit": 0, "delay": 1}})
        async def hold():
            runs = self.env.hit("hold")
            if runs == 1:
                await self.env.gate("never").wait()
            return runs

        @step.do()
        async def beside():
            return self.env.hit("beside")

        return list(await asyncio.gather(hold(), beside()))


def beside_stored(view: dict[str, Any]) -> bool:
    return "beside-1" in step_names(view)


async def test_a_restart_from_a_step_runs_again_the_attempt_it_cut_off_before_it(
    stepline: Stepline, probe
):
    workflow = await stepline.register("hold-beside", HoldBeside)
    instance = await workflow.create()
    await probe.wait_for("hold")
    await until_view(instance, beside_stored)

    await instance.restart(from_="beside")

    # The attempt of "hold" that the restart cancelled is no failure (no retry left, it
    # failed the instance with "Attempt failed due to internal workflows error").
    view = await finished(instance)
    assert view["status"] == "complete"
    assert view["output"] == [2, 2]
    attempts = view["steps"][0]["attempts"]
    assert [a["success"] for a in attempts] == [True]


async def test_restart_of_a_terminated_running_instance(stepline: Stepline, probe):
    workflow = await stepline.register("blocking", Blocking)
    instance = await workflow.create()
    await probe.wait_for("hold")
    await instance.terminate()

    await instance.restart()

    view = await finished(instance)
    assert view["status"] == "complete"
    assert view["output"] == 2
    assert [s["type"] for s in view["steps"]] == ["step"]


async def test_restart_of_a_paused_instance_runs_it(stepline: Stepline, probe):
    workflow = await stepline.register("blocking", Blocking)
    instance = await workflow.create()
    await probe.wait_for("hold")
    await instance.pause()

    await instance.restart()

    view = await finished(instance)
    assert view["status"] == "complete"


async def test_restart_from_a_step_keeps_earlier_results(stepline: Stepline, probe):
    instance = await _complete(stepline)

    await instance.restart(from_="b")

    view = await finished(instance)
    assert view["output"] == {"a": 1, "b": 2, "c": 2, "params": None}
    assert probe.calls["a"] == 1
    assert step_names(view) == ["a-1", "b-1", "c-1"]


class Repeats(WorkflowEntrypoint):
    """Two steps named "x", a sleep named "x" and a wait named "x", each counting its runs."""

    async def run(self, event, step):
        first = await step.do("x", lambda: self.env.hit("x first"))
        second = await step.do("x", lambda: self.env.hit("x second"))
        await step.sleep("x", "1 minute")
        after_sleep = await step.do("y", lambda: self.env.hit("y"))
        got = await step.wait_for_event("x", "go", timeout="1 hour")
        after_wait = await step.do("z", lambda: self.env.hit("z"))
        return [first, second, after_sleep, got["payload"], after_wait]


async def _repeats(stepline: Stepline) -> InstanceHandle:
    workflow = await stepline.register("repeats", Repeats)
    instance = await workflow.create()
    await instance.send_event("go", "first event")
    assert (await finished(instance))["output"] == [1, 1, 1, "first event", 1]
    return instance


async def test_restart_from_the_second_occurrence_of_a_name(stepline: Stepline):
    instance = await _repeats(stepline)

    await instance.restart(from_="x", count=2)
    await instance.send_event("go", "second event")

    view = await finished(instance)
    assert view["output"] == [1, 2, 2, "second event", 2]


async def test_restart_from_a_sleep_by_type(stepline: Stepline):
    instance = await _repeats(stepline)

    await instance.restart(from_="x", type="sleep")
    await instance.send_event("go", "second event")

    view = await finished(instance)
    assert view["output"] == [1, 1, 2, "second event", 2]


async def test_restart_from_a_wait_needs_a_new_event(stepline: Stepline):
    instance = await _repeats(stepline)

    await instance.restart(from_="x", type="waitForEvent")
    view = await wait_for_status(instance, ("waiting", "running"))
    assert view["status"] != "complete"
    await instance.send_event("go", "second event")

    view = await finished(instance)
    assert view["output"] == [1, 1, 1, "second event", 2]


async def test_restart_from_an_unknown_step_raises_cannot_restart(stepline: Stepline):
    instance = await _complete(stepline)

    with pytest.raises(CannotRestart) as raised:
        await instance.restart(from_="nope")
    assert raised.value.code == 10402
    assert 'Step "nope" not found in execution history' in str(raised.value)
    assert (await instance.status())["status"] == "complete"


async def test_restart_from_a_count_past_the_last_occurrence_raises(stepline: Stepline):
    instance = await _complete(stepline)

    with pytest.raises(CannotRestart):
        await instance.restart(from_="a", count=2)


@pytest.mark.parametrize("count", [0, -1, "2"])
async def test_restart_from_a_count_that_is_no_occurrence_says_so(stepline: Stepline, count):
    instance = await _complete(stepline)

    with pytest.raises(InvalidRequest) as raised:
        await instance.restart(from_="a", count=count)
    assert f"count must be an integer >= 1, not {count!r}" in str(raised.value)  # not its type
    assert (await instance.status())["status"] == "complete"


class WaitsTwice(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("hold")
        async def hold():
            # The first run waits here until the test has buffered both of its events.
            await self.env.gate("events sent").wait()

        await hold()
        first = await step.wait_for_event("first", "go", timeout="1 hour")
        return first["payload"]


@pytest.mark.parametrize("from_", [None, "first"], ids=["from the top", "from a step"])
async def test_restart_erases_buffered_events(stepline: Stepline, probe, from_: str | None):
    """Events no wait has taken are erased by a restart, from the top or from a step, as
    Cloudflare's local engine erases its whole event map (§3.3); events taken by the waits a
    restart from a step keeps stay theirs."""
    workflow = await stepline.register("waits-twice", WaitsTwice)
    instance = await workflow.create()
    await instance.send_event("go", 1)
    await instance.send_event("go", 2)  # buffered, never consumed
    probe.gate("events sent").set()
    assert (await finished(instance))["output"] == 1

    await instance.restart(from_=from_, type="waitForEvent")
    await instance.send_event("go", 3)

    assert (await finished(instance))["output"] == 3


class HoldsUntilReleased(WorkflowEntrypoint):
    """Step "hold" waits for gate "release" (and notes a cancellation); then step "after"."""

    async def run(self, event, step):
        @step.do()
        async def hold():
            self.env.hit("hold")
            try:
                await self.env.gate("release").wait()
            except asyncio.CancelledError:
                self.env.hit("hold cancelled")
                raise
            return "held"

        @step.do()
        async def after():
            return self.env.hit("after")

        return [await hold(), await after()]


async def test_a_new_run_claimed_before_the_stop_notice_stops_the_old_one(
    stepline: Stepline, probe
):
    """On PostgreSQL the stop notice of a restart comes through LISTEN, and the engine that
    ran the old generation may claim the new one first. Its old run must end there and
    then, not go on beside the new one, running step bodies that nothing stops."""
    workflow = await stepline.register("holds", HoldsUntilReleased)
    instance = await workflow.create()
    await probe.wait_for("hold")
    record = await stored_instance(stepline, "holds", instance.id)

    # The restart as another process makes it, its stop notice not yet delivered here.
    await stepline.store.restart(record.pk, from_seq=None, now=stepline.engine.clock.now_ms())
    stepline.engine.wake()
    await probe.wait_for("hold", 2)

    assert probe.calls["hold cancelled"] == 1
    probe.gate("release").set()
    view = await finished(instance)
    assert view["output"] == ["held", 1]
    assert probe.calls["after"] == 1


class ThreeStepsRenamed(ThreeSteps):
    """A new version of ``three-steps``: another class, so another code hash."""


async def test_a_restart_runs_and_records_the_workflows_current_version(stepline: Stepline):
    instance = await _complete(stepline)
    before = (await instance.status())["versionId"]
    await stepline.register("three-steps", ThreeStepsRenamed)
    stored = await stepline.store.get_workflow(stepline.account_id, "three-steps")
    assert stored is not None and stored.version_id != before
    current = stored.version_id

    await instance.restart()

    view = await finished(instance)
    assert view["status"] == "complete"
    assert view["versionId"] == current
