"""Queued step writes ("attempt started", a sleep's end): written behind the caller's back.

``queue`` returns at once. A background task takes everything queued since its last flush
and writes it in one statement (a later write of the same step replaces an earlier one
before it is sent, so a burst costs one row). Order with the awaited writes of the same
instance is kept by two rules:

- an awaited write first waits for any flush in flight that holds rows of its instance, so
  an older queued row can never land on top of a newer awaited one;
- rows of its instance still waiting in the queue are *taken* by the awaited write and sent
  in its own statement (one round trip), so they land no later than it does.

Rows of an older generation than the newest queued for an instance are dropped: the fence
would refuse them anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from stepline.errors import StoreUnavailable
from stepline.store.postgres_pool import is_connection_error

__all__ = ["QueuedSteps", "StepRows"]

log = logging.getLogger("stepline.store.postgres")

StepRows = list[tuple[Any, ...]]
_MAX_ROWS_PER_FLUSH = 5_000


@dataclass(slots=True)
class _Pending:
    generation: int
    rows: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    """Step rows by key; the last queued write of a step wins."""


class QueuedSteps:
    """The queue of step writes nobody waits for, and its flushing task."""

    def __init__(
        self,
        write: Callable[[list[tuple[int, int, StepRows]]], Awaitable[None]],
        *,
        available: Callable[[], Awaitable[None]],
    ) -> None:
        self._write = write
        self._available = available
        self._pending: dict[int, _Pending] = {}
        self._in_flight: dict[int, asyncio.Future[None]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        for future in self._in_flight.values():
            if not future.done():
                future.set_result(None)
        if self._pending:
            log.warning("closing with %d instances' queued step writes unsent", len(self._pending))

    def queue(self, pk: int, generation: int, row: tuple[Any, ...]) -> None:
        pending = self._pending.get(pk)
        if pending is None or pending.generation < generation:
            pending = self._pending[pk] = _Pending(generation)
        elif pending.generation > generation:
            return  # a stale runner's write; the fence would refuse it
        pending.rows.pop(row[1], None)  # keep rows in the order of their last write
        pending.rows[row[1]] = row
        self._wakeup.set()

    async def take(self, pk: int, generation: int, *, timeout: float) -> StepRows:
        """Before an awaited write of ``pk``: wait out flushes holding its rows, then hand
        over the rows still queued for it (to be written by the caller, first)."""
        while (future := self._in_flight.get(pk)) is not None:
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
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._take_batch()
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                for pk, _, _ in batch:
                    self._in_flight[pk] = future
                try:
                    await self._write_until_done(batch)
                finally:
                    for pk, _, _ in batch:
                        if self._in_flight.get(pk) is future:
                            del self._in_flight[pk]
                    if not future.done():
                        future.set_result(None)

    def _take_batch(self) -> list[tuple[int, int, StepRows]]:
        batch: list[tuple[int, int, StepRows]] = []
        count = 0
        for pk in list(self._pending):
            pending = self._pending.pop(pk)
            batch.append((pk, pending.generation, list(pending.rows.values())))
            count += len(pending.rows)
            if count >= _MAX_ROWS_PER_FLUSH:
                break
        return batch

    async def _write_until_done(self, batch: list[tuple[int, int, StepRows]]) -> None:
        while True:
            try:
                await self._write(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not (isinstance(exc, StoreUnavailable) or is_connection_error(exc)):
                    log.error("queued step writes failed and were dropped: %r", exc)
                    return
            # The database is away: these rows wait for it, and so do later writes of them.
            await self._available()
            await asyncio.sleep(0.05)
