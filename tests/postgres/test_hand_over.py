"""Engines sharing PostgreSQL take up each other's instances without waiting for a lease to
lapse when they can: a stopping engine says so, and an idle engine looks at the database's
timers at least once a lease period, for the times an engine that died was keeping.

Two Steplines in this process stand for two engine processes. Their leases are long, so that
a test passes only by the way it is about, not by a lease lapsing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.testing import wait_for_status
from tests.conftest import store_factory
from tests.workflows.probe import Probe

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]

SCRIPT = "tests.postgres.test_hand_over"


class HoldThenGo(WorkflowEntrypoint):
    """Step "hold" waits for gate "release"; then step "after"."""

    async def run(self, event, step):
        @step.do("hold")
        async def hold():
            self.env.hit("hold")
            await self.env.gate("release").wait()
            return "held"

        await hold()

        @step.do("after")
        async def after():
            self.env.hit("after")
            return "after"

        return await after()


class Naps(WorkflowEntrypoint):
    """Sleeps two seconds, then one step."""

    async def run(self, event, step):
        await step.sleep("nap", "2 seconds")

        @step.do("after")
        async def after():
            self.env.hit("after")
            return "after"

        return await after()


def engine(url: str, probe: Probe, lease: str) -> Stepline:
    return Stepline(url, account_id="acct", lease=lease, env=probe, stop_grace=5_000)


async def test_a_stopping_engine_hands_what_it_parks_to_an_idle_engine_at_once(
    tmp_path: Path, probe: Probe
) -> None:
    url = store_factory("postgres", tmp_path)
    assert isinstance(url, str)
    # A lease of 10 minutes: an idle engine looks at the timers every 200 s by itself.
    first, second = engine(url, probe, "10 minutes"), engine(url, probe, "10 minutes")
    await first.start()
    await second.start()  # idle from here: nothing is due
    try:
        await first.register("hold-then-go", HoldThenGo, script_name=SCRIPT)
        await second.register("hold-then-go", HoldThenGo, script_name=SCRIPT)
        instance = await first.workflow("hold-then-go").create()
        await probe.wait_for("hold")
        # The first engine stops while "hold" runs: it lets it finish, parks the instance
        # due at once, and hands it over.
        stopping = asyncio.create_task(first.stop())
        await asyncio.sleep(0.2)
        probe.gate("release").set()
        await stopping
        seen = await second.workflow("hold-then-go").get(instance.id)
        view = await wait_for_status(seen, "complete", timeout=10)
    finally:
        await second.stop()
        await first.stop()
    assert view["output"] == "after"
    assert (probe.calls["hold"], probe.calls["after"]) == (1, 1)


async def test_an_idle_engine_wakes_a_timer_whose_engine_died(tmp_path: Path, probe: Probe) -> None:
    url = store_factory("postgres", tmp_path)
    assert isinstance(url, str)
    # Leases of 3 seconds: the idle engine looks at the database's timers every second.
    first, second = engine(url, probe, "3 seconds"), engine(url, probe, "3 seconds")
    await first.start()
    await second.start()  # idle from here, with no timer to wait for
    try:
        await first.register("naps", Naps, script_name=SCRIPT)
        await second.register("naps", Naps, script_name=SCRIPT)
        first.engine.suspend_after_ms = 0  # every sleep parks the instance
        instance = await first.workflow("naps").create()
        await wait_for_status(instance, "waiting")

        # The first engine dies as a killed process would: no hand-over, no word to anyone.
        async def says_nothing(*, parked: bool) -> None:
            pass

        first.engine._hand_over = says_nothing  # type: ignore[method-assign]
        await first.stop()
        seen = await second.workflow("naps").get(instance.id)
        view = await wait_for_status(seen, "complete", timeout=10)
    finally:
        await second.stop()
        await first.stop()
    assert view["output"] == "after"
