"""A step's retry delay given by a function (§2.4): called as ``delay(ctx, error)`` after each
failed attempt that will be retried, sync or async, with 5 seconds to answer; its answer is the
base delay, and the backoff applies to it. One that raises, runs over or answers no duration
fails the step with ``NonRetryableDelayError``, which ``run`` can catch. The step's log shows
the delay as ``"[dynamic]"``, and ``ctx.config`` leaves it out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from stepline import NonRetryableDelayError, Stepline, WorkflowEntrypoint
from tests.engine.helpers import finished, ms, step


class RateLimited(Exception):
    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


def sync_delay(ctx: Any, error: Exception) -> int:
    assert isinstance(error, RateLimited)
    return error.retry_after_ms * ctx.attempt


async def async_delay(ctx: Any, error: Exception) -> str:
    await asyncio.sleep(0)
    return f"{sync_delay(ctx, error)} ms"


def raising_delay(ctx: Any, error: Exception) -> int:
    raise LookupError("no delay for you")


def exiting_delay(ctx: Any, error: Exception) -> int:
    raise SystemExit("no delay, no process")


def stopping_delay(ctx: Any, error: Exception) -> int:
    return next(iter(()))  # StopIteration, which an asyncio future cannot hold


async def slow_delay(ctx: Any, error: Exception) -> int:
    await asyncio.sleep(60)
    return 1


DELAYS = {
    "sync": sync_delay,
    "async": async_delay,
    "raises": raising_delay,
    "exits": exiting_delay,
    "stops": stopping_delay,
    "slow": slow_delay,
    "not a duration": lambda ctx, error: "soon",
}


class Flaky(WorkflowEntrypoint):
    """Step "call" fails twice with RateLimited(100), then succeeds; its delay function is
    ``DELAYS[params]``, with constant backoff. ``run`` catches a NonRetryableDelayError."""

    async def run(self, event, step):
        config = {"retries": {"limit": 3, "delay": DELAYS[event.payload], "backoff": "constant"}}

        @step.do("call", config=config)
        async def call(ctx):
            self.env.hit("call", ctx.config)
            if ctx.attempt < 3:
                raise RateLimited(100)
            return ctx.attempt

        try:
            return await call()
        except NonRetryableDelayError as exc:
            return {"caught": type(exc).__name__, "message": str(exc)}


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_the_delay_function_sets_each_retrys_delay(make_stepline, clock, probe, kind: str):
    clock.auto_skip = False  # real waits, to see them
    stepline: Stepline = await make_stepline()
    view = await finished(await (await stepline.register("flaky", Flaky)).create(params=kind))

    assert view["status"] == "complete" and view["output"] == 3, view
    attempts = step(view, "call-1")["attempts"]
    gaps = [ms(attempts[n + 1]["start"]) - ms(attempts[n]["end"]) for n in range(2)]
    # 100 ms after the first attempt, 200 ms after the second (ctx.attempt is 2).
    assert 100 <= gaps[0] < 2_000 and 200 <= gaps[1] < 2_000, gaps  # not the 10 s default
    assert step(view, "call-1")["config"]["retries"]["delay"] == "[dynamic]"
    assert all("delay" not in seen["retries"] for seen in probe.seen["call"])


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("raises", "threw an error: no delay for you"),
        ("exits", "threw an error: no delay, no process"),  # it ended the engine's process
        ("stops", "threw an error: function raised StopIteration"),  # not its 5 seconds
        ("slow", "did not return within 5 seconds"),
        ("not a duration", "returned 'soon', which is not a duration"),
    ],
)
async def test_a_failing_delay_function_spends_the_step(
    stepline: Stepline, probe, kind: str, reason: str
):
    started = time.monotonic()
    view = await finished(
        await (await stepline.register("flaky", Flaky)).create(params=kind), timeout=20
    )

    assert view["status"] == "complete", view
    assert view["output"] == {
        "caught": "NonRetryableDelayError",
        "message": f'The delay function for step "call-1" {reason}',
    }
    assert probe.calls["call"] == 1  # no retry
    call = step(view, "call-1")
    assert call["success"] is False
    assert [a["error"]["name"] for a in call["attempts"]] == ["RateLimited"]
    if kind != "slow":
        assert time.monotonic() - started < 4


class Uncaught(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("call", config={"retries": {"limit": 1, "delay": raising_delay}})
        async def call():
            raise RateLimited(1)

        return await call()


async def test_an_uncaught_delay_failure_errors_the_instance_by_its_name(
    any_stepline: Stepline,
):
    view = await finished(await (await any_stepline.register("uncaught", Uncaught)).create())

    assert view["status"] == "errored"
    assert view["error"] == {
        "name": "NonRetryableDelayError",
        "message": 'The delay function for step "call-1" threw an error: no delay for you',
    }
