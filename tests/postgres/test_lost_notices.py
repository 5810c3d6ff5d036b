"""Notices between engines sharing PostgreSQL are a shortcut, not the only way an engine learns
what another process asked of an instance it runs: LISTEN/NOTIFY loses what is published while
an engine's LISTEN connection is down (reconnecting, or silent until its probe notices). An
engine finds such a request at its next lease renewal instead.

Two Steplines in this process stand for two engine processes, as in ``test_hand_over``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stepline import Stepline
from stepline.store.port import Notice
from stepline.testing import wait_for_status
from tests.engine.test_lifecycle import Blocking
from tests.workflows.probe import Probe

from .test_hand_over import two_engines

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]


@contextmanager
def notices_lost(*engines: Stepline, kind: str = "pause") -> Iterator[None]:
    """The engines miss every notice of ``kind``, as over a LISTEN connection that is down."""
    handlers = []
    for stepline in engines:
        engine = stepline.engine

        def deaf(notice: Notice, handle: Callable[[Notice], None] = engine.handle_notice) -> None:
            if notice.kind != kind:
                handle(notice)

        engine.store.unsubscribe(engine.handle_notice)
        engine.store.subscribe(deaf)
        handlers.append((engine, deaf))
    try:
        yield
    finally:
        for engine, deaf in handlers:
            engine.store.unsubscribe(deaf)
            engine.store.subscribe(engine.handle_notice)


async def test_a_pause_whose_notice_was_lost_takes_effect_at_the_next_step_boundary(
    tmp_path: Path, probe: Probe
) -> None:
    # Leases of 3 seconds: each engine renews its leases every second.
    async with two_engines(
        tmp_path, probe, "3 seconds", Blocking, "tests.engine.test_lifecycle"
    ) as (first, second):
        with notices_lost(first, second):
            instance = await first.workflow("flow").create()
            await probe.wait_for("hold")
            assert await instance.pause() == "waitingForPause"
            await asyncio.sleep(2.5)  # two renewals at least
            probe.gate("release").set()
            view = await wait_for_status(instance, "paused", timeout=10)
            # Paused where "hold" ended: "after" has not run, and runs once resumed.
            assert probe.calls["after"] == 0, view
            await instance.resume()
            view = await wait_for_status(instance, "complete", timeout=10)
    assert view["output"] == "after"
    assert (probe.calls["hold"], probe.calls["after"]) == (1, 1)


async def test_a_resume_whose_notice_was_lost_does_not_leave_the_instance_paused(
    tmp_path: Path, probe: Probe
) -> None:
    # The pause is heard, the resume is not: the run parks at the next step boundary as if
    # still asked to pause. It stayed paused, though the resume had answered "running".
    async with two_engines(
        tmp_path, probe, "3 seconds", Blocking, "tests.engine.test_lifecycle"
    ) as (first, second):
        with notices_lost(first, second, kind="unpause"):
            instance = await first.workflow("flow").create()
            await probe.wait_for("hold")
            assert await instance.pause() == "waitingForPause"
            assert await instance.resume() == "running"
            probe.gate("release").set()
            view = await wait_for_status(instance, "complete", timeout=10)
    assert view["output"] == "after"
    assert (probe.calls["hold"], probe.calls["after"]) == (1, 1)
