"""The engine's own loops (scheduling, leases, retention) outlive any error they meet: one
that a store raises which is not an outage ends no loop, is logged with its traceback, and
the loop looks again."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.engine.instances import new_instance_record
from stepline.testing import TestClock, wait_for_status
from tests.conftest import SUSPEND, MakeStepline


class Napper(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("nap", "1 hour")
        return "rested"


async def test_the_scheduler_outlives_an_unexpected_error(
    make_stepline: MakeStepline, clock: TestClock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=SUSPEND)
    instance = await (await stepline.register("napper", Napper)).create()
    await wait_for_status(instance, "waiting")  # parked: only the scheduler wakes it

    store: Any = stepline.store
    claim = store.claim_runnable
    failures = []

    async def fails_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise RuntimeError("a bug, not an outage")
        return await claim(*args, **kwargs)

    store.claim_runnable = fails_once
    with caplog.at_level(logging.ERROR, logger="stepline.engine"):
        clock.advance("2 hours")
        view = await wait_for_status(instance, "complete", timeout=10)

    assert view["output"] == "rested"
    [record] = [r for r in caplog.records if r.name == "stepline.engine"]
    assert record.getMessage() == "scheduling failed; retrying"
    assert record.exc_info is not None and "a bug, not an outage" in str(record.exc_info[1])


async def insert_orphan(
    stepline: Stepline, workflow_name: str, clock: TestClock, status: str = "running"
) -> Any:
    """Instance "orphan", ``status`` on an engine that is gone: its lease ran out a moment ago."""
    workflow = await stepline.store.get_workflow(stepline.account_id, workflow_name)
    assert workflow is not None
    now = clock.now_ms()
    orphan = new_instance_record(workflow, "orphan", "null", now=now, trigger_source="api")
    orphan.status, orphan.started_on, orphan.generation = status, now, 1
    orphan.lease_owner, orphan.lease_expires = "gone:1:dead", now - 1
    [inserted] = await stepline.store.insert_instances([orphan], skip_existing=False, now=now)
    return inserted


class Quick(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("one", lambda: 1)


async def test_an_instance_whose_engines_lease_lapsed_is_taken_over_and_said_so(
    make_stepline: MakeStepline, clock: TestClock, caplog: pytest.LogCaptureFixture
) -> None:
    stepline = await make_stepline(lease="600 ms")
    await stepline.register("quick", Quick)
    with caplog.at_level(logging.INFO, logger="stepline.engine"):
        await insert_orphan(stepline, "quick", clock)
        instance = await stepline.workflow("quick").get("orphan")
        view = await wait_for_status(instance, "complete", timeout=10)

    assert view["output"] == 1
    said = [r.getMessage() for r in caplog.records if r.name == "stepline.engine"]
    assert "took over instances whose engine's lease lapsed: 1" in said


class SeesItsStart(WorkflowEntrypoint):
    """Its step reports whether its attempt's start was already stored as its code began."""

    async def run(self, event, step):
        async def look(ctx):
            stored = await self.env.store.load_steps(self.env.pk)
            return [len(s.attempts) for s in stored if s.name == "look-1"]

        return await step.do("look", look)


@pytest.mark.parametrize("status", ["running", "waitingForPause"])
async def test_the_first_attempt_after_a_crash_is_stored_as_started_before_it_runs(
    make_stepline: MakeStepline, clock: TestClock, probe: Any, status: str
) -> None:
    """A step that ends the process at once (native code that crashes, an OOM kill) leaves
    no trace when its start is written with the next commit: every recovery would run it
    again. After a crash, the run's first attempt is stored as started before its code."""
    stepline = await make_stepline(lease="600 ms")
    await stepline.register("sees-its-start", SeesItsStart)
    probe.store = stepline.store
    probe.pk = (await insert_orphan(stepline, "sees-its-start", clock, status)).pk
    instance = await stepline.workflow("sees-its-start").get("orphan")
    if status == "waitingForPause":  # taken back as paused: it runs once resumed
        await wait_for_status(instance, "paused", timeout=10)
        await instance.resume()
    view = await wait_for_status(instance, "complete", timeout=10)

    assert view["output"] == [1]
    [attempt] = view["steps"][0]["attempts"]
    assert attempt["success"] is True
