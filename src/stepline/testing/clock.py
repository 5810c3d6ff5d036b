"""A clock that tests can move: sleeps and retry backoffs finish at once."""

from __future__ import annotations

import asyncio
import inspect
import time
import weakref
from collections.abc import Callable

from stepline.durations import Duration, parse_duration_ms

__all__ = ["TestClock"]


class TestClock:
    """Wall-clock time plus an offset that only grows.

    With ``auto_skip`` (the default) a step's sleep or retry backoff returns at once, and
    when nothing is running the engine jumps the clock to the next sleep or retry that is
    due. ``wait_for_event`` deadlines are *not* skipped (a test usually sends the event), nor
    jumped past: while a wait is pending, a sleep that ends after its deadline waits for the
    event or for :meth:`advance`, which moves past them. Without ``auto_skip``, sleeps and
    backoffs take their time, or end as :meth:`advance` moves past them.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, *, auto_skip: bool = True) -> None:
        self.auto_skip = auto_skip
        self._offset_ms = 0
        self._listeners: list[Callable[[], Callable[[], None] | None]] = []
        """Each gives the callback to call, or None once it is gone: a method is held weakly,
        so that an engine this clock outlives (a test's) is not kept for it."""
        self._waiters: set[asyncio.Future[None]] = set()
        """One per :meth:`until_ms` in progress: each looks at the time again when moved."""

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self._offset_ms

    async def sleep_ms(self, ms: int) -> None:
        if self.auto_skip:
            self._offset_ms += max(0, ms)
            await asyncio.sleep(0)
        else:
            await self.until_ms(self.now_ms() + ms)

    async def until_ms(self, when_ms: int) -> None:
        """Return once the clock reads ``when_ms``: after that much real time, or as soon as
        :meth:`advance` or :meth:`advance_to` moves it there. ``auto_skip`` skips none of it:
        this is how ``wait_for_event`` waits for its deadline."""
        loop = asyncio.get_running_loop()
        while (remaining := when_ms - self.now_ms()) > 0:
            moved: asyncio.Future[None] = loop.create_future()
            timer = loop.call_later(remaining / 1000, _settle, moved)
            self._waiters.add(moved)
            try:
                await moved
            finally:
                timer.cancel()
                self._waiters.discard(moved)

    def advance(self, duration: Duration) -> None:
        """Move time forward by ``duration`` (ms or ``"1 day"``); due timers fire."""
        self._offset_ms += parse_duration_ms(duration)
        self._moved()

    def advance_to(self, when_ms: int) -> None:
        """Move time forward to ``when_ms`` (epoch ms; never back); due timers fire."""
        self._offset_ms += max(0, when_ms - self.now_ms())
        self._moved()

    def _moved(self) -> None:
        for moved in list(self._waiters):
            _settle_from_any_thread(moved)
        callbacks = [(listener, listener()) for listener in self._listeners]
        self._listeners = [listener for listener, callback in callbacks if callback is not None]
        for _, callback in callbacks:
            if callback is not None:
                callback()

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the clock is moved by hand; a bound method only for as
        long as its object lives elsewhere."""
        if inspect.ismethod(callback):
            self._listeners.append(weakref.WeakMethod(callback))
        else:
            self._listeners.append(lambda: callback)


def _settle(moved: asyncio.Future[None]) -> None:
    if not moved.done():
        moved.set_result(None)


def _settle_from_any_thread(moved: asyncio.Future[None]) -> None:
    """Settle ``moved`` now when called on its loop's thread; otherwise (a test that moves
    the clock from another thread) on its loop, as a future may only be settled there."""
    loop = moved.get_loop()
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        _settle(moved)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(_settle, moved)
