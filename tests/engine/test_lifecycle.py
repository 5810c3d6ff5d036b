"""The transition table of §3.2: pause, resume, terminate and delete from every status."""

from __future__ import annotations

import asyncio

import pytest

from stepline import InstanceHandle, InstanceNotFound, Stepline, WorkflowEntrypoint
from stepline.engine import scheduler
from stepline.errors import CannotTerminate
from stepline.store.port import Notice
from stepline.store.records import InstanceRecord
from stepline.testing import TestClock, wait_for_status
from tests.conftest import HOT, SUSPEND, MakeStepline
from tests.engine.helpers import cancelled_inside, finished, ms, poke, step, stored_instance
from tests.engine.test_engine_signals import _GATE, HoldsAThread, step_threads
from tests.workflows.probe import Probe

EVERY_STATUS = (
    "queued",
    "running",
    "waiting",
    "waitingForPause",
    "paused",
    "complete",
    "errored",
    "terminated",
)


def _held_step(step, env):
    """Step "hold": it blocks until gate "release" opens, then returns "held"."""

    @step.do("hold")
    async def hold():
        env.hit("hold")
        await env.gate("release").wait()
        return "held"

    return hold


class Blocking(WorkflowEntrypoint):
    """Step "hold" blocks until gate "release" opens; then step "after"; ``params["fail"]``
    raises after "hold" instead."""

    async def run(self, event, step):
        await _held_step(step, self.env)()
        if (event.payload or {}).get("fail"):
            raise RuntimeError("failed after hold")

        @step.do("after")
        async def after():
            self.env.hit("after")
            return "after"

        return await after()


class Sleeper(WorkflowEntrypoint):
    async def run(self, event, step):
        self.env.hit("sleeping")
        await step.sleep("nap", "1 hour")

        @step.do("after")
        async def after():
            self.env.hit("after")
            return "after"

        return await after()


class TwoInFlight(WorkflowEntrypoint):
    async def run(self, event, step):
        async def blocked(name: str) -> str:
            self.env.hit(f"{name} started")
            await self.env.gate(name).wait()
            self.env.hit(f"{name} done")
            return name

        results = await asyncio.gather(
            step.do("left", lambda: blocked("left")),
            step.do("right", lambda: blocked("right")),
        )

        @step.do("after")
        async def after():
            self.env.hit("after")

        await after()
        return list(results)


async def in_status(
    make_stepline: MakeStepline, probe: Probe, clock: TestClock, status: str
) -> tuple[Stepline, InstanceHandle]:
    """A Stepline and an instance that is in ``status``."""
    if status == "queued":
        stepline = await make_stepline(run_engine=False)
        instance = await (await stepline.register("blocking", Blocking)).create()
        return stepline, instance
    if status == "waiting":
        clock.auto_skip = False
        stepline = await make_stepline(suspend_after=SUSPEND)
        instance = await (await stepline.register("sleeper", Sleeper)).create()
        await wait_for_status(instance, "waiting")
        return stepline, instance
    stepline = await make_stepline()
    workflow = await stepline.register("blocking", Blocking)
    if status in ("complete", "errored"):
        probe.gate("release").set()
        instance = await workflow.create(params={"fail": status == "errored"})
        await wait_for_status(instance, status)
        return stepline, instance
    instance = await workflow.create()
    await probe.wait_for("hold")
    await wait_for_status(instance, "running")
    if status in ("waitingForPause", "paused"):
        await instance.pause()
    if status == "paused":
        probe.gate("release").set()
    if status == "terminated":
        await instance.terminate()
    await wait_for_status(instance, status)
    return stepline, instance


async def test_a_run_goes_from_queued_to_complete(stepline: Stepline, probe):
    probe.gate("release").set()
    workflow = await stepline.register("blocking", Blocking)
    instance = await workflow.create()
    view = await finished(instance)

    assert view["status"] == "complete"
    assert view["success"] is True
    assert view["output"] == "after"
    assert view["error"] is None
    assert ms(view["queued"]) <= ms(view["start"]) <= ms(view["end"])


async def test_an_attempt_that_waits_is_on_record_as_started_while_it_waits(
    stepline: Stepline, probe
):
    workflow = await stepline.register("blocking", Blocking)
    instance = await workflow.create()
    await probe.wait_for("hold")

    attempts: list[dict] = []
    for _ in range(200):
        view = await instance.status()
        if "hold-1" in [s.get("name") for s in view["steps"]]:
            attempts = step(view, "hold-1")["attempts"]
            break
        await asyncio.sleep(0.01)
    assert len(attempts) == 1
    assert attempts[0]["start"] is not None
    assert (attempts[0]["end"], attempts[0]["success"]) == (None, None)

    probe.gate("release").set()
    view = await finished(instance)
    assert [a["success"] for a in step(view, "hold-1")["attempts"]] == [True]


# -- pause -------------------------------------------------------------------------------------
async def test_pause_of_a_running_instance_waits_for_the_in_flight_step(
    make_stepline: MakeStepline, probe, clock
):
    _, instance = await in_status(make_stepline, probe, clock, "running")

    assert await instance.pause() == "waitingForPause"
    assert (await instance.status())["status"] == "waitingForPause"
    probe.gate("release").set()

    view = await wait_for_status(instance, "paused")
    assert step(view, "hold-1")["success"] is True
    assert probe.calls["after"] == 0


class HoldsToTheEnd(WorkflowEntrypoint):
    """Its one step is its last: ``run`` returns as soon as the step is done."""

    async def run(self, event, step):
        return await _held_step(step, self.env)()


async def test_pause_during_the_last_step_pauses_before_the_end(stepline: Stepline, probe):
    workflow = await stepline.register("holds-to-the-end", HoldsToTheEnd)
    instance = await workflow.create()
    await probe.wait_for("hold")

    assert await instance.pause() == "waitingForPause"
    probe.gate("release").set()
    view = await wait_for_status(instance, "paused")
    assert view["output"] is None
    assert step(view, "hold-1")["success"] is True

    await instance.resume()
    view = await finished(instance)
    assert view["status"] == "complete"
    assert view["output"] == "held"
    assert probe.calls["hold"] == 1


async def _pause_unheard(
    stepline: Stepline, probe: Probe, cls: type[WorkflowEntrypoint]
) -> tuple[InstanceHandle, InstanceRecord]:
    """An instance of ``cls`` in its step "hold", and a pause written for it with no notice
    (as another process's, not yet heard, or lost): its handle and its stored record."""
    workflow = await stepline.register("paused-unheard", cls)
    instance = await workflow.create()
    await probe.wait_for("hold")
    record = await stored_instance(stepline, "paused-unheard", instance.id)
    await stepline.store.update_instance(
        record.pk, expect=("running",), changes={"status": "waitingForPause"}
    )
    return instance, record


async def test_a_pause_written_during_the_last_step_is_kept_at_the_end(stepline: Stepline, probe):
    """The pause is written (waitingForPause) while the last step runs, its notice not yet
    at the runner, as another process's pause is: the end of the run parks the instance
    paused, rather than completing it over the pause."""
    instance, record = await _pause_unheard(stepline, probe, HoldsToTheEnd)

    probe.gate("release").set()
    view = await wait_for_status(instance, "paused")
    assert view["output"] is None
    assert view["end"] is None
    assert step(view, "hold-1")["success"] is True
    # The pause's notice comes now, the run gone: it is not kept for the run that the
    # resume starts, which would pause again at once.
    stepline.engine.handle_notice(Notice("pause", record.pk, record.lease_owner))

    await instance.resume()
    view = await finished(instance)
    assert (view["status"], view["output"]) == ("complete", "held")
    assert probe.calls["hold"] == 1


async def _no_claim_in_flight(stepline: Stepline) -> None:
    for _ in range(500):
        if not stepline.engine._promised:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a claim stayed in flight for 5 s")


async def test_a_pause_notice_that_finds_no_run_is_not_kept_for_a_later_instance(
    stepline: Stepline, probe
):
    """The pause's notice comes once the run has parked the instance paused (another
    process's pause), and the instance goes with its workflow, which no stop notice tells the
    engine. The notice is not kept for good, one for each such pause: on SQLite the next
    instance created takes the deleted one's number, and it would be paused as it starts."""
    instance, record = await _pause_unheard(stepline, probe, HoldsToTheEnd)
    probe.gate("release").set()
    await wait_for_status(instance, "paused")
    # Each check in one turn of the loop, once no claim of the scheduler's is in flight (on
    # PostgreSQL it looks for work every third of a lease): none can start in between.
    await _no_claim_in_flight(stepline)
    stepline.engine.handle_notice(Notice("pause", record.pk, record.lease_owner))
    assert stepline.engine._pending_pause == set()
    # Again while another instance is being claimed for the engine (a create, say).
    await _no_claim_in_flight(stepline)
    assert stepline.engine.promise(1)
    stepline.engine.handle_notice(Notice("pause", record.pk, record.lease_owner))
    stepline.engine.unpromise(1)
    assert stepline.engine._pending_pause == set()

    await stepline.client.delete_workflow(stepline.account_id, "paused-unheard")
    workflow = await stepline.register("paused-unheard", HoldsToTheEnd)
    again = await workflow.create()
    if stepline.store.backend == "sqlite":
        assert (await stored_instance(stepline, "paused-unheard", again.id)).pk == record.pk
    view = await finished(again)
    assert (view["status"], view["output"]) == ("complete", "held")


async def test_pause_waits_for_every_in_flight_step(stepline: Stepline, probe):
    workflow = await stepline.register("two-in-flight", TwoInFlight)
    instance = await workflow.create()
    await probe.wait_for("left started")
    await probe.wait_for("right started")

    assert await instance.pause() == "waitingForPause"
    probe.gate("left").set()
    await probe.wait_for("left done")
    await asyncio.sleep(0.05)
    assert (await instance.status())["status"] == "waitingForPause"
    probe.gate("right").set()

    view = await wait_for_status(instance, "paused")
    assert step(view, "left-1")["success"] is True
    assert step(view, "right-1")["success"] is True
    assert probe.calls["after"] == 0


async def test_pause_of_a_sleeping_instance_pauses_at_once(
    make_stepline: MakeStepline, probe, clock
):
    _, instance = await in_status(make_stepline, probe, clock, "waiting")

    assert await instance.pause() == "paused"
    assert (await instance.status())["status"] == "paused"


async def test_pause_interrupts_a_sleep_held_in_memory(make_stepline: MakeStepline, probe, clock):
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=HOT)
    instance = await (await stepline.register("sleeper", Sleeper)).create()
    await probe.wait_for("sleeping")

    assert await instance.pause() in ("waitingForPause", "paused")

    await wait_for_status(instance, "paused", timeout=2)
    assert probe.calls["after"] == 0


class EventWaiter(WorkflowEntrypoint):
    async def run(self, event, step):
        self.env.hit("waiting")
        got = await step.wait_for_event("approval", "approved", timeout="1 hour")
        return got["payload"]


async def test_pause_interrupts_an_event_wait_held_in_memory(
    make_stepline: MakeStepline, probe, clock
):
    stepline = await make_stepline(suspend_after=HOT)
    instance = await (await stepline.register("event-waiter", EventWaiter)).create()
    await probe.wait_for("waiting")

    assert await instance.pause() in ("waitingForPause", "paused")

    await wait_for_status(instance, "paused", timeout=2)
    await instance.send_event("approved", "after the pause")
    await instance.resume()
    assert (await finished(instance, timeout=3))["output"] == "after the pause"


async def test_a_pause_that_comes_as_the_run_parks_for_a_wait_is_kept(
    make_stepline: MakeStepline, probe, clock
):
    """The pause is written (waitingForPause) while the run is about to park for its wait,
    its notice not yet come: the park makes the instance paused, not waiting, and an event
    does not run it on before a resume."""
    # The wait is held in memory for half a second before the run parks: time enough for
    # the pause below to be written while it is still running.
    stepline = await make_stepline(suspend_after=500)
    workflow = await stepline.register("event-waiter", EventWaiter)
    instance = await workflow.create()
    await probe.wait_for("waiting")
    record = await stored_instance(stepline, "event-waiter", instance.id)
    # As another process's pause does it: the row, with the notice still on its way.
    pausing = await stepline.store.update_instance(
        record.pk, expect=("running",), changes={"status": "waitingForPause"}
    )
    assert pausing is not None

    await wait_for_status(instance, "paused", timeout=2)
    await instance.send_event("approved", "after the pause")
    await asyncio.sleep(0.2)
    assert (await instance.status())["status"] == "paused"
    await instance.resume()
    assert (await finished(instance, timeout=3))["output"] == "after the pause"


async def test_a_pause_that_finds_the_status_moving_tries_again(
    make_stepline: MakeStepline, probe, clock
):
    """The pause looks for ``waiting``, then for ``running``; the run parks in between (its
    suspension held the row): the pause finds ``waiting`` and pauses it, rather than
    answering ``waiting`` and doing nothing."""
    stepline = await make_stepline(suspend_after=SUSPEND)
    instance = await (await stepline.register("event-waiter", EventWaiter)).create()
    await wait_for_status(instance, "waiting")
    real = stepline.store.update_instance
    looks: list[tuple[str, ...]] = []

    async def parks_in_between(pk, *, expect, changes):
        looks.append(tuple(expect))
        if len(looks) == 1:
            return None  # it was still running when the pause looked for "waiting"
        return await real(pk, expect=expect, changes=changes)

    stepline.store.update_instance = parks_in_between  # type: ignore[method-assign]
    try:
        assert await instance.pause() == "paused"
    finally:
        stepline.store.update_instance = real  # type: ignore[method-assign]
    assert looks[:3] == [("waiting",), ("running",), ("waiting",)]
    assert (await instance.status())["status"] == "paused"


@pytest.mark.parametrize("status", ["queued", "waitingForPause", "paused"])
async def test_pause_is_a_no_op(make_stepline: MakeStepline, probe, clock, status):
    _, instance = await in_status(make_stepline, probe, clock, status)

    assert await instance.pause() == status
    assert (await instance.status())["status"] == status


# -- resume ------------------------------------------------------------------------------------
async def test_resume_of_a_paused_instance_runs_it_to_the_end(
    make_stepline: MakeStepline, probe, clock
):
    _, instance = await in_status(make_stepline, probe, clock, "paused")

    assert await instance.resume() in ("queued", "running")

    view = await finished(instance)
    assert view["status"] == "complete"
    assert probe.calls["hold"] == 1
    assert probe.calls["after"] == 1


async def test_a_resume_whose_caller_is_cancelled_still_runs_the_instance(
    make_stepline: MakeStepline, probe, clock
):
    """Once the resume is written, the engine is told: nothing is left queued and unseen."""
    stepline, instance = await in_status(make_stepline, probe, clock, "paused")

    await cancelled_inside(stepline.store, "resume", instance.resume())

    view = await finished(instance, timeout=5)
    assert view["status"] == "complete"


async def test_resume_of_waiting_for_pause_cancels_the_pause(
    make_stepline: MakeStepline, probe, clock
):
    _, instance = await in_status(make_stepline, probe, clock, "waitingForPause")

    assert await instance.resume() == "running"
    assert (await instance.status())["status"] == "running"
    probe.gate("release").set()

    view = await finished(instance)
    assert view["status"] == "complete"
    assert probe.calls["after"] == 1


async def test_a_resume_that_finds_the_pause_parking_tries_again(
    make_stepline: MakeStepline, probe, clock
):
    """The resume looks for ``paused``, then for ``waitingForPause``; the run parks paused in
    between (its last step ended): the resume finds ``paused`` and resumes it, rather than
    answering ``paused`` and leaving the instance paused for good."""
    stepline, instance = await in_status(make_stepline, probe, clock, "waitingForPause")
    real = stepline.store.resume
    looks: list[str] = []

    async def parks_after_the_look(pk, *, now):
        looks.append("paused")
        resumed = await real(pk, now=now)
        if len(looks) == 1:
            probe.gate("release").set()  # the step ends and the run parks paused
            await wait_for_status(instance, "paused")
        return resumed

    stepline.store.resume = parks_after_the_look  # type: ignore[method-assign]
    try:
        assert await instance.resume() == "queued"
    finally:
        stepline.store.resume = real  # type: ignore[method-assign]
    assert looks == ["paused", "paused"]
    view = await finished(instance)
    assert view["status"] == "complete"
    assert probe.calls["after"] == 1


@pytest.mark.parametrize("status", ["queued", "running"])
async def test_resume_is_a_no_op(make_stepline: MakeStepline, probe, clock, status):
    _, instance = await in_status(make_stepline, probe, clock, status)

    assert await instance.resume() == status
    assert (await instance.status())["status"] == status


async def test_resume_shifts_a_sleep_by_the_paused_time(make_stepline: MakeStepline, probe, clock):
    stepline, instance = await in_status(make_stepline, probe, clock, "waiting")
    wake_at = ms(step(await instance.status(), "nap-1")["end"])
    await instance.pause()
    clock.advance("30 minutes")

    await instance.resume()
    view = await wait_for_status(instance, "waiting")
    assert ms(step(view, "nap-1")["end"]) - wake_at in range(30 * 60_000, 30 * 60_000 + 1_000)

    clock.advance("40 minutes")  # past the original wake time, not the shifted one
    poke(stepline)
    await asyncio.sleep(0.1)
    assert (await instance.status())["status"] == "waiting"
    assert probe.calls["after"] == 0

    clock.advance("21 minutes")
    poke(stepline)
    assert (await finished(instance))["status"] == "complete"


# -- terminate ---------------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["queued", "running", "waiting", "waitingForPause", "paused"])
async def test_terminate_of_an_unfinished_instance(
    make_stepline: MakeStepline, probe, clock, status
):
    stepline, instance = await in_status(make_stepline, probe, clock, status)

    assert await instance.terminate() == "terminated"
    view = await instance.status()
    assert view["status"] == "terminated"
    assert view["success"] is False

    probe.gate("release").set()
    clock.advance("2 hours")
    poke(stepline)
    await asyncio.sleep(0.1)
    await stepline.engine.wait_idle()
    assert probe.calls["after"] == 0
    assert (await instance.status())["status"] == "terminated"


async def test_a_terminated_instance_cannot_be_resumed(make_stepline: MakeStepline, probe, clock):
    _, instance = await in_status(make_stepline, probe, clock, "paused")
    await instance.terminate()

    assert await instance.resume() == "terminated"
    await asyncio.sleep(0.1)
    assert (await instance.status())["status"] == "terminated"
    assert probe.calls["after"] == 0


@pytest.mark.parametrize("status", ["complete", "errored", "terminated"])
async def test_terminate_of_a_finished_instance_raises_cannot_terminate(
    make_stepline: MakeStepline, probe, clock, status
):
    _, instance = await in_status(make_stepline, probe, clock, status)

    with pytest.raises(CannotTerminate) as raised:
        await instance.terminate()
    assert raised.value.code == 10401
    assert (await instance.status())["status"] == status


@pytest.mark.parametrize("action", ["pause", "resume"])
@pytest.mark.parametrize("status", ["complete", "errored", "terminated"])
async def test_pause_and_resume_of_a_finished_instance_are_no_ops(
    make_stepline: MakeStepline, probe, clock, status, action
):
    _, instance = await in_status(make_stepline, probe, clock, status)

    assert await getattr(instance, action)() == status
    assert (await instance.status())["status"] == status


# -- delete ------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", EVERY_STATUS)
async def test_delete_removes_the_instance_from_any_status(
    make_stepline: MakeStepline, probe, clock, status
):
    stepline, instance = await in_status(make_stepline, probe, clock, status)
    after_before = probe.calls["after"]

    await instance.delete()

    with pytest.raises(InstanceNotFound):
        await instance.status()
    with pytest.raises(InstanceNotFound):
        await instance.workflow.get(instance.id)
    probe.gate("release").set()
    clock.advance("2 hours")
    poke(stepline)
    await asyncio.sleep(0.1)
    await stepline.engine.wait_idle()
    assert probe.calls["after"] == after_before


async def test_of_deletes_racing_for_one_instance_one_succeeds(stepline: Stepline, probe):
    """Each delete looks the instance up, then deletes it: the ones that find it gone by
    then answer not found, in the batch form too, rather than all answering deleted."""
    workflow = await stepline.register("blocking", Blocking)
    client, account = stepline.client, stepline.account_id
    for instance_id in ("one", "batched"):
        await workflow.create(id=instance_id)

    alone = await asyncio.gather(
        *(client.delete_instance(account, "blocking", "one") for _ in range(6)),
        return_exceptions=True,
    )
    batches = await asyncio.gather(
        *(client.delete_batch(account, "blocking", ["batched"]) for _ in range(6))
    )

    assert sum(not isinstance(r, BaseException) for r in alone) == 1
    assert all(isinstance(r, InstanceNotFound) for r in alone if isinstance(r, BaseException))
    assert sum(len(b["deleted"]) for b in batches) == 1
    assert sum(len(b["errors"]) for b in batches) == 5


async def test_an_engine_started_again_hears_each_notice_once(make_stepline: MakeStepline):
    stepline = await make_stepline()
    engine = stepline.engine
    heard: list[Notice] = []
    handle = engine.handle_notice

    def counting(notice: Notice) -> None:
        heard.append(notice)
        handle(notice)

    engine.handle_notice = counting  # type: ignore[method-assign]
    await engine.stop()
    for _ in range(3):
        await engine.start()
        await engine.stop()
    await stepline.store.publish(Notice("unpause", 1, engine.owner))
    await asyncio.sleep(0.05)
    assert heard == []  # a stopped engine hears nothing
    await engine.start()
    await stepline.store.publish(Notice("unpause", 1, engine.owner))
    for _ in range(100):  # on PostgreSQL the notice comes back through LISTEN
        if heard:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert heard == [Notice("unpause", 1, engine.owner)]


async def test_a_stepline_starts_once(make_stepline: MakeStepline, tmp_path):
    stepline = await make_stepline()
    workflow = await stepline.register("blocking", Blocking)

    # Started twice, it ran a second engine over the first one's store, and its stop hung.
    with pytest.raises(RuntimeError, match="started before, and a Stepline starts once"):
        await stepline.start()
    await stepline.stop()
    # Started after its stop, it ran over a closed store: the next read raised "cannot
    # schedule new futures after shutdown".
    with pytest.raises(RuntimeError, match="make a new Stepline on the same database"):
        await stepline.start()

    again = await make_stepline(directory=tmp_path)
    created = await again.workflow(workflow.name).create()
    assert (await created.status())["status"] in ("queued", "running")


class GathersAHoldAndASyncStep(WorkflowEntrypoint):
    """Step "hold" (async, until gate "release") beside a sync step, which queues for a
    thread while ``_GATE`` holds the only one."""

    async def run(self, event, step):
        return await asyncio.gather(_held_step(step, self.env)(), step.do("quick", lambda: 1))


class GathersAHoldAndALaterStep(WorkflowEntrypoint):
    """Step "hold" beside a branch that reaches a new step once gate "go on" opens."""

    async def run(self, event, step):
        async def later():
            await self.env.gate("go on").wait()
            return await step.do("after", lambda: 2)

        return await asyncio.gather(_held_step(step, self.env)(), later())


@pytest.mark.parametrize("parking", ["withdrawn sync step", "branch at a boundary"])
async def test_a_resume_while_the_pause_parks_the_instance_leaves_it_to_run(
    stepline: Stepline, probe, parking: str
):
    """The pause unwinds one branch (a sync step withdrawn from the thread queue, or a branch
    that reached a step boundary) while another still executes; the resume comes before the
    park is written. The instance is parked due at once, not waiting for nothing, for good."""
    async with step_threads(stepline, 1):
        if parking == "withdrawn sync step":
            await (await stepline.register("holds", HoldsAThread)).create()
            await asyncio.sleep(0.05)  # the one thread is taken
            flow = await stepline.register("gathers", GathersAHoldAndASyncStep)
        else:
            flow = await stepline.register("gathers", GathersAHoldAndALaterStep)
        instance = await flow.create()
        await probe.wait_for("hold")
        await asyncio.sleep(0.05)
        assert await instance.pause() == "waitingForPause"
        probe.gate("go on").set()  # the later branch reaches its step, a boundary
        await asyncio.sleep(0.05)
        assert await instance.resume() == "running"
        probe.gate("release").set()
        _GATE.set()
        view = await finished(instance, timeout=5)
    assert view["status"] == "complete"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"concurrency": 0}, "concurrency must be a whole number above 0, not 0"),
        ({"concurrency": -3}, "concurrency must be a whole number above 0, not -3"),
        ({"concurrency": 2.5}, "concurrency must be a whole number above 0, not 2.5"),
        ({"lease": 0}, "lease must be at least 100 ms, not 0 ms"),
        ({"lease": "50 ms"}, "lease must be at least 100 ms, not 50 ms"),
    ],
)
def test_an_engine_that_could_run_nothing_is_refused(tmp_path, option, message):
    # Taken, an engine of none left every instance queued; and a lease of 0 lapsed as it was
    # taken (each run stopped at once) while the scheduler read the database without a pause.
    with pytest.raises(ValueError, match=message):
        Stepline(f"sqlite:///{tmp_path}/db.sqlite3", **option)


class Deployed(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("one", lambda: event.payload)


async def test_the_engine_keeps_a_bounded_number_of_versions_read(
    stepline: Stepline, monkeypatch: pytest.MonkeyPatch
):
    """Each deploy makes a version, and a deleted workflow's are never read again: an engine
    serving for weeks keeps the most recent it has read, not every one it ever ran."""
    monkeypatch.setattr(scheduler, "_REMEMBERED", 3, raising=False)
    for deploy in range(6):
        workflow = await stepline.register(f"deployed-{deploy}", Deployed)
        view = await finished(await workflow.create(params=deploy))
        assert (view["status"], view["output"]) == ("complete", deploy)
        await stepline.client.delete_workflow(stepline.account_id, f"deployed-{deploy}")

    assert len(stepline.engine._versions) == 3
    assert len(stepline.engine._workflow_names) == 3


@pytest.mark.parametrize("noticed", ["another instance", "this instance"])
async def test_a_look_for_lost_pauses_yields_only_to_the_notices_of_its_instance(
    stepline: Stepline, probe, noticed: str
):
    """The look an engine sharing the database makes at each lease renewal, for pauses whose
    notice it missed: a notice for the same instance while it reads is newer, and wins; one
    for another instance (a resume elsewhere in the fleet) does not void the look, as a
    count of every notice did, so that steady pauses and resumes hid a lost pause for good."""
    # Asked to pause, with no notice: as when it was lost.
    _, record = await _pause_unheard(stepline, probe, Blocking)
    runner = stepline.engine.runners[record.pk]
    read = stepline.store.pausing_among
    other = record.pk if noticed == "this instance" else record.pk + 1

    async def read_as_a_notice_comes(pks):
        stepline.engine.handle_notice(Notice("unpause", other, None))
        return await read(pks)

    stepline.store.pausing_among = read_as_a_notice_comes  # type: ignore[method-assign]
    try:
        await stepline.engine._find_lost_pauses([runner])
    finally:
        stepline.store.pausing_among = read  # type: ignore[method-assign]
    assert runner.pause_requested is (noticed == "another instance")
    probe.gate("release").set()
