"""SQLite's single writer: one thread, one connection, group commit.

Every write is a function of the connection. The writer thread takes all the functions
queued since its last commit, runs each inside its own savepoint (so one failing operation
does not undo the others), commits once, and hands each caller its result. Under load many
instances' step writes share one commit and one fsync.

A queued write may carry a key (a step's identity): when a later write with the same key is
in the same batch, the earlier, superseded one is skipped. That is how "attempt started"
and the attempt's outcome become one row write when the engine is busy.

Step writes are :class:`FencedWrite` values rather than functions: one statement that only
writes while the instance is still at the runner's generation. Consecutive ones run as a
single ``executemany``; only when fewer rows changed than were sent does the writer look up
which were fenced out. This keeps the writer thread's calls into SQLite, and so its hand-offs
of the GIL, to a few per batch instead of four per step.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from stepline.errors import StaleRunError

__all__ = ["BeforeCommit", "FencedWrite", "SqliteWriter"]

T = TypeVar("T")
log = logging.getLogger("stepline.store.sqlite")

_STOP = object()


@dataclass(frozen=True, slots=True)
class FencedWrite:
    """``sql`` with ``params`` changes one row if instance ``pk`` is at ``generation``."""

    sql: str
    params: tuple[Any, ...]
    pk: int
    generation: int
    quiet: bool = False
    """A queued write whose run has moved on is dropped without complaint."""


@dataclass(frozen=True, slots=True)
class BeforeCommit:
    """An operation whose caller gets its result as soon as it ran, before the commit.

    For a write the caller may go on from before it is durable, because every later write of
    that caller queues behind it and so commits with it or after it: a crash before the commit
    loses the later writes too, and a replay finds things as they were. (A commit that fails
    while the process lives on is logged; the caller is not told.)
    """

    operation: Callable[[sqlite3.Connection], Any]


_MAX_BATCH = 2_000


class SqliteWriter:
    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="stepline-sqlite-writer", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    @overload
    async def run(self, operation: FencedWrite, *, key: object = None) -> None: ...

    @overload
    async def run(
        self, operation: Callable[[sqlite3.Connection], T], *, key: object = None
    ) -> T: ...

    @overload
    async def run(self, operation: BeforeCommit, *, key: object = None) -> Any: ...

    async def run(self, operation: Any, *, key: object = None) -> Any:
        """Run ``operation`` in the next group commit and return its result once durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((operation, future, loop, key))
        return await future

    def queue(
        self,
        operation: Callable[[sqlite3.Connection], object] | FencedWrite,
        *,
        key: object = None,
    ) -> None:
        """Queue ``operation`` without waiting; it commits with a later batch, in order, unless
        a later write with the same ``key`` supersedes it first."""
        self._queue.put((operation, None, None, key))

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                stop_after = False
                while len(batch) < _MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop_after = True
                        break
                    batch.append(item)
                self._commit_batch(conn, _without_superseded(batch))
                if stop_after:
                    return
        finally:
            conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        outcomes: list[tuple[Any, Any, BaseException | None, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            index = 0
            while index < len(batch):
                operation = batch[index][0]
                if isinstance(operation, FencedWrite):
                    end = index + 1
                    while (
                        end < len(batch)
                        and isinstance(batch[end][0], FencedWrite)
                        and batch[end][0].sql == operation.sql
                    ):
                        end += 1
                    outcomes.extend(_run_fenced(conn, batch[index:end]))
                    index = end
                    continue
                outcomes.append(_run_operation(conn, batch[index]))
                index += 1
            conn.execute("COMMIT")
        except sqlite3.Error as commit_error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.error("group commit of %d writes failed: %s", len(batch), commit_error)
            outcomes = [(future, None, commit_error, loop) for _, future, loop, _ in batch]
        by_loop: dict[Any, list[tuple[Any, Any, BaseException | None]]] = {}
        for future, result, error, loop in outcomes:
            if future is not None:
                by_loop.setdefault(loop, []).append((future, result, error))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the caller's loop closed while we committed
                pass


def _run_operation(
    conn: sqlite3.Connection, item: tuple[Any, Any, Any, Any]
) -> tuple[Any, Any, BaseException | None, Any]:
    operation, future, loop, _ = item
    early = isinstance(operation, BeforeCommit)
    conn.execute("SAVEPOINT op")
    try:
        result = operation.operation(conn) if early else operation(conn)
    except BaseException as exc:  # handed back to the caller, not lost
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        if future is None:
            log.error("queued write failed: %r", exc)
        return future, None, exc, loop
    conn.execute("RELEASE op")
    if early and future is not None:
        # Delivered now; the batch's delivery after the commit skips a future already done.
        loop.call_soon_threadsafe(_deliver, [(future, result, None)])
    return future, result, None, loop


def _run_fenced(
    conn: sqlite3.Connection, items: list[Any]
) -> list[tuple[Any, Any, BaseException | None, Any]]:
    writes: list[FencedWrite] = [item[0] for item in items]
    changed = conn.executemany(writes[0].sql, [w.params for w in writes]).rowcount
    stale: set[int] = set()
    if changed != len(writes):
        # Some instance moved on (terminated, restarted, claimed again): find which.
        pks = sorted({w.pk for w in writes})
        marks = ", ".join("?" * len(pks))
        current = dict(
            conn.execute(f"SELECT pk, generation FROM instances WHERE pk IN ({marks})", pks)
        )
        stale = {i for i, w in enumerate(writes) if current.get(w.pk) != w.generation}
    outcomes: list[tuple[Any, Any, BaseException | None, Any]] = []
    for i, (write, future, loop, _) in enumerate(items):
        if i in stale and not write.quiet:
            error = StaleRunError(
                f"instance {write.pk} moved on from generation {write.generation}"
            )
            outcomes.append((future, None, error, loop))
        else:
            outcomes.append((future, None, None, loop))
    return outcomes


def _without_superseded(batch: list[Any]) -> list[Any]:
    """Drop queued (unawaited) writes that a later write of the same key replaces."""
    last: dict[object, int] = {}
    for index, item in enumerate(batch):
        if item[3] is not None:
            last[item[3]] = index
    if len(last) == len(batch):
        return batch
    return [
        item
        for index, item in enumerate(batch)
        if item[3] is None or item[1] is not None or last[item[3]] == index
    ]


def _deliver(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, exc in items:
        if future.done():
            continue
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)
