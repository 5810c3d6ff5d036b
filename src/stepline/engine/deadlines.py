"""Attempt deadlines checked by one ticker, instead of a timer handle for every attempt.

A step attempt's timeout defaults to ten minutes; hundreds of thousands of attempts a minute
each arming and disarming an ``asyncio.timeout`` cost more than the steps. Long deadlines are
instead dropped in a slot of ``granularity`` seconds, and one task cancels what is overdue:
such a deadline fires up to one granularity late, never early. Short ones get a loop timer,
which is exact.

``limit`` is a plain ``with`` block, not ``async with``: arming and disarming never wait, and
an asynchronous context manager would cost a coroutine (or a generator) per attempt.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["Deadlines"]


class _Deadline:
    """One armed limit: cancels ``task`` when it expires; on the way out of the block, an
    expired limit raises ``TimeoutError`` (a cancellation from elsewhere stays one)."""

    __slots__ = ("deadlines", "expired", "slot", "task", "timer")

    def __init__(self, deadlines: Deadlines, task: asyncio.Task[object]) -> None:
        self.deadlines = deadlines
        self.task = task
        self.expired = False
        self.slot = 0
        self.timer: asyncio.TimerHandle | None = None

    def expire(self) -> None:
        self.expired = True
        self.task.cancel()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.timer is not None:
            self.timer.cancel()
        else:
            self.deadlines.disarm(self)
        if not self.expired:
            return
        # The expiry's cancellation is taken back. Whatever the block did after it (let the
        # cancellation out, caught it and returned, raised something else), the attempt
        # timed out: what it gives after its deadline is not its result. Only a
        # cancellation from elsewhere, still asked for, goes on out.
        elsewhere = self.task.uncancel() > 0
        if not (elsewhere and kind is not None and issubclass(kind, asyncio.CancelledError)):
            raise TimeoutError() from None


class Deadlines:
    def __init__(self, granularity: float = 0.25) -> None:
        self.granularity = granularity
        self._slots: dict[int, set[_Deadline]] = {}
        """Deadlines still armed, by slot. One leaves its slot when its work ends: kept until
        the slot came due, a finished attempt would hold on to its task, coroutine and
        context for the whole timeout (ten minutes by default)."""
        self._ticker: asyncio.Task[None] | None = None

    def limit(self, seconds: float) -> _Deadline:
        """``with deadlines.limit(s):`` raises ``TimeoutError`` in the current task once ``s``
        seconds have passed."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline needs a running task")
        deadline = _Deadline(self, task)
        if seconds < 20 * self.granularity:
            deadline.timer = loop.call_later(seconds, deadline.expire)
            return deadline
        slot = deadline.slot = int((loop.time() + seconds) / self.granularity) + 1
        armed = self._slots.get(slot)
        if armed is None:
            armed = self._slots[slot] = set()
            if self._ticker is None or self._ticker.done():
                self._ticker = loop.create_task(self._tick(), name="stepline-deadlines")
        armed.add(deadline)
        return deadline

    def disarm(self, deadline: _Deadline) -> None:
        armed = self._slots.get(deadline.slot)
        if armed is not None:  # else the ticker has taken the slot
            armed.discard(deadline)
            if not armed:
                del self._slots[deadline.slot]

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self._slots:
            await asyncio.sleep(self.granularity)
            now = int(loop.time() / self.granularity)
            for slot in [s for s in self._slots if s <= now]:
                for deadline in self._slots.pop(slot):
                    deadline.expire()

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
