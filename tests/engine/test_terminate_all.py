"""Terminate-all jobs (spec §1, endpoints 14 and 15): the job and its flag outlive the process
that started it, and the next process to start finishes it."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from pathlib import Path

from stepline import InstanceHandle, Stepline, WorkflowEntrypoint
from stepline.engine.terminators import Terminators
from stepline.testing import TestClock, wait_for_status
from tests.conftest import MakeStepline
from tests.engine.helpers import finished


class Napper(WorkflowEntrypoint):
    """Sleeps an hour: on a test clock that does not skip, it waits until it is terminated."""

    async def run(self, event, step):
        await step.sleep("nap", "1 hour")
        return "woke"


async def _nappers(stepline: Stepline, count: int) -> list[InstanceHandle]:
    flow = await stepline.register("nappers", Napper)
    instances = [await flow.create(id=f"n{i}") for i in range(count)]
    for instance in instances:
        await wait_for_status(instance, "waiting", timeout=5)
    return instances


async def _job_status(stepline: Stepline) -> str:
    view = await stepline.client.terminate_all_status(stepline.account_id, "nappers")
    return str(view["status"])


async def _until_the_job_ends(stepline: Stepline) -> None:
    """Its run ends the job just after its last terminate: wait up to 2 s for that."""
    for _ in range(200):
        if await _job_status(stepline) == "not_running":
            return
        await asyncio.sleep(0.01)


async def _workflow_flag(stepline: Stepline) -> bool:
    """The flag the workflow's record holds (a PUT's answer shows it as 0 or 1)."""
    workflow = await stepline.store.get_workflow(stepline.account_id, "nappers")
    assert workflow is not None
    return workflow.terminator_running


async def test_terminate_all_terminates_what_matches_then_clears_its_flag(
    make_stepline: MakeStepline, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline()
    instances = await _nappers(stepline, 3)

    started = await stepline.client.terminate_all(stepline.account_id, "nappers", status="waiting")

    assert started == {"status": "ok"}
    for instance in instances:
        assert (await finished(instance))["status"] == "terminated"
    await _until_the_job_ends(stepline)
    assert await _job_status(stepline) == "not_running"
    assert await _workflow_flag(stepline) is False


async def test_a_job_leaves_alone_the_instances_created_after_it_was_asked_for(
    make_stepline: MakeStepline, clock: TestClock
):
    """The job terminates what was there when it was asked for: with instances created as
    fast as it terminates them, it would never end (nor clear its flag)."""
    clock.auto_skip = False
    stepline = await make_stepline()
    before = await _nappers(stepline, 3)
    terminate_many = stepline.control.terminate_many
    release = asyncio.Event()

    async def held(pks: Sequence[int], *, expect: Collection[str] | None = None) -> int:
        await release.wait()  # its first page, until the late instances are in
        return await terminate_many(pks, expect=expect)

    stepline.control.terminate_many = held  # type: ignore[method-assign]
    assert await stepline.client.terminate_all(stepline.account_id, "nappers") == {"status": "ok"}
    clock.advance("1 second")
    late = [await stepline.workflow("nappers").create(id=f"late{i}") for i in range(2)]
    for instance in late:
        await wait_for_status(instance, "waiting", timeout=5)
    release.set()

    for instance in before:
        assert (await finished(instance))["status"] == "terminated"
    await _until_the_job_ends(stepline)
    assert await _job_status(stepline) == "not_running"
    for instance in late:
        assert (await instance.status())["status"] == "waiting"


async def test_a_second_terminate_all_while_one_runs_is_already_running(
    make_stepline: MakeStepline, clock: TestClock
):
    clock.auto_skip = False
    stepline = await make_stepline()
    await _nappers(stepline, 1)
    gate = asyncio.Event()
    real = stepline.control.terminate_many

    async def held(pks: Sequence[int], *, expect: Collection[str] | None = None) -> int:
        await gate.wait()
        return await real(pks, expect=expect)

    stepline.control.terminate_many = held  # type: ignore[method-assign]
    client, account = stepline.client, stepline.account_id

    assert await client.terminate_all(account, "nappers") == {"status": "ok"}
    assert await client.terminate_all(account, "nappers") == {"status": "already_running"}
    assert await _job_status(stepline) == "running"
    assert await _workflow_flag(stepline) is True
    gate.set()


async def test_a_job_cut_short_by_a_stop_is_finished_by_the_next_start(
    make_stepline: MakeStepline, clock: TestClock, tmp_path: Path
):
    """Stopped in the middle of its job, a process leaves the job and its flag in the
    database (not a flag that stays set with nobody running it); the next process to start
    takes the job up and terminates the rest."""
    clock.auto_skip = False
    first = await make_stepline()
    instances = await _nappers(first, 3)
    reached = asyncio.Event()

    async def stuck(pks: Sequence[int], *, expect: Collection[str] | None = None) -> int:
        reached.set()
        await asyncio.Event().wait()  # until the stop cancels the job
        return 0

    first.control.terminate_many = stuck  # type: ignore[method-assign]
    assert await first.client.terminate_all(first.account_id, "nappers") == {"status": "ok"}
    await asyncio.wait_for(reached.wait(), timeout=5)
    await first.stop()

    second = await make_stepline(directory=tmp_path)
    await second.register("nappers", Napper)
    for instance in instances:
        again = await second.workflow("nappers").get(instance.id)
        assert (await finished(again))["status"] == "terminated"
    await _until_the_job_ends(second)
    assert await _workflow_flag(second) is False


async def test_a_new_job_runs_while_a_run_of_the_job_before_it_is_still_ending(
    make_stepline: MakeStepline, clock: TestClock
):
    """Another process may end a job while this one's run of it is still going: a job set
    after that gets a run here at once, not when the old run is over."""
    clock.auto_skip = False
    stepline = await make_stepline()
    instances = await _nappers(stepline, 2)
    gate, held = asyncio.Event(), asyncio.Event()
    real = stepline.control.terminate_many

    async def first_held(pks: Sequence[int], *, expect: Collection[str] | None = None) -> int:
        if not held.is_set():
            held.set()
            await gate.wait()
        return await real(pks, expect=expect)

    stepline.control.terminate_many = first_held  # type: ignore[method-assign]
    client, account = stepline.client, stepline.account_id
    assert await client.terminate_all(account, "nappers") == {"status": "ok"}
    await asyncio.wait_for(held.wait(), timeout=5)
    far = clock.now_ms() + 3_600_000  # taken as another process would once the lease lapsed
    [(workflow_id, job)] = await stepline.store.take_terminator_jobs(now=far, lease_until=far)
    await stepline.store.end_terminator(workflow_id, job)  # as another process's run would

    assert await client.terminate_all(account, "nappers", status="waiting") == {"status": "ok"}
    for instance in instances:
        assert (await finished(instance, timeout=5))["status"] == "terminated"
    gate.set()


async def test_a_job_whose_process_died_is_taken_up_once_its_lease_lapses(
    make_stepline: MakeStepline, clock: TestClock
):
    """A process that dies in the middle of a job cannot give it back: a process that is
    running takes it up once the job's lease has lapsed, without waiting for one to start."""
    clock.auto_skip = False
    stepline = await make_stepline(lease=300)  # looks for jobs every 100 ms
    instances = await _nappers(stepline, 2)
    workflow = await stepline.store.get_workflow(stepline.account_id, "nappers")
    assert workflow is not None
    # Set as the dead process set it: held by that process for its lease, a minute from now
    # (the test clock is wall-clock time plus what the test adds).
    job = '{"run": "of a process that died", "statuses": ["waiting"]}'
    lease_until = clock.now_ms() + 60_000
    assert await stepline.store.start_terminator(workflow.id, job, lease_until=lease_until)

    await asyncio.sleep(0.35)  # three looks, all before the lease lapses
    for instance in instances:
        assert (await instance.status())["status"] == "waiting"
    assert await _job_status(stepline) == "running"

    clock.advance(60_000)
    for instance in instances:
        assert (await finished(instance, timeout=5))["status"] == "terminated"
    await _until_the_job_ends(stepline)
    assert await _workflow_flag(stepline) is False


async def test_a_job_of_an_earlier_version_leaves_what_was_created_after_it_was_taken_up(
    make_stepline: MakeStepline, clock: TestClock
):
    """A job written before jobs kept the time they were asked for (no ``created_by``),
    taken up after an upgrade: the instances created while it runs are left to run."""
    clock.auto_skip = False
    stepline = await make_stepline(lease=300)  # looks for jobs every 100 ms
    instances = await _nappers(stepline, 2)
    workflow = await stepline.store.get_workflow(stepline.account_id, "nappers")
    assert workflow is not None
    gate, pages = asyncio.Event(), []
    real = stepline.control.terminate_many

    async def slow(pks: Sequence[int], *, expect: Collection[str] | None = None) -> int:
        pages.append(len(pks))
        await gate.wait()
        return await real(pks, expect=expect)

    stepline.control.terminate_many = slow  # type: ignore[method-assign]
    job = '{"run": "of an earlier version", "statuses": ["waiting"]}'
    assert await stepline.store.start_terminator(workflow.id, job, lease_until=clock.now_ms() - 1)
    for _ in range(300):  # taken up within a look or two
        if pages:
            break
        await asyncio.sleep(0.01)
    assert pages, "the job was not taken up"
    clock.advance(1)
    late = await stepline.workflow("nappers").create(id="late")
    await wait_for_status(late, "waiting", timeout=5)
    gate.set()

    for instance in instances:
        assert (await finished(instance, timeout=5))["status"] == "terminated"
    await _until_the_job_ends(stepline)
    assert (await late.status())["status"] == "waiting"
    assert pages == [2]


async def test_a_running_job_keeps_its_lease_and_is_not_taken_by_another_process(
    make_stepline: MakeStepline, clock: TestClock, tmp_path: Path
):
    """The process running a job renews its lease: another process sharing the database
    leaves the job to it, however long it runs. (The other serves the API only: a SQLite
    file has one engine, and a job is held by API processes as by engines.)"""
    clock.auto_skip = False
    first = await make_stepline(lease=1200)
    await _nappers(first, 1)
    gate, calls = asyncio.Event(), []
    real = first.control.terminate_many

    async def slow(pks: Sequence[int], *, expect: Collection[str] | None = None) -> int:
        calls.append("first")
        await gate.wait()
        return await real(pks, expect=expect)

    first.control.terminate_many = slow  # type: ignore[method-assign]
    assert await first.client.terminate_all(first.account_id, "nappers") == {"status": "ok"}
    second = await make_stepline(directory=tmp_path, lease=1200, run_engine=False)

    async def counted(pks: Sequence[int], *, expect: Collection[str] | None = None) -> int:
        calls.append("second")
        return 0

    second.control.terminate_many = counted  # type: ignore[method-assign]
    await asyncio.sleep(2.6)  # over two leases, renewed every 400 ms by the first
    assert calls == ["first"]
    gate.set()
    await _until_the_job_ends(first)
    assert await _workflow_flag(first) is False


async def test_a_stop_during_a_look_for_jobs_gives_back_what_the_look_took(
    make_stepline: MakeStepline, clock: TestClock
):
    """A look that has just taken a job when the process stops runs it and gives it back,
    rather than leaving it held by nobody until its lease lapses."""
    clock.auto_skip = False
    stepline = await make_stepline()
    await _nappers(stepline, 1)
    workflow = await stepline.store.get_workflow(stepline.account_id, "nappers")
    assert workflow is not None
    store = stepline.store
    real_take = store.take_terminator_jobs
    took, release = asyncio.Event(), asyncio.Event()

    async def slow_take(*, now: int, lease_until: int) -> list[tuple[str, str]]:
        taken = await real_take(now=now, lease_until=lease_until)
        if taken:
            took.set()
            await release.wait()
        return taken

    store.take_terminator_jobs = slow_take  # type: ignore[method-assign]

    async def never_ends(pks: Sequence[int], statuses: Collection[str]) -> int:
        await asyncio.Event().wait()
        return 0

    # A job left by a process that died long ago, and a watch with a lease of a minute.
    job = '{"run": "left", "statuses": ["waiting"]}'
    assert await store.start_terminator(workflow.id, job, lease_until=clock.now_ms() - 1)
    terminators = Terminators(store, never_ends, clock, lease_ms=60_000)
    terminators.take_up()
    await asyncio.wait_for(took.wait(), timeout=5)
    stopping = asyncio.create_task(terminators.stop())
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.wait_for(stopping, timeout=10)

    later = clock.now_ms()
    assert await real_take(now=later, lease_until=later + 1) == [(workflow.id, job)]
