"""One time for every process sharing a database: the database's own clock.

Engines on several machines share a PostgreSQL database, and their clocks disagree. A lease is
written by the clock of the engine that holds it and judged lapsed by the clock of another; if
that one's clock is ahead by more than what is left of the lease, it takes over an instance
whose step is still running, and the step runs twice. Timers (a sleep's end, a retry, a
pause's length) are also written on one machine and read on another. So on a shared
database a process's :class:`SystemClock` goes by the database server's clock: it measures
how far that clock is from its own (the best of a few round trips) and adds the difference,
then measures again every minute, as machines' clocks drift.

A SQLite file is one machine's, read by its own clock: nothing to do there. A test's clock is
never moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from stepline.engine.clock import Clock, SystemClock
from stepline.errors import SteplineError
from stepline.store.port import Store

__all__ = ["ClockKeeper"]

log = logging.getLogger("stepline.engine")

_SAMPLES = 3
_EVERY_S = 60.0
_REPORTED_MS = 1_000
"""A machine's clock this far from the database's is reported: it should be set right."""
_NOISE_MS = 10
"""A later measurement moves the clock only by more than this plus half its round trip (what
a round trip cannot tell apart), so that the clock does not jitter back and forth."""


class ClockKeeper:
    """Keeps ``clock`` on the database's time while started (``start``, ``stop``)."""

    def __init__(self, clock: Clock, store: Store) -> None:
        self.clock = clock
        self.store = store
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Go by the database's time from now on (a store error propagates)."""
        if not isinstance(self.clock, SystemClock) or not await self._measure(first=True):
            return
        self._task = asyncio.create_task(self._keep(), name="stepline-clock")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(_EVERY_S)
            try:
                await self._measure(first=False)
            except (SteplineError, OSError) as exc:  # keep the last difference measured
                log.debug("could not read the database's clock: %s", exc)

    async def _measure(self, *, first: bool) -> bool:
        """Set the clock's offset to the database's; False when the store has no clock."""
        assert isinstance(self.clock, SystemClock)
        best: tuple[int, int] | None = None
        for _ in range(_SAMPLES):
            before = self.clock.now_ms()
            theirs = await self.store.database_time_ms()
            after = self.clock.now_ms()
            if theirs is None:
                return False
            sample = (after - before, theirs - (before + after) // 2)
            best = sample if best is None else min(best, sample)
        assert best is not None
        round_trip, moved = best
        if not first and abs(moved) <= round_trip // 2 + _NOISE_MS:
            return True
        self.clock.offset_ms += moved
        database_ahead = self.clock.offset_ms
        if (first and abs(database_ahead) >= _REPORTED_MS) or abs(moved) >= _REPORTED_MS:
            log.warning(
                "this machine's clock is %.1f s %s the database's: Stepline goes by the "
                "database's time so that leases and timers mean the same on every machine, "
                "but set this machine's clock right (NTP)",
                abs(database_ahead) / 1000,
                "behind" if database_ahead > 0 else "ahead of",
            )
        return True
