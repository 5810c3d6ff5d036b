"""Steps called from another step's body (nested steps) that wait or are paused.

A suspension (a long wait, a pause, an engine stopping) inside a step's body unwinds the
step's attempt with the run: the step is not complete, and its interrupted attempt is no
attempt (no failure, no retry spent). The replay enters its body again, where the inner
steps it finished return their results without running again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.testing import TestClock, wait_for_status
from tests.conftest import HOT, SUSPEND, MakeStepline
from tests.engine.helpers import finished, poke, step
from tests.workflows.probe import Probe

ONE_ATTEMPT = {"retries": {"limit": 0}}
"""The outer steps' config: an interrupted attempt counted as failed would spend the step."""


class SleepsInAStep(WorkflowEntrypoint):
    """Step "outer" runs step "before", sleeps 30 minutes (held in memory under ``HOT``),
    runs "after"; then step "last"."""

    async def run(self, event, step):
        env = self.env

        async def before():
            return env.hit("before")

        async def outer():
            env.hit("outer")
            got = await step.do("before", before)
            await step.sleep("nap", "30 minutes")
            return [got, await step.do("after", lambda: env.hit("after"))]

        result = await step.do("outer", outer, config=ONE_ATTEMPT)
        return [*result, await step.do("last", lambda: env.hit("last"))]


async def heard_the_pause(stepline: Stepline) -> None:
    """Until the running instance's runner has the pause: on PostgreSQL its notice comes back
    through LISTEN, after ``pause()`` has returned."""
    for _ in range(500):
        if all(r.pause_requested for r in stepline.engine.runners.values()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the runner never heard the pause")


def assert_ran_once(view: dict, probe: Probe, *steps: str) -> None:
    """The run completed with every step once; "outer" took one attempt, a success."""
    assert view["status"] == "complete", view.get("error")
    assert [a["success"] for a in step(view, "outer-1")["attempts"]] == [True]
    for name in steps:
        assert probe.calls[name] == 1, name


async def test_a_long_sleep_in_a_step_parks_the_instance_until_it_is_due(
    make_stepline: MakeStepline, probe: Probe, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=SUSPEND)
    instance = await (await stepline.register("sleeps-in-a-step", SleepsInAStep)).create()

    view = await wait_for_status(instance, "waiting", timeout=5)
    await stepline.engine.wait_idle()  # parked: nothing held in memory
    assert step(view, "outer-1")["attempts"] == []
    assert step(view, "outer-1/before-1")["success"] is True

    clock.advance("30 minutes")
    poke(stepline)
    view = await finished(instance)
    assert view["output"] == [1, 1, 1]
    assert probe.calls["outer"] == 2  # its body entered again, "before" not run again
    assert_ran_once(view, probe, "before", "after", "last")


async def test_a_step_that_sleeps_in_its_body_completes_hot_or_replayed(
    any_stepline: Stepline, probe: Probe
):
    workflow = await any_stepline.register("sleeps-in-a-step", SleepsInAStep)
    view = await finished(await workflow.create())

    assert view["output"] == [1, 1, 1]
    assert_ran_once(view, probe, "before", "after", "last")


class WaitsInAStep(WorkflowEntrypoint):
    async def run(self, event, step):
        async def outer():
            self.env.hit("outer")
            got = await step.wait_for_event("approval", "approved", timeout="1 hour")
            return got["payload"]

        return await step.do("outer", outer, config=ONE_ATTEMPT)


async def test_an_event_wait_in_a_step_parks_the_instance_until_the_event(
    suspending: Stepline, probe: Probe
):
    instance = await (await suspending.register("waits-in-a-step", WaitsInAStep)).create()

    await wait_for_status(instance, "waiting", timeout=5)
    await suspending.engine.wait_idle()
    await instance.send_event("approved", {"by": "ada"})

    view = await finished(instance)
    assert view["output"] == {"by": "ada"}
    assert_ran_once(view, probe)


class GathersWaitsInAStep(WorkflowEntrypoint):
    """Step "outer" gathers a sleep of 1 day, one of 2 days and a step, in its body."""

    async def run(self, event, step):
        env = self.env

        async def outer():
            env.hit("outer")
            await asyncio.gather(
                step.sleep("short", "1 day"),
                step.sleep("long", "2 days"),
                step.do("beside", lambda: env.hit("beside")),
            )
            return "slept"

        return await step.do("outer", outer, config=ONE_ATTEMPT)


async def test_waits_gathered_in_a_step_park_the_instance_until_each_is_due(
    make_stepline: MakeStepline, probe: Probe, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=SUSPEND)
    instance = await (await stepline.register("gathers", GathersWaitsInAStep)).create()

    await wait_for_status(instance, "waiting", timeout=5)
    clock.advance("1 day")
    poke(stepline)
    await probe.wait_for("outer", 2)
    await wait_for_status(instance, "waiting", timeout=5)
    clock.advance("1 day")
    poke(stepline)

    view = await finished(instance)
    assert view["output"] == "slept"
    assert_ran_once(view, probe, "beside")


class RetriesInAStep(WorkflowEntrypoint):
    """Step "outer" runs step "flaky", which fails once and is retried an hour later."""

    async def run(self, event, step):
        env = self.env

        async def flaky():
            if env.hit("flaky") == 1:
                raise RuntimeError("once")
            return "done"

        async def outer():
            return await step.do("flaky", flaky, config={"retries": {"delay": "1 hour"}})

        return await step.do("outer", outer, config=ONE_ATTEMPT)


async def test_a_retry_backoff_in_a_step_parks_the_instance(suspending: Stepline, probe: Probe):
    instance = await (await suspending.register("retries-in-a-step", RetriesInAStep)).create()

    view = await finished(instance)
    assert view["output"] == "done"
    assert [a["success"] for a in step(view, "outer-1/flaky-1")["attempts"]] == [False, True]
    assert [a["success"] for a in step(view, "outer-1")["attempts"]] == [True]


class SwallowsItsSleep(WorkflowEntrypoint):
    """Step "outer" catches everything its sleep raises, the engine's suspension too."""

    async def run(self, event, step):
        async def outer():
            try:
                await step.sleep("nap", "2 days")
            except BaseException:
                return "swallowed"
            return "slept"

        return await step.do("outer", outer, config=ONE_ATTEMPT)


async def test_a_suspension_a_step_swallows_is_not_its_result(
    make_stepline: MakeStepline, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=SUSPEND)
    instance = await (await stepline.register("swallows", SwallowsItsSleep)).create()

    await wait_for_status(instance, "waiting", timeout=5)
    clock.advance("2 days")
    poke(stepline)
    view = await finished(instance)
    assert view["output"] == "slept"
    assert step(view, "outer-1")["output"] == "slept"


class HoldsInAStep(WorkflowEntrypoint):
    """Step "outer" runs step "hold" (until gate "release"), then step "after"."""

    async def run(self, event, step):
        env = self.env

        async def hold():
            env.hit("hold")
            await env.gate("release").wait()
            return "held"

        async def outer():
            env.hit("outer")
            return [await step.do("hold", hold), await step.do("after", lambda: env.hit("after"))]

        return await step.do("outer", outer, config=ONE_ATTEMPT)


async def test_pause_during_a_step_in_a_step_pauses_after_it(stepline: Stepline, probe: Probe):
    instance = await (await stepline.register("holds-in-a-step", HoldsInAStep)).create()
    await probe.wait_for("hold")

    assert await instance.pause() == "waitingForPause"
    await heard_the_pause(stepline)
    probe.gate("release").set()
    view = await wait_for_status(instance, "paused", timeout=5)
    assert step(view, "outer-1/hold-1")["success"] is True
    assert step(view, "outer-1")["attempts"] == []
    assert probe.calls["after"] == 0

    await instance.resume()
    view = await finished(instance)
    assert view["output"] == ["held", 1]
    assert_ran_once(view, probe, "hold", "after")


class CallsAStepLate(WorkflowEntrypoint):
    """Step "outer" waits for gate "go on", then returns what step "inner" gives."""

    async def run(self, event, step):
        env = self.env

        async def outer():
            env.hit("outer")
            await env.gate("go on").wait()
            return await step.do("inner", lambda: env.hit("inner"))

        return await step.do("outer", outer, config=ONE_ATTEMPT)


async def test_pause_before_a_step_in_a_step_pauses_at_that_step(stepline: Stepline, probe: Probe):
    instance = await (await stepline.register("calls-a-step-late", CallsAStepLate)).create()
    await probe.wait_for("outer")

    assert await instance.pause() == "waitingForPause"
    await heard_the_pause(stepline)
    probe.gate("go on").set()
    view = await wait_for_status(instance, "paused", timeout=5)
    assert probe.calls["inner"] == 0
    assert step(view, "outer-1")["attempts"] == []

    await instance.resume()
    view = await finished(instance)
    assert view["output"] == 1
    assert_ran_once(view, probe, "inner")


async def test_pause_interrupts_a_sleep_in_a_step_held_in_memory(
    make_stepline: MakeStepline, probe: Probe, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=HOT)
    instance = await (await stepline.register("sleeps-in-a-step", SleepsInAStep)).create()
    await probe.wait_for("before")
    await asyncio.sleep(0.05)

    assert await instance.pause() in ("waitingForPause", "paused")
    view = await wait_for_status(instance, "paused", timeout=5)
    assert step(view, "outer-1")["attempts"] == []
    clock.auto_skip = True  # the replay's sleep, held in memory again, returns at once
    await instance.resume()

    view = await finished(instance)
    assert view["output"] == [1, 1, 1]
    assert_ran_once(view, probe, "before", "after", "last")


@pytest.mark.parametrize("suspend_after", [HOT, SUSPEND], ids=["hot", "suspend"])
async def test_terminate_during_a_sleep_in_a_step(
    make_stepline: MakeStepline, probe: Probe, clock: TestClock, suspend_after: int
):
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=suspend_after)
    instance = await (await stepline.register("sleeps-in-a-step", SleepsInAStep)).create()
    await wait_for_status(instance, "running" if suspend_after == HOT else "waiting", timeout=5)
    await probe.wait_for("before")

    assert await instance.terminate() == "terminated"
    clock.advance("1 hour")
    poke(stepline)
    await asyncio.sleep(0.1)
    await stepline.engine.wait_idle()
    assert (await instance.status())["status"] == "terminated"
    assert probe.calls["after"] == 0


async def test_restart_during_a_sleep_in_a_step_runs_it_again_from_the_top(
    make_stepline: MakeStepline, probe: Probe, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=SUSPEND)
    instance = await (await stepline.register("sleeps-in-a-step", SleepsInAStep)).create()
    await wait_for_status(instance, "waiting", timeout=5)

    await instance.restart()
    await probe.wait_for("before", 2)
    view = await wait_for_status(instance, "waiting", timeout=5)
    assert step(view, "outer-1")["attempts"] == []
    clock.advance("30 minutes")
    poke(stepline)

    view = await finished(instance)
    assert view["output"] == [2, 1, 1]
    assert [a["success"] for a in step(view, "outer-1")["attempts"]] == [True]


async def test_an_engine_stopped_during_a_sleep_in_a_step_leaves_it_to_the_next(
    make_stepline: MakeStepline, probe: Probe, clock: TestClock, tmp_path: Path
):
    clock.auto_skip = False
    first = await make_stepline(tmp_path, suspend_after=HOT)
    await (await first.register("sleeps-in-a-step", SleepsInAStep)).create(id="nested")
    await probe.wait_for("before")
    await asyncio.sleep(0.05)
    await first.stop()

    clock.auto_skip = True
    second = await make_stepline(tmp_path, suspend_after=HOT)
    instance = await (await second.register("sleeps-in-a-step", SleepsInAStep)).get("nested")

    view = await finished(instance)
    assert view["output"] == [1, 1, 1]
    assert_ran_once(view, probe, "before", "after", "last")


class NestsTwoDeep(WorkflowEntrypoint):
    """Declared step "outer" awaits declared step "middle", which runs step "inner" and then
    sleeps 30 minutes."""

    async def run(self, event, step):
        env = self.env

        @step.do("outer", config=ONE_ATTEMPT)
        async def outer():
            env.hit("outer")

            @step.do("middle", config=ONE_ATTEMPT)
            async def middle():
                got = await step.do("inner", lambda: env.hit("inner"))
                await step.sleep("nap", "30 minutes")
                return got

            return await middle()

        return await outer()


async def test_a_sleep_two_steps_deep_parks_the_instance_and_neither_step_fails(
    make_stepline: MakeStepline, probe: Probe, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=SUSPEND)
    instance = await (await stepline.register("nests-two-deep", NestsTwoDeep)).create()

    view = await wait_for_status(instance, "waiting", timeout=5)
    assert step(view, "outer-1")["attempts"] == []
    assert step(view, "outer-1/middle-1")["attempts"] == []
    clock.advance("30 minutes")
    poke(stepline)

    view = await finished(instance)
    assert view["output"] == 1
    assert_ran_once(view, probe, "inner")
    assert [a["success"] for a in step(view, "outer-1/middle-1")["attempts"]] == [True]


class FetchesInALoop(WorkflowEntrypoint):
    """Step "process" for each of two items, each running step "fetch" in its body; the
    second naps 30 minutes after its fetch (which parks the instance)."""

    async def run(self, event, step):
        got = []
        for item in ("a", "b"):

            async def process(item: str = item) -> str:
                fetched = await step.do("fetch", lambda: self.env.hit(item) and f"fetched {item}")
                if item == "b":
                    await step.sleep("nap", "30 minutes")
                return fetched

            got.append(await step.do("process", process, config=ONE_ATTEMPT))
        return got


async def test_steps_of_one_name_in_the_bodies_of_a_loops_steps_each_keep_their_result(
    make_stepline: MakeStepline, probe: Probe, clock: TestClock
):
    """The replay does not enter the first "process" (finished) and enters the second again:
    its "fetch" was counted as the run's first, and returned the first item's result."""
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=SUSPEND)
    instance = await (await stepline.register("fetches-in-a-loop", FetchesInALoop)).create()
    await wait_for_status(instance, "waiting", timeout=5)
    await stepline.engine.wait_idle()  # parked in the second "process"

    clock.advance("30 minutes")
    poke(stepline)
    view = await finished(instance)

    assert view["output"] == ["fetched a", "fetched b"]
    assert [probe.calls["a"], probe.calls["b"]] == [1, 1]
    names = [s["name"] for s in view["steps"]]
    assert names == [
        "process-1", "process-1/fetch-1", "process-2", "process-2/fetch-1", "process-2/nap-1"
    ]  # fmt: skip


class FetchesInARetriedStep(WorkflowEntrypoint):
    """Step "outer" runs step "fetch" (one attempt), whose first call fails; "outer" is retried
    a minute later (in memory when hot, parked when suspending)."""

    async def run(self, event, step):
        env = self.env

        async def fetch():
            if env.hit("fetch") == 1:
                raise RuntimeError("once")
            return "fetched"

        async def outer():
            return await step.do("fetch", fetch, config=ONE_ATTEMPT)

        retried = {"retries": {"limit": 1, "delay": "1 minute", "backoff": "constant"}}
        return await step.do("outer", outer, config=retried)


async def test_a_retried_step_runs_the_steps_of_its_failed_attempt_again(
    any_stepline: Stepline, probe: Probe
):
    """Each attempt of a step names the steps in its body apart: parked for its backoff, the
    retry's replay took the first attempt's failed "fetch" and failed without running it,
    while a retry held in memory ran it again."""
    workflow = await any_stepline.register("fetches-in-a-retried-step", FetchesInARetriedStep)
    instance = await workflow.create()

    view = await finished(instance)
    assert view["status"] == "complete", view.get("error")
    assert view["output"] == "fetched"
    assert probe.calls["fetch"] == 2
    names = [s["name"] for s in view["steps"]]
    assert names == ["outer-1", "outer-1/fetch-1", "outer-1#2/fetch-1"]


class RefetchesAndNaps(WorkflowEntrypoint):
    """Step "outer" runs step "fetch" and fails on its first attempt; retried at once, it runs
    "fetch" again, then naps 30 minutes (which parks the instance) and returns the fetch."""

    async def run(self, event, step):
        env = self.env

        async def outer(ctx):
            fetched = await step.do("fetch", lambda: f"fetch {env.hit('fetch')}")
            if ctx.attempt == 1:
                raise RuntimeError("once")
            await step.sleep("nap", "30 minutes")
            return fetched

        retried = {"retries": {"limit": 1, "delay": 10, "backoff": "constant"}}
        return await step.do("outer", outer, config=retried)


async def test_the_replay_of_a_retried_step_takes_its_own_attempts_steps(
    suspending: Stepline, probe: Probe
):
    """The second attempt fetched again (in memory) and parked in its nap: its replay took
    the first attempt's "fetch", and returned "fetch 1" where the attempt had "fetch 2"."""
    instance = await (await suspending.register("refetches-and-naps", RefetchesAndNaps)).create()

    view = await finished(instance)
    assert view["output"] == "fetch 2"
    assert probe.calls["fetch"] == 2
    names = [s["name"] for s in view["steps"]]
    assert names == ["outer-1", "outer-1/fetch-1", "outer-1#2/fetch-1", "outer-1#2/nap-1"]


class FetchesInTwoSteps(WorkflowEntrypoint):
    """Steps "process" for items a and b, each running step "fetch" for its item; then "last"."""

    async def run(self, event, step):
        env = self.env
        got = []
        for item in ("a", "b"):

            async def process(item: str = item) -> int:
                return await step.do("fetch", lambda: env.hit(item))

            got.append(await step.do("process", process))
        return [*got, await step.do("last", lambda: env.hit("last"))]


async def test_restart_from_a_step_in_a_steps_body_runs_it_again(stepline: Stepline, probe: Probe):
    """A restart from an inner step restarts from its outermost enclosing step: kept finished,
    that one was not entered on the replay, and the step named to restart from never ran."""
    instance = await (await stepline.register("fetches-in-two-steps", FetchesInTwoSteps)).create()
    assert (await finished(instance))["output"] == [1, 1, 1]

    await instance.restart(from_="process-2/fetch")
    view = await finished(instance)
    assert view["output"] == [1, 2, 2]
    assert [probe.calls["a"], probe.calls["b"], probe.calls["last"]] == [1, 2, 2]


class FetchesFromASyncBody(WorkflowEntrypoint):
    """Step "process", a sync function (on a step thread), calls step "fetch" on the loop."""

    async def run(self, event, step):
        loop = asyncio.get_running_loop()

        def process() -> str:
            fetched = step.do("fetch", lambda: "fetched")
            return asyncio.run_coroutine_threadsafe(fetched, loop).result()

        return await step.do("process", process)


async def test_a_step_called_from_a_sync_steps_body_is_named_within_it(stepline: Stepline):
    """The step thread ran the body outside the context that says which step it is: "fetch"
    was named as at the top of ``run``, and shared its counts."""
    instance = await (
        await stepline.register("fetches-from-a-sync-body", FetchesFromASyncBody)
    ).create()

    view = await finished(instance)

    assert view["output"] == "fetched"
    assert [s["name"] for s in view["steps"]] == ["process-1", "process-1/fetch-1"]


class NamesAStepAsAnInnerOneIsShown(WorkflowEntrypoint):
    """Step "process" runs step "fetch" in its body (shown as "process-1/fetch-1"); then a
    step named "process-1/fetch" in code; then a 30-minute nap, which parks the instance."""

    async def run(self, event, step):
        env = self.env

        async def process() -> str:
            return await step.do("fetch", lambda: f"inner {env.hit('inner')}")

        inner = await step.do("process", process)
        named = await step.do("process-1/fetch", lambda: f"named {env.hit('named')}")
        await step.sleep("nap", "30 minutes")
        return [inner, named]


async def test_a_step_named_as_an_inner_one_is_shown_keeps_its_own_result(
    any_stepline: Stepline, probe: Probe
):
    """The two had one key: on the replay (the first "process" finished, not entered), the
    step named in code took the inner "fetch"'s result, and ran never."""
    workflow = await any_stepline.register("names-as-inner", NamesAStepAsAnInnerOneIsShown)

    view = await finished(await workflow.create())

    assert view["output"] == ["inner 1", "named 1"]
    assert [probe.calls["inner"], probe.calls["named"]] == [1, 1]
    names = [s["name"] for s in view["steps"]]
    assert names == ["process-1", "process-1/fetch-1", "process-1/fetch-1", "nap-1"]


async def test_restart_from_a_name_shown_twice_counts_both_in_their_order(
    stepline: Stepline, probe: Probe
):
    """Shown alike, "fetch" inside "process-1" and the step named "process-1/fetch" in code
    are the first and the second of that name: a restart from the second reruns it alone (it
    is inside no step), one from the first reruns "process", its outermost enclosing step."""
    workflow = await stepline.register("names-as-inner", NamesAStepAsAnInnerOneIsShown)
    instance = await workflow.create()
    assert (await finished(instance))["output"] == ["inner 1", "named 1"]

    await instance.restart(from_="process-1/fetch", count=2)
    assert (await finished(instance))["output"] == ["inner 1", "named 2"]

    await instance.restart(from_="process-1/fetch")
    assert (await finished(instance))["output"] == ["inner 2", "named 3"]
    assert [probe.calls["inner"], probe.calls["named"]] == [2, 3]
