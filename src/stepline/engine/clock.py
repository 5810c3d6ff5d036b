"""Time, as the engine sees it. Tests swap in ``stepline.testing.TestClock``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "SystemClock", "elapsed_s"]

_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def elapsed_s() -> float:
    """Seconds from some fixed point, on a clock that goes on while the machine is suspended
    (Linux's ``CLOCK_BOOTTIME``; ``time.monotonic`` elsewhere, which stops then): how long a
    lease has surely held. A suspended VM or laptop wakes with its leases lapsed by the wall
    clock, and taken over, though ``time.monotonic`` says hardly any time went by."""
    if _BOOTTIME is None:
        return time.monotonic()
    return time.clock_gettime(_BOOTTIME)


class Clock(Protocol):
    auto_skip: bool
    """When true, the engine jumps the clock to the next sleep or retry when it is idle."""

    def now_ms(self) -> int: ...

    async def sleep_ms(self, ms: int) -> None:
        """Wait ``ms`` of this clock's time (a step's short sleep or retry backoff)."""
        ...

    async def until_ms(self, when_ms: int) -> None:
        """Return once :meth:`now_ms` has reached ``when_ms``, never skipped (the hot phase
        of ``wait_for_event``); a clock moved by hand past it ends the wait then."""
        ...

    def advance_to(self, when_ms: int) -> None:
        """Move the clock forward (only clocks that can skip do anything)."""
        ...

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the clock is moved by hand (the engine looks again)."""
        ...


class SystemClock:
    """Wall-clock time: this machine's, or the shared database's once ``offset_ms`` is set
    (``stepline.engine.shared_clock``)."""

    auto_skip = False

    def __init__(self) -> None:
        self.offset_ms = 0
        """Added to this machine's time: how far the database's clock is ahead of it."""

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    async def sleep_ms(self, ms: int) -> None:
        await asyncio.sleep(ms / 1000)

    async def until_ms(self, when_ms: int) -> None:
        # One sleep, no second look: a timer that fires a hair early costs the caller one
        # more turn of its own loop, which looks at the time anyway.
        await asyncio.sleep(max(0, when_ms - self.now_ms()) / 1000)

    def advance_to(self, when_ms: int) -> None:
        """Wall-clock time cannot be moved; nothing happens."""

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Wall-clock time is never moved by hand; nothing to call."""
