"""``step.sleep`` and ``step.sleep_until`` (§2.1, §2.3, §4)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.engine.clock import SystemClock
from stepline.testing import wait_for_status
from tests.conftest import MakeStepline
from tests.engine.helpers import finished, ms, step


class Naps(WorkflowEntrypoint):
    """Sleeps ``params`` (a duration), then does one step."""

    async def run(self, event, step):
        await step.sleep("nap", event.payload)

        @step.do()
        async def after():
            return "awake"

        return await after()


async def test_a_sleep_is_logged_as_a_finished_sleep_step(any_stepline: Stepline):
    workflow = await any_stepline.register("naps", Naps)
    view = await finished(await workflow.create(params="10 seconds"))

    assert view["output"] == "awake"
    nap = step(view, "nap-1")
    assert nap["type"] == "sleep"
    assert nap["finished"] is True
    assert nap["error"] is None
    assert 10_000 <= ms(nap["end"]) - ms(nap["start"]) < 11_000
    assert ms(step(view, "after-1")["start"]) >= ms(nap["end"])


async def test_a_number_is_milliseconds(stepline: Stepline):
    workflow = await stepline.register("naps", Naps)
    view = await finished(await workflow.create(params=90_000))

    nap = step(view, "nap-1")
    assert 90_000 <= ms(nap["end"]) - ms(nap["start"]) < 91_000


async def test_a_suspended_sleep_shows_the_instance_as_waiting(make_stepline: MakeStepline, clock):
    clock.auto_skip = False
    stepline = await make_stepline(suspend_after=50)
    workflow = await stepline.register("naps", Naps)
    instance = await workflow.create(params="1 hour")

    view = await wait_for_status(instance, "waiting")
    nap = step(view, "nap-1")
    assert nap["finished"] is False
    assert ms(nap["end"]) - ms(nap["start"]) == 3_600_000


async def test_sleeps_take_real_time_on_the_system_clock(make_stepline: MakeStepline):
    hot = await make_stepline(clock=SystemClock())
    workflow = await hot.register("naps", Naps)
    started = time.monotonic()
    view = await finished(await workflow.create(params=300))

    assert view["status"] == "complete"
    assert time.monotonic() - started >= 0.3
    nap = step(view, "nap-1")
    assert 300 <= ms(nap["end"]) - ms(nap["start"]) < 1_000


async def test_a_suspended_sleep_wakes_on_time_on_the_system_clock(make_stepline: MakeStepline):
    stepline = await make_stepline(clock=SystemClock(), suspend_after=50)
    workflow = await stepline.register("naps", Naps)
    started = time.monotonic()
    view = await finished(await workflow.create(params=300))

    assert view["status"] == "complete"
    assert 0.3 <= time.monotonic() - started < 3


class SleepsUntil(WorkflowEntrypoint):
    """``params``: {"offset_ms": n, "as": "datetime" | "epoch"} relative to creation."""

    async def run(self, event, step):
        target = event.timestamp + timedelta(milliseconds=event.payload["offset_ms"])
        when = target if event.payload["as"] == "datetime" else target.timestamp() * 1000
        await step.sleep_until("alarm", when)
        return int(target.timestamp() * 1000)


@pytest.mark.parametrize("kind", ["datetime", "epoch"])
async def test_sleep_until_wakes_at_the_given_time(any_stepline: Stepline, kind):
    workflow = await any_stepline.register("sleeps-until", SleepsUntil)
    view = await finished(await workflow.create(params={"offset_ms": 3_600_000, "as": kind}))

    assert view["status"] == "complete"
    alarm = step(view, "alarm-1")
    assert alarm["type"] == "sleep"
    assert ms(alarm["end"]) == view["output"]


class TimeTraveler(WorkflowEntrypoint):
    async def run(self, event, step):
        past = (
            datetime(2001, 1, 1, tzinfo=UTC)
            if event.payload == "datetime"
            else 978_307_200_000  # 2001-01-01 in epoch milliseconds
        )
        try:
            await step.sleep_until("back", past)
        except ValueError as exc:
            return str(exc)
        return "slept"


@pytest.mark.parametrize("kind", ["datetime", "epoch"])
async def test_sleep_until_the_past_raises_value_error(stepline: Stepline, kind):
    workflow = await stepline.register("time-traveler", TimeTraveler)
    view = await finished(await workflow.create(params=kind))

    assert view["status"] == "complete"
    assert "time-traveler" in view["output"]


async def test_a_sleep_over_365_days_is_an_error(stepline: Stepline):
    workflow = await stepline.register("naps", Naps)
    view = await finished(await workflow.create(params="366 days"))

    assert view["status"] == "errored"
    assert "365 days" in view["error"]["message"]


async def test_a_sleep_of_365_days_is_allowed(stepline: Stepline):
    workflow = await stepline.register("naps", Naps)
    view = await finished(await workflow.create(params="365 days"))

    assert view["status"] == "complete"


async def test_many_sleeping_instances_all_wake(stepline: Stepline):
    workflow = await stepline.register("naps", Naps)
    instances = [await workflow.create(params=f"{n + 1} hours") for n in range(10)]

    views = [await finished(instance) for instance in instances]
    assert [v["status"] for v in views] == ["complete"] * 10


class TwoSleeps(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("first", "1 hour")
        await step.sleep("second", "1 hour")
        return "done"


async def test_a_finished_sleep_is_not_slept_again_on_replay(suspending: Stepline):
    workflow = await suspending.register("two-sleeps", TwoSleeps)
    view = await finished(await workflow.create())

    first, second = step(view, "first-1"), step(view, "second-1")
    assert ms(second["start"]) - ms(first["end"]) < 1_000
    assert ms(second["end"]) - ms(first["start"]) < 2 * 3_600_000 + 1_000


class SleepsUntilNoTime(WorkflowEntrypoint):
    async def run(self, event, step):
        try:
            await step.sleep_until("never", float(event.payload))
        except ValueError as exc:
            return f"{type(exc).__name__}: {exc}"
        return "slept"


@pytest.mark.parametrize("when", ["nan", "inf", "-inf"])
async def test_sleep_until_a_time_that_is_no_number_says_so(stepline: Stepline, when):
    # An OverflowError ("cannot convert float infinity to integer") or a ValueError about
    # converting NaN, before: errors of the engine's arithmetic, not of the call.
    workflow = await stepline.register("no-time", SleepsUntilNoTime)
    view = await finished(await workflow.create(params=when))

    assert view["output"] == (
        f"ValueError: sleep_until needs a finite time in epoch milliseconds, not {float(when)}"
    )
