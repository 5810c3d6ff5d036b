"""Cron schedules: each firing creates one instance, with trigger source cron and
``event.schedule``; missed firings are made up once; bad expressions are refused."""

from __future__ import annotations

import asyncio
import re

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.errors import InvalidRequest
from stepline.testing import TestClock, wait_for_status


class Ticker(WorkflowEntrypoint):
    async def run(self, event, step):
        return {"schedule": event.schedule, "via_key": event["schedule"]}


def clock_just_past_five_minutes() -> TestClock:
    """A manual clock set one second past a five-minute mark, so that no real minute ends
    during a test and fires a schedule the test did not move the clock for."""
    clock = TestClock(auto_skip=False)
    clock.advance_to((clock.now_ms() // 300_000 + 1) * 300_000 + 1_000)
    return clock


async def instances_of(stepline: Stepline, name: str) -> list[dict]:
    page = await stepline.client.list_instances(stepline.account_id, name, per_page=100)
    return page.items


async def test_a_firing_creates_one_instance_triggered_by_cron(tmp_path) -> None:
    clock = clock_just_past_five_minutes()
    async with Stepline(f"sqlite:///{tmp_path}/s.sqlite3", clock=clock) as stepline:
        ticker = await stepline.register("ticker", Ticker, schedules=["*/5 * * * *"])
        summary = await stepline.client.get_workflow(stepline.account_id, "ticker")
        [schedule] = summary["schedules"]
        assert schedule["cron"] == "*/5 * * * *"
        assert await instances_of(stepline, "ticker") == []

        clock.advance("5 minutes")
        for _ in range(100):
            if await instances_of(stepline, "ticker"):
                break
            await asyncio.sleep(0.01)
        [created] = await instances_of(stepline, "ticker")
        assert created["trigger_source"] == "cron"
        assert re.fullmatch(r"cron-\d+-[0-9a-f]{8}", created["id"])
        detail = await wait_for_status(await ticker.get(created["id"]), "complete")
        scheduled = detail["schedule"]
        assert scheduled["cron"] == "*/5 * * * *" and scheduled["scheduledTime"] % 300_000 == 0
        assert detail["output"]["schedule"] == scheduled == detail["output"]["via_key"]
        assert detail["trigger"] == {"source": "cron"}
        later = await stepline.client.get_workflow(stepline.account_id, "ticker")
        assert later["schedules"][0]["next_instance"] > schedule["next_instance"]


async def test_missed_firings_are_made_up_once(tmp_path) -> None:
    clock = clock_just_past_five_minutes()
    async with Stepline(f"sqlite:///{tmp_path}/s.sqlite3", clock=clock) as stepline:
        await stepline.register("ticker", Ticker, schedules=["* * * * *"])
        clock.advance("30 minutes")
        await asyncio.sleep(0.3)
        assert len(await instances_of(stepline, "ticker")) == 1


async def test_changing_or_clearing_schedules(tmp_path) -> None:
    clock = clock_just_past_five_minutes()
    async with Stepline(f"sqlite:///{tmp_path}/s.sqlite3", clock=clock) as stepline:
        await stepline.register("ticker", Ticker, schedules=["* * * * *"])
        await stepline.register("ticker", Ticker, schedules=[])
        summary = await stepline.client.get_workflow(stepline.account_id, "ticker")
        assert "schedules" not in summary
        clock.advance("10 minutes")
        await asyncio.sleep(0.2)
        assert await instances_of(stepline, "ticker") == []


@pytest.mark.parametrize(
    "cron",
    [
        *("", "* * * *", "61 * * * *", "* * * * * * *", "x" * 300, "0 0 31 4 *", "0 0 30 2 *"),
        # croniter's own fields: R is a minute (hour, ...) drawn at random at each firing
        *("R * * * *", "0 r * * *", "R(0-29)/5 * * * *", "0 0 * * R", "H * * * *"),
    ],
)
async def test_invalid_cron_expressions_are_refused(tmp_path, cron: str) -> None:
    async with Stepline(f"sqlite:///{tmp_path}/s.sqlite3") as stepline:
        with pytest.raises(InvalidRequest):
            await stepline.register("ticker", Ticker, schedules=[cron])
