"""SQLite's single writer: one thread, one connection, group commit.

Every write is a function of the connection. The writer thread takes all the functions
queued since its last commit, runs each inside its own savepoint (so one failing operation
does not undo the others), commits once, and hands each caller its result. Under load many
instances' step writes share one commit and one fsync.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["SqliteWriter"]

T = TypeVar("T")
log = logging.getLogger("stepline.store.sqlite")

_STOP = object()
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

    async def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation`` in the next group commit and return its result once durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((operation, future, loop))
        return await future

    def queue(self, operation: Callable[[sqlite3.Connection], object]) -> None:
        """Queue ``operation`` without waiting; it commits with a later batch, in order."""
        self._queue.put((operation, None, None))

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
                self._commit_batch(conn, batch)
                if stop_after:
                    return
        finally:
            conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        outcomes: list[tuple[Any, Any, BaseException | None, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for operation, future, loop in batch:
                conn.execute("SAVEPOINT op")
                try:
                    result = operation(conn)
                except BaseException as exc:  # handed back to the caller, not lost
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((future, None, exc, loop))
                    if future is None:
                        log.error("queued write failed: %r", exc)
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((future, result, None, loop))
            conn.execute("COMMIT")
        except sqlite3.Error as commit_error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.error("group commit of %d writes failed: %s", len(batch), commit_error)
            outcomes = [(future, None, commit_error, loop) for _, future, loop in batch]
        by_loop: dict[Any, list[tuple[Any, Any, BaseException | None]]] = {}
        for future, result, error, loop in outcomes:
            if future is not None:
                by_loop.setdefault(loop, []).append((future, result, error))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the caller's loop closed while we committed
                pass


def _deliver(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, exc in items:
        if future.done():
            continue
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)
