"""SQLite's single writer: one thread, one connection, group commit.

The writer thread takes all the writes queued since its last commit, runs them as one batch,
commits once, and hands each caller its result: under load many instances' step writes share
one commit and one fsync. The kinds of writes, and how a batch of them runs on the
connection (each in its savepoint, superseded ones skipped, fenced step writes as one
statement), are in :mod:`~stepline.store.sqlite_writes`. This module holds the thread, the
hand-over of each loop turn's writes, and the commit.

The writes of one turn of the event loop are handed to the thread together, at the end of
the turn: one wake-up of the thread per turn, not one per write. When their commit would not
wait for the disk (``synchronous`` NORMAL or OFF in WAL mode, where a commit is a few
microseconds of memory work; or, in any mode, a turn of only :class:`NoSync` writes such as a
claim) and the writer thread is idle, they commit on the loop's own thread instead: the two
thread switches of a hand-off cost more than the commit, and on an idle machine each switch
is a wake-up of a sleeping CPU. A turn with many writes, or a writer thread still busy, goes
to the thread. Checkpoints, which do wait for the disk, stay on the thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

from stepline.errors import NotStarted, StoreUnavailable
from stepline.store.sqlite_errors import as_store_error
from stepline.store.sqlite_file_watch import REFUSAL, FileWatch
from stepline.store.sqlite_lock_wait import LockHeld, LockWaitingConnection
from stepline.store.sqlite_writes import (
    BeforeCommit,
    FencedWrite,
    NoSync,
    deliver,
    run_fenced,
    run_fenced_apart,
    run_operation,
    without_superseded,
)

__all__ = ["SqliteWriter", "close_unless_lost"]

T = TypeVar("T")
log = logging.getLogger("stepline.store.sqlite")

_STOP = object()


_MAX_BATCH = 2_000
_INLINE_MAX = 16
"""At most this many writes of one loop turn commit on the loop's thread; more go to the
writer thread, where they share one commit without holding up the loop."""
_CHECKPOINT_AFTER = 500
"""Writes committed on the loop's thread between two checkpoints run by the writer thread
(about the 1,000 WAL pages after which SQLite checkpoints by itself)."""
_CHECKPOINT = object()


class SqliteWriter:
    """``inline``: commits do not wait for the disk, so an idle writer lets the event loop's
    thread commit small batches itself (the caller's ``connect`` must then turn SQLite's own
    checkpoints off: they would wait for the disk on the loop's thread)."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        inline: bool = False,
        watch: FileWatch | None = None,
    ) -> None:
        self._connect = connect
        self._watch = watch
        self.failing: str | None = None
        """Why the last commit failed, while the file refuses writes (a full disk, an I/O
        error); cleared by the next commit that succeeds."""
        self._watch_lock = threading.Lock()
        self.lost: str | None = None
        """Set for good once the database's files were deleted or replaced under the
        connection (:class:`FileWatch`): every write is refused from then on."""
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._conn: sqlite3.Connection | None = None
        self._synchronous = 2
        """The connection's ``PRAGMA synchronous`` (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA)."""
        self._autocheckpoint = 1000
        """The connection's ``PRAGMA wal_autocheckpoint``."""
        self._inline = inline
        self._conn_lock = threading.Lock()
        """Held by whichever thread is using the connection."""
        self._count_lock = threading.Lock()
        self._pending = 0
        """Writes handed to the writer thread and not yet committed by it."""
        self._unchecked = 0
        """Writes committed since the last checkpoint (counted only when ``inline``); it and
        ``_checkpoint_asked`` change only under ``_conn_lock``."""
        self._checkpoint_asked = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turn: list[tuple[Any, Any, Any, Any]] = []
        """This loop turn's writes, committed together at the end of the turn."""

    def start(self) -> None:
        self._loop = None
        self._thread = threading.Thread(
            target=self._run, name="stepline-sqlite-writer", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def stop(self) -> None:
        """Commit what was handed over and end the thread; on the loop, :meth:`flush` first."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    @overload
    def run(self, operation: FencedWrite, *, key: object = None) -> asyncio.Future[None]: ...

    @overload
    def run(
        self, operation: Callable[[sqlite3.Connection], T], *, key: object = None
    ) -> asyncio.Future[T]: ...

    @overload
    def run(
        self, operation: BeforeCommit | NoSync, *, key: object = None
    ) -> asyncio.Future[Any]: ...

    def run(self, operation: Any, *, key: object = None) -> asyncio.Future[Any]:
        """Submit ``operation`` to the next group commit, now; the future gets its result once
        it is durable. (A plain function, not a coroutine: a step's write is awaited through
        no extra frame, and its place in the order is fixed at the call.)"""
        if self._thread is None:
            raise NotStarted()  # its future would never settle
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._submit((operation, future, loop, key), loop)
        return future

    def queue(
        self,
        operation: Callable[[sqlite3.Connection], object] | FencedWrite,
        *,
        key: object = None,
    ) -> None:
        """Queue ``operation`` without waiting; it commits with a later batch, in order, unless
        a later write with the same ``key`` supersedes it first."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._submit((operation, None, None, key), loop)

    def _submit(
        self, item: tuple[Any, Any, Any, Any], loop: asyncio.AbstractEventLoop | None
    ) -> None:
        if loop is not None:
            if self._loop is None:
                self._loop = loop
            if loop is self._loop:
                # In order with this turn's other writes, whichever thread commits them.
                if not self._turn:
                    loop.call_soon(self.flush)
                self._turn.append(item)
                return
        self._hand_over([item])

    def _hand_over(self, items: list[Any]) -> None:
        with self._count_lock:
            self._pending += len(items)
        for item in items:
            self._queue.put(item)

    def flush(self) -> None:
        """Commit or hand over this loop turn's writes: at the end of the turn, or at once
        before a :meth:`stop` (so that it finds them)."""
        batch, self._turn = self._turn, []
        if not batch:
            return
        conn = self._conn
        if (
            conn is not None
            and len(batch) <= _INLINE_MAX
            and (self._inline or all(isinstance(item[0], NoSync) for item in batch))
            and self._conn_lock.acquire(False)
        ):
            try:
                # Nothing handed over is still uncommitted, so nothing can overtake it.
                if self._pending == 0:
                    self._commit_on_loop(conn, batch)
                    return
            except LockHeld:
                pass  # another process is writing the file: the writer's thread waits for it
            finally:
                self._conn_lock.release()
        self._hand_over(batch)

    def _commit_on_loop(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        """Commit a turn's writes on the loop's thread, without waiting for the disk (every
        write of an ``inline`` writer, or a turn of only :class:`NoSync` writes of any writer)
        nor for another process's lock: :class:`LockHeld` if one holds it, nothing written."""
        if not isinstance(conn, LockWaitingConnection):
            self._commit_on_loop_now(conn, batch)
            return
        conn.wait_for_lock = False
        try:
            self._commit_on_loop_now(conn, batch)
        finally:
            conn.wait_for_lock = True

    def _commit_on_loop_now(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        if self._inline:
            self._commit_batch(conn, without_superseded(batch), on_loop=True)
            self._unchecked += len(batch)
            if self._unchecked >= _CHECKPOINT_AFTER and not self._checkpoint_asked:
                self._checkpoint_asked = True
                self._queue.put(_CHECKPOINT)
            return
        # SQLite's own checkpoint, which waits for the disk, must not run on the loop's
        # thread: it is left to the writer thread's next commit.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            self._commit_batch(conn, without_superseded(batch), on_loop=True)
        finally:
            conn.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint}")

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._conn = conn
        if self._watch is not None:
            self._watch.remember()
        self._synchronous = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        self._autocheckpoint = int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                if first is _CHECKPOINT:
                    with self._conn_lock:
                        self._checkpoint(conn)
                    continue
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
                    if item is not _CHECKPOINT:  # the count below covers it
                        batch.append(item)
                with self._conn_lock:
                    self._commit_batch(conn, without_superseded(batch), taken=len(batch))
                    if self._inline:
                        self._unchecked += len(batch)
                        if self._unchecked >= _CHECKPOINT_AFTER or self._checkpoint_asked:
                            self._checkpoint(conn)
                if stop_after:
                    return
        finally:
            self._conn = None
            with self._conn_lock:
                close_unless_lost(conn, self.lost)

    def _commit_batch(
        self, conn: sqlite3.Connection, batch: list[Any], *, taken: int = 0, on_loop: bool = False
    ) -> None:
        """Commit ``batch`` and hand each caller its outcome. ``taken``: how many handed-over
        writes this batch settles; ``on_loop``: this is the callers' own loop thread."""
        outcomes: list[tuple[Any, Any, BaseException | None, Any]] = []
        if self.files_lost():
            lost = self._refusal()
            self._settle([(f, None, lost, loop) for _, f, loop, _ in batch], taken, on_loop)
            return
        if len(batch) == 1 and isinstance(batch[0][0], FencedWrite):
            # One statement is its own transaction: no BEGIN and COMMIT round trips.
            try:
                outcomes = run_fenced(conn, batch)
            except LockHeld:
                raise  # nothing ran: the caller hands the batch to the writer's thread
            except Exception as error:  # one write's failure, handed back
                log.error("write failed: %s", error)
                self._note_failure(error)
                outcomes = [(batch[0][1], None, error, batch[0][2])]
            else:
                self.failing = None
                if self.files_lost():  # deleted while it committed: see below
                    lost = self._refusal()
                    outcomes = [(batch[0][1], None, lost, batch[0][2])]
            self._settle(outcomes, taken, on_loop)
            return
        relaxed = self._synchronous > 1 and all(isinstance(item[0], NoSync) for item in batch)
        try:
            if relaxed:
                conn.execute("PRAGMA synchronous = NORMAL")
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
                    outcomes.extend(run_fenced_apart(conn, batch[index:end]))
                    index = end
                    continue
                outcomes.append(run_operation(conn, batch[index], early=not on_loop))
                index += 1
            conn.execute("COMMIT")
            if self.files_lost():  # deleted while it committed: to a file nobody will read
                lost = self._refusal()
                outcomes = [(future, None, lost, loop) for _, future, loop, _ in batch]
            self.failing = None
            for _, _, failed, _ in outcomes:
                if failed is not None:
                    self._note_failure(failed)
        except LockHeld:
            raise  # turned away at BEGIN, before anything ran: see the single write above
        except Exception as commit_error:  # the thread must live on
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.error("group commit of %d writes failed: %s", len(batch), commit_error)
            self._note_failure(commit_error)
            outcomes = [(future, None, commit_error, loop) for _, future, loop, _ in batch]
        finally:
            if relaxed:
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        self._settle(outcomes, taken, on_loop)

    def files_lost(self) -> bool:
        """Whether the database's files were deleted or replaced under the connection
        (said in the log once, and for good: :attr:`lost`)."""
        if self.lost is None and self._watch is not None:
            with self._watch_lock:  # the writer's thread and a health check's
                problem = None if self.lost is not None else self._watch.problem()
                if problem is not None:
                    log.error("%s", problem)
                    self.lost = REFUSAL
        return self.lost is not None

    def _refusal(self) -> StoreUnavailable:
        return StoreUnavailable(f"the SQLite database cannot be used now: {self.lost}")

    def _note_failure(self, error: BaseException) -> None:
        if isinstance(as_store_error(error), StoreUnavailable):
            self.failing = str(error)

    def _settle(
        self,
        outcomes: list[tuple[Any, Any, BaseException | None, Any]],
        taken: int,
        on_loop: bool,
    ) -> None:
        """Hand each caller its outcome of a finished commit."""
        if taken:
            with self._count_lock:
                self._pending -= taken
        if on_loop:
            deliver([(f, result, error) for f, result, error, _ in outcomes if f is not None])
            return
        by_loop: dict[Any, list[tuple[Any, Any, BaseException | None]]] = {}
        for future, result, error, loop in outcomes:
            if future is not None:
                by_loop.setdefault(loop, []).append((future, result, error))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(deliver, items)
            except RuntimeError:  # the caller's loop closed while we committed
                pass

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL back into the database as far as readers allow: SQLite's automatic
        checkpoint, done here because an ``inline`` writer turns it off."""
        self._unchecked, self._checkpoint_asked = 0, False
        if self.lost is not None:
            return  # by a WAL index that may be stale, into whatever file the path names now
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("checkpoint failed: %s", exc)


_ABANDONED: list[sqlite3.Connection] = []
"""Connections left open for good: see :func:`close_unless_lost`."""


def close_unless_lost(conn: sqlite3.Connection, lost: str | None) -> None:
    """Close ``conn``, unless the database's files were deleted or replaced under it
    (``lost``): the last close checkpoints, copying pages by a WAL index that may be stale
    into whatever file the path names now. Such a connection stays open (referenced, so that
    no collection closes it) until the process ends."""
    if lost is None:
        conn.close()
    else:
        _ABANDONED.append(conn)
