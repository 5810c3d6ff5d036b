"""How long the scheduler waits after a pass that claimed nothing more (``_until_next_wake``).

A wake time that was due when the pass looked, yet not claimed, belongs to a workflow at its
concurrency limit: look again within a second. One that came due while the pass was under way
(at a thousand wake-ups a second, nearly every pass) must be looked at again at once.
"""

from __future__ import annotations

import pytest

from stepline.engine.clock import SystemClock
from stepline.engine.registry import WorkflowClasses
from stepline.engine.scheduler import Engine


class _StoppedClock(SystemClock):
    """Reads ``now``, and nothing else moves it."""

    def __init__(self, now: int) -> None:
        self.now = now

    def now_ms(self) -> int:
        return self.now


class _Wakes:
    """The two reads ``_until_next_wake`` makes of the store."""

    def __init__(self, next_wake: int | None, next_fire: int | None = None) -> None:
        self.next_wake, self.next_fire = next_wake, next_fire

    async def next_wake_at(self, kinds: object = None) -> int | None:
        return self.next_wake

    async def next_schedule_fire(self) -> int | None:
        return self.next_fire


def _engine(wakes: _Wakes, clock: SystemClock) -> Engine:
    return Engine(wakes, WorkflowClasses(), clock=clock)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("next_wake", "next_fire", "expected"),
    [
        (1_005, None, 0.0),  # came due after the pass looked (at 1,000): at once
        (None, 1_008, 0.0),  # a cron firing likewise
        (1_000, None, 1.0),  # due when the pass looked, not claimed: a workflow at its limit
        (990, 1_500, 1.0),
        (1_600, None, 0.59),  # not yet due: until then
        (None, None, None),  # nothing to wait for: until poked
    ],
)
async def test_wait_after_a_pass(next_wake, next_fire, expected):
    clock = _StoppedClock(1_010)  # the pass looked at 1,000 and took 10 ms
    engine = _engine(_Wakes(next_wake, next_fire), clock)

    assert await engine._until_next_wake(1_000) == expected
