"""Engines sharing PostgreSQL take up each other's instances without waiting for a lease to
lapse when they can: a stopping engine says so, and an idle engine looks at the database's
timers at least once a lease period, for the times an engine that died was keeping.

Two Steplines in this process stand for two engine processes. Their leases are long, so that
a test passes only by the way it is about, not by a lease lapsing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.testing import wait_for_status
from tests.conftest import store_factory
from tests.engine.test_lifecycle import Blocking
from tests.workflows.probe import Probe

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]

SCRIPT = "tests.postgres.test_hand_over"


class Naps(WorkflowEntrypoint):
    """Sleeps two seconds, then one step."""

    async def run(self, event, step):
        await step.sleep("nap", "2 seconds")

        @step.do("after")
        async def after():
            self.env.hit("after")
            return "after"

        return await after()


@contextlib.asynccontextmanager
async def two_engines(
    tmp_path: Path, probe: Probe, lease: str, workflow: type[WorkflowEntrypoint], script: str
) -> AsyncIterator[tuple[Stepline, Stepline]]:
    """Two started Steplines on one PostgreSQL database with ``workflow`` registered, the
    second idle; both stopped at the end (the first may be stopped before)."""
    url = store_factory("postgres", tmp_path)
    assert isinstance(url, str)
    engines = [
        Stepline(url, account_id="acct", lease=lease, env=probe, stop_grace=5_000) for _ in range(2)
    ]
    for stepline in engines:
        await stepline.start()
    try:
        for stepline in engines:
            await stepline.register("flow", workflow, script_name=script)
        yield engines[0], engines[1]
    finally:
        for stepline in reversed(engines):
            await stepline.stop()


async def test_a_stopping_engine_hands_what_it_parks_to_an_idle_engine_at_once(
    tmp_path: Path, probe: Probe
) -> None:
    # Leases of 10 minutes: an idle engine looks at the timers every 200 s by itself.
    async with two_engines(
        tmp_path, probe, "10 minutes", Blocking, "tests.engine.test_lifecycle"
    ) as (first, second):
        instance = await first.workflow("flow").create()
        await probe.wait_for("hold")
        # The first engine stops while "hold" runs: it lets it finish, parks the instance
        # due at once, and hands it over.
        stopping = asyncio.create_task(first.stop())
        await asyncio.sleep(0.2)
        probe.gate("release").set()
        await stopping
        seen = await second.workflow("flow").get(instance.id)
        view = await wait_for_status(seen, "complete", timeout=10)
    assert view["output"] == "after"
    assert (probe.calls["hold"], probe.calls["after"]) == (1, 1)


async def test_an_idle_engine_wakes_a_timer_whose_engine_died(tmp_path: Path, probe: Probe) -> None:
    # Leases of 3 seconds: the idle engine looks at the database's timers every second.
    async with two_engines(tmp_path, probe, "3 seconds", Naps, SCRIPT) as (first, second):
        first.engine.suspend_after_ms = 0  # every sleep parks the instance
        instance = await first.workflow("flow").create()
        await wait_for_status(instance, "waiting")

        # The first engine dies as a killed process would: no hand-over, no word to anyone.
        async def says_nothing(*, parked: bool) -> None:
            pass

        first.engine._hand_over = says_nothing  # type: ignore[method-assign]
        await first.stop()
        seen = await second.workflow("flow").get(instance.id)
        view = await wait_for_status(seen, "complete", timeout=10)
    assert view["output"] == "after"
