"""Retention of finished instances, and reuse of their ids (§3.4, §3.6)."""

from __future__ import annotations

import pytest

from stepline import InstanceAlreadyExists, InstanceNotFound, Stepline, WorkflowEntrypoint
from stepline.testing import TestClock, wait_for_status
from tests.engine.helpers import finished


class Outcome(WorkflowEntrypoint):
    """Completes with ``params``, or fails when ``params`` is "fail"."""

    async def run(self, event, step):
        if event.payload == "fail":
            raise RuntimeError("failed")
        if event.payload == "sleep":
            await step.sleep("nap", "1 day")
        return event.payload


async def _gone(stepline: Stepline, workflow, instance_id: str) -> bool:
    await stepline.engine.sweep_expired()
    try:
        await workflow.get(instance_id)
    except InstanceNotFound:
        return True
    return False


async def test_a_complete_instance_disappears_after_its_success_retention(
    stepline: Stepline, clock: TestClock
):
    workflow = await stepline.register("outcome", Outcome)
    instance = await workflow.create(
        id="short-lived", params="first", retention={"success_retention": "1 second"}
    )
    await finished(instance)
    assert not await _gone(stepline, workflow, "short-lived")

    clock.advance("2 seconds")
    assert await _gone(stepline, workflow, "short-lived")

    reused = await workflow.create(id="short-lived", params="second")
    assert (await finished(reused))["output"] == "second"


async def test_an_unexpired_finished_instance_blocks_its_id(stepline: Stepline):
    workflow = await stepline.register("outcome", Outcome)
    await finished(await workflow.create(id="taken", params="first"))

    with pytest.raises(InstanceAlreadyExists) as raised:
        await workflow.create(id="taken", params="second")
    assert raised.value.code == 10405
    assert (await (await workflow.get("taken")).status())["output"] == "first"


async def test_an_unfinished_instance_blocks_its_id(stepline: Stepline, clock: TestClock):
    clock.auto_skip = False
    workflow = await stepline.register("outcome", Outcome)
    await workflow.create(id="busy", params="sleep")

    with pytest.raises(InstanceAlreadyExists):
        await workflow.create(id="busy")


@pytest.mark.parametrize("final", ["errored", "terminated"])
async def test_error_retention_applies_to_errored_and_terminated(
    stepline: Stepline, clock: TestClock, final
):
    clock.auto_skip = False
    workflow = await stepline.register("outcome", Outcome)
    retention = {"success_retention": "30 days", "error_retention": "1 minute"}
    params = "fail" if final == "errored" else "sleep"
    instance = await workflow.create(id="failing", params=params, retention=retention)
    if final == "terminated":
        await wait_for_status(instance, "waiting")
        await instance.terminate()
    await wait_for_status(instance, final)

    clock.advance("30 seconds")
    assert not await _gone(stepline, workflow, "failing")
    clock.advance("31 seconds")
    assert await _gone(stepline, workflow, "failing")


async def test_success_retention_does_not_apply_to_errored(stepline: Stepline, clock: TestClock):
    workflow = await stepline.register("outcome", Outcome)
    retention = {"success_retention": "1 second"}
    await finished(await workflow.create(id="kept", params="fail", retention=retention))

    clock.advance("1 hour")
    assert not await _gone(stepline, workflow, "kept")


async def test_the_default_retention_is_30_days(stepline: Stepline, clock: TestClock):
    workflow = await stepline.register("outcome", Outcome)
    await finished(await workflow.create(id="default", params="x"))

    clock.advance("29 days")
    assert not await _gone(stepline, workflow, "default")
    clock.advance("2 days")
    assert await _gone(stepline, workflow, "default")


async def test_an_unfinished_instance_never_expires(stepline: Stepline, clock: TestClock):
    clock.auto_skip = False
    workflow = await stepline.register("outcome", Outcome)
    retention = {"success_retention": "1 second", "error_retention": "1 second"}
    instance = await workflow.create(id="sleepy", params="sleep", retention=retention)
    await wait_for_status(instance, "waiting")

    clock.advance("1 hour")
    assert not await _gone(stepline, workflow, "sleepy")


async def test_the_workflow_default_retention_applies(stepline: Stepline, clock: TestClock):
    workflow = await stepline.register("outcome", Outcome, success_retention="1 minute")
    await finished(await workflow.create(id="wf-default", params="x"))

    clock.advance("2 minutes")
    assert await _gone(stepline, workflow, "wf-default")


async def test_a_batch_may_reuse_an_expired_id(stepline: Stepline, clock: TestClock):
    workflow = await stepline.register("outcome", Outcome)
    retention = {"success_retention": "1 second"}
    await finished(await workflow.create(id="again", params="first", retention=retention))
    clock.advance("2 seconds")

    created = await workflow.create_batch([{"id": "again", "params": "second"}])

    assert [c.id for c in created] == ["again"]
    assert (await finished(created[0]))["output"] == "second"


async def test_an_expired_instance_is_neither_listed_nor_counted_before_the_sweep(
    stepline: Stepline, clock: TestClock
):
    """Until the sweep deletes it, an expired instance is already gone for every read: the
    list, its total, the workflow's counts (and so wrangler's ``latest``) agree with get."""
    workflow = await stepline.register("outcome", Outcome)
    await finished(await workflow.create(id="kept", params="kept"))
    short = await workflow.create(
        id="short-lived", params="short", retention={"success_retention": "1 second"}
    )
    await finished(short)
    clock.advance("2 seconds")  # expired, not yet swept

    with pytest.raises(InstanceNotFound):
        await workflow.get("short-lived")
    page = await stepline.client.list_instances(stepline.account_id, "outcome")
    assert [item["id"] for item in page.items] == ["kept"]
    assert page.total_count == 1
    view = await stepline.client.get_workflow(stepline.account_id, "outcome")
    assert {k: v for k, v in view["instances"].items() if v} == {"complete": 1}
    listed = await stepline.client.list_workflows(stepline.account_id)
    assert {k: v for k, v in listed.items[0]["instances"].items() if v} == {"complete": 1}
