"""The embedded SQLite store: WAL, one group-committing writer, pooled readers.

``SqliteStore("path/to/db.sqlite3", synchronous="FULL")``. FULL (the default) survives power
loss; NORMAL is faster and survives a process crash but may lose the last commits on power
loss. SQL lives in :mod:`stepline.store.sqlite_queries`.

This module holds the store's state, the engine's operations on the runs it claims (claims,
leases, step writes, suspension, the end, an event taken) and the notices. Its other parts
are mixins in modules of their own: the connections, from opening to closing
(:mod:`~stepline.store.sqlite_connections`), the instances that clients create, read and
control (:mod:`~stepline.store.sqlite_instances`) and the catalog
(:mod:`~stepline.store.sqlite_catalog`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stepline.errors import StaleRunError
from stepline.store import sqlite_queries as q
from stepline.store.migrations import Migration
from stepline.store.port import Notice
from stepline.store.records import EventRecord, InstanceRecord, StepRecord
from stepline.store.sqlite_catalog import SqliteCatalog
from stepline.store.sqlite_connections import NO_WAIT_MODES, SqliteConnections
from stepline.store.sqlite_engine_lock import EngineLock
from stepline.store.sqlite_file_watch import FileWatch
from stepline.store.sqlite_instances import SqliteInstances
from stepline.store.sqlite_notices import NoticeInbox, NoticeSender, socket_path
from stepline.store.sqlite_rows import (
    chunks,
    event_from_row,
    instance_from_row,
    marks,
    step_from_row,
    step_to_row,
)
from stepline.store.sqlite_writer import SqliteWriter
from stepline.store.sqlite_writes import BeforeCommit, FencedWrite, ManyRows, NoSync

__all__ = ["SYNC_MODES", "SqliteStore"]

SYNC_MODES = ("FULL", "NORMAL", "EXTRA", "OFF")
"""The values of SQLite's ``synchronous`` pragma that a store takes (in any case)."""


class SqliteStore(SqliteConnections, SqliteInstances, SqliteCatalog):
    """The default store: one file, many readers, one batching writer."""

    backend = "sqlite"
    exclusive = True
    """One engine per file: on start it may take back every instance left running."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        synchronous = synchronous.upper()
        if synchronous not in SYNC_MODES:
            raise ValueError(f"synchronous must be one of {SYNC_MODES}")
        self.path = Path(path)
        self.synchronous = synchronous
        self._writer = SqliteWriter(
            self._connect_writer,
            inline=synchronous in NO_WAIT_MODES,
            watch=FileWatch(self.path),
        )
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stepline-sqlite-read")
        self._local = threading.local()
        self._read_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Notice], None]] = []
        self._engine_lock = EngineLock(self.path)
        self._inbox: NoticeInbox | None = None
        """While this process runs the file's engine: the notices of the other processes."""
        self._applied_at_open: list[Migration] = []
        self._is_open = False
        self._sender = NoticeSender(socket_path(self.path))

    # -- the engine's operations -------------------------------------------------------------
    async def recover_interrupted(self, now: int, *, lapsed_before: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            paused = conn.execute(q.RECOVER_PAUSING, (now, now, lapsed_before)).rowcount
            return int(paused + conn.execute(q.RECOVER_RUNNING, (now, lapsed_before)).rowcount)

        return await self._write(op)

    async def renew_leases(
        self, owner: str, until: int, pks: Sequence[int] | None = None, *, valid_at: int = 0
    ) -> set[int]:
        # Leases need not survive a power failure: every engine on this file goes with it.
        chosen = None if pks is None else list(pks)

        def op(conn: sqlite3.Connection) -> set[int]:
            if chosen is None:
                return {row[0] for row in conn.execute(q.RENEW_LEASES, (until, owner, valid_at))}
            renewed: set[int] = set()
            for chunk in chunks(chosen, 500):
                sql = q.RENEW_SOME_LEASES.format(marks=marks(len(chunk)))
                renewed.update(
                    row[0] for row in conn.execute(sql, (until, owner, valid_at, *chunk))
                )
            return renewed

        renewed: set[int] = await self._writer.run(NoSync(op))
        return renewed

    async def pausing_among(self, pks: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for chunk in chunks(list(pks), 500):
            sql = q.PAUSING_AMONG.format(marks=marks(len(chunk)))
            found.update(row[0] for row in self._lookup_rows(sql, tuple(chunk)))
        return found

    async def claim_runnable(
        self,
        now: int,
        limit: int,
        *,
        owner: str,
        lease_until: int,
        skip: Collection[str] = (),
    ) -> list[tuple[InstanceRecord, list[StepRecord]]]:
        versions = tuple(skip)
        avoid = f" AND version_id NOT IN ({marks(len(versions))})" if versions else ""

        def op(conn: sqlite3.Connection) -> list[tuple[InstanceRecord, list[StepRecord]]]:
            lease = (now, now, owner, lease_until)
            limited = conn.execute(q.LIMITED_WORKFLOWS).fetchall()
            rows: list[Any] = []
            # Workflows with a concurrency limit are claimed on their own, up to their free
            # slots; then the others.
            for workflow_id, cap, running in limited:
                want = min(cap - running, limit - len(rows))
                if want > 0:
                    due, queued = q.claims("AND workflow_id = ?" + avoid)
                    rows += _claim_pair(
                        conn, due, queued, lease, now, want, (workflow_id, *versions)
                    )
            want = limit - len(rows)
            if want > 0:
                ids = tuple(w[0] for w in limited)
                others = f"AND workflow_id NOT IN ({marks(len(ids))})" if ids else ""
                due, queued = q.claims(others + avoid)
                rows += _claim_pair(conn, due, queued, lease, now, want, (*ids, *versions))
            claimed = [instance_from_row(r) for r in rows]
            steps: dict[int, list[StepRecord]] = {i.pk: [] for i in claimed}
            for chunk in chunks([i.pk for i in claimed], 500):
                sql = q.RUN_STEPS_OF_MANY.format(marks=marks(len(chunk)))
                for row in conn.execute(sql, chunk):
                    steps[row[0]].append(step_from_row(row))
            return [(i, steps[i.pk]) for i in claimed]

        # A claim lost in a power failure is harmless (the instance is runnable again, and
        # every engine on this file restarts), so it does not wait for the disk on its own.
        claimed: list[tuple[InstanceRecord, list[StepRecord]]] = await self._writer.run(NoSync(op))
        return claimed

    async def release(self, pk: int, generation: int, *, now: int) -> None:
        await self._write(lambda conn: conn.execute(q.RELEASE, (now, pk, generation)))

    async def next_wake_at(self, kinds: Collection[str] | None = None) -> int | None:
        if kinds is None:
            row = self._lookup(q.NEXT_WAKE)
        else:
            sql = q.NEXT_WAKE_OF_KINDS.format(marks=marks(len(kinds)))
            row = self._lookup(sql, tuple(kinds))
        return None if row is None or row[0] is None else int(row[0])

    def save_step(
        self, pk: int, generation: int, step: StepRecord, *, now: int, step_count: int | None = None
    ) -> Awaitable[None]:
        write = FencedWrite(
            q.UPSERT_STEP_FENCED,
            _fenced_step_params(step, pk, generation),
            pk,
            generation,
            many=_STEPS_MANY,
        )
        return self._writer.run(write, key=(pk, step.key))

    def queue_step(self, pk: int, generation: int, step: StepRecord, *, now: int) -> None:
        params = _fenced_step_params(step, pk, generation)
        write = FencedWrite(
            q.UPSERT_STEP_FENCED, params, pk, generation, quiet=True, many=_STEPS_MANY
        )
        self._writer.queue(write, key=(pk, step.key))

    async def suspend(
        self,
        pk: int,
        generation: int,
        *,
        status: str,
        wake_at: int | None,
        wake_kind: str | None,
        steps: Sequence[StepRecord],
        now: int,
    ) -> bool:
        values = [step_to_row(s) for s in steps]
        types = {s.event_type for s in steps if s.kind == "wait" and s.status == "waiting"}
        waited_for = sorted(t for t in types if t is not None)

        def op(conn: sqlite3.Connection) -> bool:
            _save_steps(conn, pk, generation, values)
            parked, kind = status, wake_kind
            if (
                status == "paused"
                and conn.execute(q.RESUMED_SINCE_PAUSE, (pk, generation)).fetchone()
            ):
                parked, kind, woken = "waiting", "timer", True
            else:
                woken = status == "waiting" and _event_ready(conn, pk, waited_for)
            due = now if woken else wake_at
            paused_on = now if parked == "paused" else None
            conn.execute(q.SUSPEND, (parked, due, kind, paused_on, now, pk, generation))
            return woken

        return await self._write(op)

    async def finish(
        self,
        pk: int,
        generation: int,
        *,
        status: str,
        output: str | None,
        error_name: str | None,
        error_message: str | None,
        steps: Sequence[StepRecord],
        now: int,
    ) -> None:
        params = (
            status,
            _NULL if output is None else output,
            _NULL if error_name is None else error_name,
            _NULL if error_message is None else error_message,
            now,
            now,
            now,
            status,
            pk,
            generation,
        )
        if not steps:
            # One fenced statement: many instances' ends share one statement.
            await self._writer.run(FencedWrite(q.FINISH, params, pk, generation, many=_FINISH_MANY))
            return
        values = [step_to_row(s) for s in steps]

        def op(conn: sqlite3.Connection) -> None:
            _save_steps(conn, pk, generation, values)
            conn.execute(q.FINISH, params)

        await self._write(op)

    async def consume_event(
        self, pk: int, generation: int, step: StepRecord, *, now: int
    ) -> EventRecord | None:
        def op(conn: sqlite3.Connection) -> EventRecord | None:
            _fence(conn, pk, generation)
            row = conn.execute(q.OLDEST_EVENT, (pk, step.event_type, step.wake_at)).fetchone()
            if row is None:
                return None
            event = event_from_row(row)
            event.consumed_by = step.key
            conn.execute(q.CONSUME_EVENT, (step.key, event.id))
            done = _copy_step(step)
            done.status, done.end, done.output = "complete", now, event.payload
            done.wake_at = event.created_on
            conn.execute(q.UPSERT_STEP, step_to_row(done))
            return event

        # The runner goes on with the event while the commit is under way: its next write
        # commits with this one or after it, so a crash before the commit loses both, and the replay
        # consumes the same event again (it is still the oldest of its type).
        found: EventRecord | None = await self._writer.run(BeforeCommit(op))
        return found

    # -- notices -----------------------------------------------------------------------------
    async def publish(self, notice: Notice) -> None:
        # A SQLite file has one engine: in its process a notice is handed over here; from any
        # other process it is sent to that engine's socket.
        if self._inbox is None:
            self._sender.send(notice)
        self._deliver(notice)

    def _deliver(self, notice: Notice) -> None:
        for handler in list(self._subscribers):
            handler(notice)

    def subscribe(self, handler: Callable[[Notice], None]) -> None:
        self._subscribers.append(handler)

    def unsubscribe(self, handler: Callable[[Notice], None]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(handler)


# -- helpers run on the writer thread ------------------------------------------------------------
def _claim_pair(
    conn: sqlite3.Connection,
    due_sql: str,
    queued_sql: str,
    lease: tuple[Any, ...],
    now: int,
    want: int,
    only: tuple[Any, ...],
) -> list[Any]:
    """Claim up to ``want``: instances whose wake time came first, then queued ones."""
    rows = conn.execute(due_sql, (*lease, now, *only, want)).fetchall()
    if len(rows) < want:
        rows += conn.execute(queued_sql, (*lease, *only, want - len(rows))).fetchall()
    return rows


def _fence(conn: sqlite3.Connection, pk: int, generation: int) -> None:
    row = conn.execute(q.GENERATION_OF, (pk,)).fetchone()
    if row is None or row[0] != generation:
        raise StaleRunError(f"instance {pk} moved on from generation {generation}")


def _event_ready(conn: sqlite3.Connection, pk: int, types: list[str]) -> bool:
    """Whether an untaken event of one of ``types`` is there for the parking run's waits."""
    for part in chunks(types, 500):
        sql = q.EVENT_READY_FOR_WAITS.format(marks=marks(len(part)))
        if conn.execute(sql, (pk, *part)).fetchone():
            return True
    return False


def _save_steps(
    conn: sqlite3.Connection,
    pk: int,
    generation: int,
    values: list[tuple[Any, ...]],
    *,
    quiet: bool = False,
) -> None:
    try:
        _fence(conn, pk, generation)
    except StaleRunError:
        if quiet:  # a queued "attempt started" for a run that has since been stopped
            return
        raise
    conn.executemany(q.UPSERT_STEP, values)


def _copy_step(step: StepRecord) -> StepRecord:
    return step_from_row(step_to_row(step))


# The many-row forms of the fenced writes; a padding row names instance -1, which never exists.
# Its other values are 0, not None: binding None costs Python's sqlite3 ten times as much
# (it looks for an adapter first), and the writer holds the GIL while it binds.
_STEPS_MANY = ManyRows(q.UPSERT_STEPS_FENCED, 18, (0,) * 16 + (-1, -1))
_FINISH_MANY = ManyRows(q.FINISH_MANY, 10, (0,) * 8 + (-1, -1))
_NULL = q.NULL_MARK


def _fenced_step_params(step: StepRecord, pk: int, generation: int) -> tuple[Any, ...]:
    """``UPSERT_STEP_FENCED``'s parameters: the step's columns, NULLs as :data:`_NULL`, then
    the fence."""
    return (*step_to_row(step, _NULL), pk, generation)
