"""Step writes, batched: many instances' step rows go to the database in one commit.

Two kinds of write share one queue:

- ``queue`` (an "attempt started" row, a sleep's end) returns at once; nobody waits for it.
- ``write`` (a completed step, or the end of a run with ``finish``) waits until it is
  committed, and learns whether the instance was still the caller's generation (the fence).

Background flushes take what is queued, up to ``flushes`` at a time, and write each batch in
one statement that fences every instance in it and answers which passed (plus, when runs end
in it, one statement that ends them, in the same transaction). A later write of the same step
replaces an earlier one before it is sent, so a burst costs one row; and since every write of
a busy engine rides in some flush, a commit carries many instances' steps instead of one each
(group commit, as the SQLite writer does).

Order per instance is kept by three rules:

- a flush never takes an instance whose rows are already in another flush in flight, so a
  newer row cannot overtake an older one;
- another awaited write of an instance (a suspension) first waits out the flushes
  that hold its rows, then *takes* the rows still queued and sends them in its own statement;
- rows of an older generation than the newest queued for an instance are dropped (the fence
  would refuse them), and a writer still waiting on them learns that its run is stale.

A batch that fails for a reason other than an unreachable database is retried one instance
at a time, so one instance's bad row fails only that instance's write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from stepline.errors import StoreUnavailable
from stepline.store.postgres_pool import is_connection_error

__all__ = ["Finishes", "QueuedSteps", "StepBatch", "StepRows"]

log = logging.getLogger("stepline.store.postgres")

StepRows = list[tuple[Any, ...]]
StepBatch = list[tuple[int, int, StepRows]]
"""(instance pk, generation, rows) per instance."""
Finishes = dict[int, tuple[Any, ...]]
"""The instances of a batch whose run ends with it: pk → how it ended (the store's tuple)."""
_MAX_ROWS_PER_FLUSH = 5_000
_OUTAGE_CHECK_S = 0.05
"""How often flushes held up by an outage look for writers past their grace."""

_Outcome = bool | BaseException
"""What a waiting writer learns: whether its instance passed the fence, or what failed."""


@dataclass(slots=True)
class _Pending:
    generation: int
    rows: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    """Step rows by key; the last queued write of a step wins."""
    waiter: asyncio.Future[_Outcome] | None = None
    """Set while a caller of ``write`` waits for these rows to be committed."""
    finish: tuple[Any, ...] | None = None
    """How the run ends, when it ends with these rows (written in the same commit)."""


class QueuedSteps:
    """The queue of step writes and the flushes that send it."""

    def __init__(
        self,
        write: Callable[[StepBatch, Finishes], Awaitable[Collection[int]]],
        *,
        available: Callable[[], Awaitable[None]],
        flushes: int = 4,
    ) -> None:
        """``write`` sends a batch, ending the runs in ``Finishes``, and returns the pks that
        passed the fence (for a finishing instance: whose run it ended); up to
        ``flushes`` run side by side, so one's commit overlaps the next one's execution."""
        self._write = write
        self._flushes_in_flight = flushes
        self._available = available
        self._pending: dict[int, _Pending] = {}
        self._in_flight: dict[int, asyncio.Future[None]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._waiters: dict[asyncio.Future[_Outcome], float] = {}
        """Every writer's future not yet settled, wherever its rows are, with the loop time
        at which an outage makes it give up."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop(), name="stepline-postgres-writer")

    async def stop(self, timeout: float) -> None:
        """Flush what is queued (for at most ``timeout`` seconds), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._pending or self._in_flight:
                    self._wakeup.set()
                    await asyncio.sleep(0.01)
        tasks = [self._task, *self._flushes]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        for future in self._in_flight.values():
            if not future.done():
                future.set_result(None)
        closed = StoreUnavailable("the PostgreSQL store is closed")
        for waiter in list(self._waiters):  # queued, or in a flush cancelled before it began
            _settle(waiter, closed)
        if self._pending:
            log.warning("closing with %d instances' queued step writes unsent", len(self._pending))

    def queue(self, pk: int, generation: int, row: tuple[Any, ...]) -> None:
        pending = self._entry(pk, generation)
        if pending is not None:
            _add(pending, row)

    def _entry(self, pk: int, generation: int) -> _Pending | None:
        """The queue's entry for this run of ``pk``; None if a newer run has one."""
        pending = self._pending.get(pk)
        if pending is None or pending.generation < generation:
            if pending is not None:
                _settle(pending.waiter, False)  # a newer run of the instance has begun
            pending = self._pending[pk] = _Pending(generation)
        elif pending.generation > generation:
            return None  # a stale runner's write; the fence would refuse it
        self._wakeup.set()
        return pending

    async def write(
        self,
        pk: int,
        generation: int,
        rows: StepRows,
        *,
        timeout: float,
        finish: tuple[Any, ...] | None = None,
    ) -> bool:
        """Queue ``rows`` (and the run's end, with ``finish``) and wait until they are
        committed: True if the instance was still at ``generation`` then, False if it had
        moved on (nothing of them was written).

        Raises ``StoreUnavailable`` when the database is still unreachable ``timeout`` seconds
        after the call; the rows stay queued and land when it is back (the fence still applies).
        """
        pending = self._entry(pk, generation)
        if pending is None:
            return False
        for row in rows:
            _add(pending, row)
        if finish is not None:
            pending.finish = finish
        if pending.waiter is None or pending.waiter.done():  # done: its writer was cancelled
            loop = asyncio.get_running_loop()
            pending.waiter = loop.create_future()
            self._waiters[pending.waiter] = loop.time() + timeout
            pending.waiter.add_done_callback(self._forget)
        # No timer per write: a flush that finds the database away expires overdue writers.
        # Awaited directly (one writer per run of an instance): if the writer is cancelled,
        # so is the future, and whoever settles it later finds it done.
        outcome = await pending.waiter
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def take(self, pk: int, generation: int, *, timeout: float) -> StepRows:
        """Before an awaited write of ``pk`` in a statement of its own: wait out the writes
        of its rows under way, then hand over the rows still queued for it (to be written by
        the caller, first)."""
        while True:
            future: asyncio.Future[Any] | None = self._in_flight.get(pk)
            if future is None:
                pending = self._pending.get(pk)
                if pending is not None and pending.waiter is not None:
                    future = None if pending.waiter.done() else pending.waiter
            if future is None:
                break
            try:
                await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                raise StoreUnavailable("queued step writes are stuck; retry later") from None
        pending = self._pending.get(pk)
        if pending is None or pending.generation > generation:
            return []
        del self._pending[pk]
        if pending.generation < generation:
            return []
        return list(pending.rows.values())

    def give_back(self, pk: int, generation: int, rows: StepRows) -> None:
        """Return rows taken by a write that failed, unless newer ones were queued since."""
        for row in rows:
            pending = self._pending.get(pk)
            if pending is not None and row[1] in pending.rows:
                continue
            self.queue(pk, generation, row)

    async def _flush_loop(self) -> None:
        slots = asyncio.Semaphore(self._flushes_in_flight)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await slots.acquire()
                taken = self._take_batch()
                if not taken:
                    slots.release()
                    break  # every queued instance has a flush in flight; its end wakes us
                flush = asyncio.create_task(self._flush(*taken))
                self._flushes.add(flush)
                flush.add_done_callback(self._flushes.discard)
                flush.add_done_callback(lambda _: slots.release())

    def _take_batch(
        self,
    ) -> tuple[StepBatch, Finishes, list[asyncio.Future[_Outcome] | None]] | None:
        batch: StepBatch = []
        finishes: Finishes = {}
        waiters: list[asyncio.Future[_Outcome] | None] = []
        count = 0
        for pk in list(self._pending):
            if pk in self._in_flight:
                continue
            pending = self._pending.pop(pk)
            batch.append((pk, pending.generation, list(pending.rows.values())))
            waiters.append(pending.waiter)
            if pending.finish is not None:
                finishes[pk] = pending.finish
            count += len(pending.rows)
            if count >= _MAX_ROWS_PER_FLUSH:
                break
        return (batch, finishes, waiters) if batch else None

    async def _flush(
        self,
        batch: StepBatch,
        finishes: Finishes,
        waiters: list[asyncio.Future[_Outcome] | None],
    ) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for pk, _, _ in batch:
            self._in_flight[pk] = done
        try:
            outcomes = await self._write_until_done(batch, finishes)
            for (pk, _, _), waiter in zip(batch, waiters, strict=True):
                _settle(waiter, outcomes.get(pk, False))
        except asyncio.CancelledError:
            gone = StoreUnavailable("the PostgreSQL store is closed")
            for waiter in waiters:
                _settle(waiter, gone)
            raise
        finally:
            for pk, _, _ in batch:
                if self._in_flight.get(pk) is done:
                    del self._in_flight[pk]
            done.set_result(None)
            if self._pending:
                self._wakeup.set()  # rows queued behind this flush may go now

    async def _write_until_done(self, batch: StepBatch, finishes: Finishes) -> dict[int, _Outcome]:
        """Each instance's outcome: fenced in or out, or the error that refused its rows."""
        while True:
            try:
                passed = await self._write(batch, finishes)
                return {pk: pk in passed for pk, _, _ in batch}
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not (isinstance(exc, StoreUnavailable) or is_connection_error(exc)):
                    return await self._write_one_by_one(batch, finishes, exc)
            # The database is away: these rows wait for it, and so do later writes of them;
            # a writer waiting past its grace is told so (its rows still go when it is back).
            while True:
                self._expire_overdue()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._available(), _OUTAGE_CHECK_S)
                    break
            await asyncio.sleep(0.05)

    def _forget(self, waiter: asyncio.Future[_Outcome]) -> None:
        self._waiters.pop(waiter, None)

    def _expire_overdue(self) -> None:
        now = asyncio.get_running_loop().time()
        overdue = [waiter for waiter, deadline in self._waiters.items() if deadline <= now]
        for waiter in overdue:
            _settle(waiter, StoreUnavailable("PostgreSQL is unreachable; retry later"))

    async def _write_one_by_one(
        self, batch: StepBatch, finishes: Finishes, exc: Exception
    ) -> dict[int, _Outcome]:
        if len(batch) == 1:
            log.error("step writes of instance %d failed: %r", batch[0][0], exc)
            return {batch[0][0]: exc}
        outcomes: dict[int, _Outcome] = {}
        for one in batch:
            ended = {one[0]: finishes[one[0]]} if one[0] in finishes else {}
            outcomes.update(await self._write_until_done([one], ended))
        return outcomes


def _add(pending: _Pending, row: tuple[Any, ...]) -> None:
    pending.rows.pop(row[1], None)  # keep rows in the order of their last write
    pending.rows[row[1]] = row


def _settle(waiter: asyncio.Future[_Outcome] | None, outcome: _Outcome) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(outcome)
