"""Attempt deadlines checked by one ticker, instead of a timer handle for every attempt.

A step attempt's timeout defaults to ten minutes; hundreds of thousands of attempts a minute
each arming and disarming an ``asyncio.timeout`` cost more than the steps. Long deadlines are
instead dropped in a slot of ``granularity`` seconds, and one task cancels what is overdue:
such a deadline fires up to one granularity late, never early. Short ones use
``asyncio.timeout``, which is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["Deadlines"]


class _Deadline:
    __slots__ = ("expired", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.expired = False


class Deadlines:
    def __init__(self, granularity: float = 0.25) -> None:
        self.granularity = granularity
        self._slots: dict[int, set[_Deadline]] = {}
        """Deadlines still armed, by slot. One leaves its slot when its work ends: kept until
        the slot came due, a finished attempt would hold on to its task, coroutine and
        context for the whole timeout (ten minutes by default)."""
        self._ticker: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def limit(self, seconds: float) -> AsyncIterator[None]:
        """Raise ``TimeoutError`` in the current task once ``seconds`` have passed."""
        if seconds < 20 * self.granularity:
            async with asyncio.timeout(seconds):
                yield
            return
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        deadline = _Deadline(task)
        slot = int((loop.time() + seconds) / self.granularity) + 1
        armed = self._slots.get(slot)
        if armed is None:
            armed = self._slots[slot] = set()
        armed.add(deadline)
        if self._ticker is None or self._ticker.done():
            self._ticker = loop.create_task(self._tick(), name="stepline-deadlines")
        try:
            yield
        except asyncio.CancelledError:
            if deadline.expired and task.uncancel() == 0:
                raise TimeoutError() from None
            raise
        finally:
            armed.discard(deadline)  # a no-op once the ticker has taken the slot
            if not armed and self._slots.get(slot) is armed:
                del self._slots[slot]

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self._slots:
            await asyncio.sleep(self.granularity)
            now = int(loop.time() / self.granularity)
            for slot in [s for s in self._slots if s <= now]:
                for deadline in self._slots.pop(slot):
                    deadline.expired = True
                    deadline.task.cancel()

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
