"""Engines on several machines share one PostgreSQL database, and machines' clocks disagree.
A lease written by one engine's clock and judged by another's would lapse early on the engine
whose clock is ahead: it would take over an instance whose step is still running elsewhere,
and the step would run twice. So every process on PostgreSQL goes by the database's clock.

Two Steplines in this process stand for two machines: the second's clock runs ten seconds
ahead, more than the lease of three seconds."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.engine.clock import SystemClock
from stepline.testing import wait_for_status
from tests.conftest import store_factory
from tests.workflows.probe import Probe

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

SCRIPT = "tests.postgres.test_clock_skew"
AHEAD_MS = 10_000


class Long(WorkflowEntrypoint):
    """One step that runs for four seconds, longer than a lease."""

    async def run(self, event, step):
        @step.do("long")
        async def long():
            self.env.hit("long")
            await asyncio.sleep(4)
            return "done"

        return await long()


class Ahead(SystemClock):
    """A machine whose clock is ten seconds fast."""

    def now_ms(self) -> int:
        return super().now_ms() + AHEAD_MS


async def test_an_engine_whose_clock_is_ahead_leaves_a_running_step_alone(
    tmp_path: Path, probe: Probe
) -> None:
    url = store_factory("postgres", tmp_path)
    assert isinstance(url, str)
    first = Stepline(url, account_id="acct", lease="3 seconds", env=probe, stop_grace=100)
    second = Stepline(
        url, account_id="acct", lease="3 seconds", clock=Ahead(), env=probe, stop_grace=100
    )
    await first.start()
    try:
        await first.register("long", Long, script_name=SCRIPT)
        instance = await first.workflow("long").create()
        await probe.wait_for("long")
        await second.start()  # takes over only what has lapsed; here, nothing
        try:
            await second.register("long", Long, script_name=SCRIPT)
            view = await wait_for_status(instance, "complete", timeout=15)
        finally:
            await second.stop()
    finally:
        await first.stop()
    assert view["output"] == "done"
    assert probe.calls["long"] == 1


async def test_a_clock_far_from_the_databases_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = store_factory("postgres", tmp_path)
    assert isinstance(url, str)
    clock = Ahead()
    with caplog.at_level(logging.WARNING, logger="stepline"):
        async with Stepline(url, account_id="acct", clock=clock, run_engine=False):
            database_now = SystemClock().now_ms()
            assert abs(clock.now_ms() - database_now) < 1_000
    assert any("ahead of the database's" in r.getMessage() for r in caplog.records)
