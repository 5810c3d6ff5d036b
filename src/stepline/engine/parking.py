"""Waiting in memory, and parking: the suspension of an instance.

A part of :class:`~stepline.engine.runner.Runner`, split out to keep each module about one
thing (see :mod:`~stepline.engine.run_state`). A wait shorter than the engine's threshold is
slept in memory; a longer one, a pause or a stopping engine *parks* the instance, once the
run's other branches have gone as far as they can: one write stores its pending steps, its
status and its next wake, and ``run`` unwinds (:class:`Suspended`); the scheduler replays it
when due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from stepline.engine.run_signals import Suspended

if TYPE_CHECKING:
    from stepline.engine.run_state import RunState

__all__ = ["Parking"]


class Parking:
    """The waits in memory and the suspension of one run."""

    # Set here, declared on the runner (with their defaults and what they are for).
    _saved: asyncio.Future[None] | None
    _parked: asyncio.Future[None] | None

    async def _wait_until(self: RunState, wake_at: int) -> None:
        remaining = wake_at - self.clock.now_ms()
        if remaining <= 0:
            return
        if remaining <= self.engine.suspend_after_ms and not self._interrupt.is_set():
            sleeper = asyncio.ensure_future(self.clock.sleep_ms(remaining))
            interrupt = asyncio.ensure_future(self._interrupt.wait())
            try:
                await asyncio.wait({sleeper, interrupt}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                interrupt.cancel()
            if not self._interrupt.is_set():
                return
        await self._suspend_when_idle()

    async def _suspend_when_idle(self: RunState) -> None:
        """Park the instance for a long wait, once the run's other branches (a ``gather``)
        have gone as far as they can: until then their steps run and their own waits join
        this one, rather than being cut off and started only after it (§2.3). A pause, a
        stop or another branch's suspension parks at once. (Inside another step's body, that
        step's attempt is cut short at once: it waits on this branch, not the reverse.)"""
        self._leave_enclosing()
        loop = asyncio.get_running_loop()
        while not self._interrupt.is_set():
            # A branch that moves on reaches a step, or starts a declared step's task.
            seen = (len(self._reached), self._started_steps)
            await asyncio.sleep(0)
            if self._executing:
                await self._quiet.wait()
                continue  # an attempt ended: its branch records it and goes on
            if self._saving:
                if self._saved is None:
                    self._saved = loop.create_future()
                await asyncio.shield(self._saved)
                continue  # a write came back: its branch goes on
            if (len(self._reached), self._started_steps) == seen:
                break
        await self._suspend()

    def start_step(self: RunState, work: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        self._started_steps += 1
        return asyncio.ensure_future(work)

    async def _at_boundary(self: RunState) -> None:
        if self.pause_requested or self._draining:
            await self._suspend()

    async def _suspend(self: RunState) -> None:
        """Park the instance and unwind ``run``. Concurrent branches share one suspension:
        the first waits for every executing attempt to finish, then writes all pending steps
        and the earliest wake time; the others just unwind (and ``run`` ends only once that
        write is done). Once the instance has failed (another branch met its step limit,
        say), it parks no more: its end is being written, and a suspension written after it
        would leave it waiting, with its error."""
        if self._fatal is not None:
            raise self._fatal
        self._leave_enclosing()
        if self._suspending:
            raise Suspended()
        self._suspending = True
        self._interrupt.set()
        # In a task of its own: a branch cancelled meanwhile (a task group cancels its other
        # tasks once one of them raises) must not cut the write short; ``run`` ends once it
        # is done.
        parking = self._parked = asyncio.ensure_future(self._park())
        parking.add_done_callback(_seen)  # its failure is this branch's, if it still waits
        await asyncio.shield(parking)
        raise Suspended()

    async def _park(self: RunState) -> None:
        """Write the suspension: the pending steps, the status and the next wake."""
        await self._quiet.wait()
        if self._fatal is not None:
            return  # failed meanwhile: the run's end is written instead
        self._park_writing = True
        # Steps stored by an earlier run but not reached in this one (the code changed, say)
        # must not set the wake time: only what this run is waiting on counts.
        pending = [
            s
            for key, s in self.steps.items()
            if key in self._reached and s.status in ("waiting", "running")
        ]
        timers = [(s.wake_at, s.kind) for s in pending if s.wake_at is not None]
        wake_at, wake_kind = None, None
        if timers:
            wake_at, kind = min(timers)
            wake_kind = "event" if kind == "wait" else "timer"
        status = "paused" if self.pause_requested else "waiting"
        if status == "waiting" and (wake_at is None or self._draining):
            # The engine is stopping, or a pause that parked it was taken back meanwhile (a
            # resume): due at once, for whichever engine is next. Parked with no wake time,
            # nothing would ever run it again; parked for its waits' time, the branches that
            # the stop cut off between steps (or at a step it let finish) would wait with
            # them, and the next step, runnable now, would run only at a wait's deadline.
            wake_at, wake_kind = self.clock.now_ms(), "timer"
        woken = await self._durable(
            self.store.suspend(
                self.pk,
                self.generation,
                status=status,
                wake_at=wake_at,
                wake_kind=wake_kind,
                steps=pending,
                now=self.clock.now_ms(),
            )
        )
        if woken or (wake_at is not None and wake_at <= self.clock.now_ms()):
            self.engine.wake()


def _seen(parking: asyncio.Future[None]) -> None:
    """Mark the suspension's outcome as retrieved: its failure reached the branch that
    waited for it, or nobody is left to tell (the branch was cancelled meanwhile)."""
    if not parking.cancelled():
        parking.exception()
