"""Alone on its database (SQLite), an engine that has room for a create claims it in the
insert's own transaction: the runner starts as the create returns, with no scheduling pass and
no claim of its own. Sharing one (PostgreSQL), creates are left to the engines' claims."""

from __future__ import annotations

import asyncio
from typing import Any

from stepline import Stepline, WorkflowEntrypoint
from stepline.store.port import WorkflowSettings
from tests.conftest import MakeStepline
from tests.engine.helpers import cancelled_inside, finished, stored_instance


class Held(WorkflowEntrypoint):
    """One step that waits at gate "open"."""

    async def run(self, event, step):
        @step.do("held")
        async def held():
            self.env.hit("entered")
            await self.env.gate("open").wait()
            return event.payload

        return await held()


def count_claims(stepline: Stepline) -> list[str]:
    """Every instance id that the scheduler's claim hands out from now on."""
    claimed: list[str] = []
    claim = stepline.store.claim_runnable

    async def counting(*args: Any, **kwargs: Any) -> Any:
        batch = await claim(*args, **kwargs)
        claimed.extend(instance.id for instance, _ in batch)
        return batch

    stepline.store.claim_runnable = counting  # type: ignore[method-assign]
    return claimed


async def test_a_create_with_room_is_running_as_it_returns_when_alone(
    make_stepline: MakeStepline, probe
):
    stepline = await make_stepline()
    workflow = await stepline.register("held", Held)
    claimed = count_claims(stepline)
    created = await stepline.client.create_batch(
        stepline.account_id, "held", [{"instance_id": f"h{n}", "params": n} for n in range(3)]
    )
    # The create reports the instances as created: queued, as Cloudflare's does.
    assert [c["status"] for c in created] == ["queued"] * 3
    exclusive = stepline.store.exclusive
    for n in range(3):
        found = await stored_instance(stepline, "held", f"h{n}")
        if exclusive:
            owner = stepline.engine.owner
            assert (found.status, found.lease_owner, found.generation) == ("running", owner, 1)
            assert found.started_on == found.created_on
        elif found.status == "queued":
            # Or the scheduler has claimed it already; the claims counted below show that it
            # was the scheduler, not the create, that claimed each one.
            assert (found.lease_owner, found.generation) == (None, 0)
    await probe.wait_for("entered", 3)
    probe.gate("open").set()
    for n in range(3):
        assert (await finished(await workflow.get(f"h{n}")))["output"] == n
    assert sorted(claimed) == ([] if exclusive else ["h0", "h1", "h2"])


async def test_a_batch_larger_than_the_free_slots_is_left_to_the_scheduler(
    make_stepline: MakeStepline, probe
):
    stepline = await make_stepline(concurrency=2)
    workflow = await stepline.register("held", Held)
    claimed = count_claims(stepline)
    await workflow.create_batch([{"id": f"b{n}"} for n in range(3)])
    await probe.wait_for("entered", 2)
    await asyncio.sleep(0.05)
    statuses = sorted([(await stored_instance(stepline, "held", f"b{n}")).status for n in range(3)])
    assert statuses == ["queued", "running", "running"]
    probe.gate("open").set()
    for n in range(3):
        await finished(await workflow.get(f"b{n}"))
    assert sorted(claimed) == ["b0", "b1", "b2"]


async def test_a_limited_workflow_is_left_to_the_scheduler(make_stepline: MakeStepline, probe):
    stepline = await make_stepline()
    await stepline.control.register(
        stepline.account_id, "limited", Held, WorkflowSettings(concurrency_limit=1)
    )
    workflow = stepline.workflow("limited")
    claimed = count_claims(stepline)
    first = await workflow.create(id="l0")
    found = await stored_instance(stepline, "limited", "l0")
    if found.status == "queued":  # else the scheduler was first: `claimed` says it was
        assert found.lease_owner is None
    await probe.wait_for("entered", 1)
    probe.gate("open").set()
    await finished(first)
    assert claimed == ["l0"]


async def test_an_engine_that_stopped_claims_nothing_at_create(make_stepline: MakeStepline):
    stepline = await make_stepline()
    workflow = await stepline.register("held", Held)
    await stepline.engine.stop()
    await workflow.create(id="later")
    found = await stored_instance(stepline, "held", "later")
    assert found.status == "queued" and found.lease_owner is None


async def test_a_create_cancelled_while_it_inserts_still_starts_what_it_inserted(
    make_stepline: MakeStepline, probe
):
    """The insert goes ahead once submitted, whoever stops waiting for it; what it wrote (on
    SQLite, claimed for this engine) runs now, not when a lease nobody renews has lapsed."""
    stepline = await make_stepline()
    workflow = await stepline.register("held", Held)
    batch = [{"id": f"c{n}", "params": n} for n in range(3)]
    await cancelled_inside(stepline.store, "insert_instances", workflow.create_batch(batch))

    await probe.wait_for("entered", 3, timeout=3)
    probe.gate("open").set()
    for n in range(3):
        assert (await finished(await workflow.get(f"c{n}")))["output"] == n


async def test_a_stop_waits_for_a_create_whose_caller_was_cancelled(
    make_stepline: MakeStepline, probe, tmp_path
):
    """An operation runs to its end once called, a stop coming just after included: the stop
    waits for it (up to its grace) before the store closes under it."""
    probe.gate("open").set()
    first = await make_stepline()
    workflow = await first.register("held", Held)
    insert = first.store.insert_instances

    async def slow_insert(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.05)
        return await insert(*args, **kwargs)

    first.store.insert_instances = slow_insert  # type: ignore[method-assign]
    await cancelled_inside(first.store, "insert_instances", workflow.create(id="late", params=2))
    await first.stop()

    second = await make_stepline(directory=tmp_path)
    await second.register("held", Held)
    instance = await second.workflow("held").get("late")
    assert (await finished(instance, timeout=5))["output"] == 2


class Quick(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("one", lambda: event.payload)


async def test_an_instance_whose_workflow_is_deleted_as_its_run_starts_is_no_error(
    make_stepline: MakeStepline,
):
    """The workflow's delete lands between the instance's insert and its runner's start (a
    DELETE racing a POST): the instance went with its workflow, and nothing is in error. On
    SQLite the run starts inside the create, whose caller got a 500 from the attempt to
    record the instance as errored; on PostgreSQL, in the scheduler's pass."""
    stepline = await make_stepline()
    doomed = await stepline.register("doomed", Quick)
    make_runner = stepline.engine._make_runner

    async def deleted_first(instance: Any, steps: Any) -> Any:
        if instance.id == "short-lived":
            await stepline.store.delete_workflow(instance.workflow_id)
        return await make_runner(instance, steps)

    stepline.engine._make_runner = deleted_first  # type: ignore[method-assign]
    created = await doomed.create(id="short-lived")
    assert created.id == "short-lived"

    # The engine goes on: another workflow's instance runs to its end.
    other = await stepline.register("other", Quick)
    assert (await finished(await other.create(params=7)))["output"] == 7
    assert await stepline.store.get_workflow(stepline.account_id, "doomed") is None
