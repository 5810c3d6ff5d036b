"""A run whose engine may have lost its lease starts no more attempts. Sharing a database,
another engine takes over an instance whose lease lapsed; the engine that was held up (a
SIGSTOP, an event loop blocked by a step) must not go on to run steps beside it, or again
after it: each step whose result was saved runs once."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from stepline import WorkflowEntrypoint
from tests.conftest import MakeStepline
from tests.engine.helpers import finished


class TwoSteps(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("one")
        async def one():
            self.env.hit("one")
            await self.env.gate("go").wait()
            return 1

        @step.do("two")
        async def two():
            self.env.hit("two")
            return 2

        return await one() + await two()


async def test_a_run_held_past_its_lease_starts_no_more_attempts(
    make_stepline: MakeStepline, probe
):
    stepline = await make_stepline(lease="1 second")
    workflow = await stepline.register("two-steps", TwoSteps)
    instance = await workflow.create()
    await probe.wait_for("one")

    # As if the engine had been held up past its lease while step one ran.
    [runner] = stepline.engine.runners.values()
    runner.held_until = 0
    probe.gate("go").set()
    await asyncio.sleep(0.3)
    assert probe.calls["two"] == 0  # not in this run: another engine may be running it

    # The lease lapses, and a run of the engine that takes the instance over (this one,
    # here) goes on from the saved step one.
    view = await finished(instance, timeout=10)
    assert view["output"] == 3
    assert (probe.calls["one"], probe.calls["two"]) == (1, 1)


@pytest.mark.skipif(not hasattr(time, "CLOCK_BOOTTIME"), reason="Linux's suspend-aware clock")
async def test_a_run_whose_machine_was_suspended_past_its_lease_starts_no_more_attempts(
    make_stepline: MakeStepline, probe, monkeypatch: pytest.MonkeyPatch
):
    """A suspend (a laptop's lid, a VM paused by its host) stops ``time.monotonic``, yet the
    wall clock and the other engines go on: the lease lapsed while the machine slept.
    (Alone on its SQLite file, no other engine takes over, and there is no such guard.)"""
    stepline = await make_stepline(lease="1 second")
    if stepline.store.exclusive:
        pytest.skip("no other engine shares the database")
    workflow = await stepline.register("two-steps", TwoSteps)
    instance = await workflow.create()
    await probe.wait_for("one")

    clock_gettime = time.clock_gettime

    def after_a_suspend(clock: int) -> float:
        slept = 60.0 if clock == time.CLOCK_BOOTTIME else 0.0
        return clock_gettime(clock) + slept

    monkeypatch.setattr(time, "clock_gettime", after_a_suspend)
    probe.gate("go").set()
    await asyncio.sleep(0.3)
    assert probe.calls["two"] == 0

    monkeypatch.undo()
    view = await finished(instance, timeout=10)
    assert view["output"] == 3
    assert (probe.calls["one"], probe.calls["two"]) == (1, 1)


async def test_runs_that_keep_their_lease_go_on(
    make_stepline: MakeStepline, probe, caplog: pytest.LogCaptureFixture
):
    """A short lease, renewed on time: no run is held back and left to recovery."""
    caplog.set_level(logging.WARNING, logger="stepline.engine")
    stepline = await make_stepline(lease="1 second")
    workflow = await stepline.register("two-steps", TwoSteps)
    instance = await workflow.create()
    await probe.wait_for("one")
    await asyncio.sleep(2.5)  # the claim's lease, and then renewals, each a third of it
    probe.gate("go").set()

    view = await finished(instance)
    assert view["output"] == 3
    assert (probe.calls["one"], probe.calls["two"]) == (1, 1)
    assert "left to recovery" not in caplog.text
