"""The embedded SQLite store: WAL, one group-committing writer, pooled readers.

``SqliteStore("path/to/db.sqlite3", synchronous="FULL")``. FULL (the default) survives power
loss; NORMAL is faster and survives a process crash but may lose the last commits on power
loss. SQL lives in :mod:`stepline.store.sqlite_queries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from stepline.errors import (
    CannotSendEvent,
    InstanceAlreadyExists,
    InstanceNotFound,
    StaleRunError,
    StoreUnavailable,
    WorkflowNotFound,
)
from stepline.store import sqlite_queries as q
from stepline.store.buffered import check_buffered
from stepline.store.migrations import load_migrations, refuse_newer_schema
from stepline.store.port import WORKFLOW_GONE, BufferedEvent, InstanceFilter, Notice
from stepline.store.records import (
    FINISHED_STATUSES,
    EventRecord,
    InstanceRecord,
    ScheduleRecord,
    StepRecord,
)
from stepline.store.sqlite_access import check_writable, is_refusal, not_writable
from stepline.store.sqlite_catalog import SqliteCatalog
from stepline.store.sqlite_engine_lock import EngineLock
from stepline.store.sqlite_errors import as_store_error, cannot_open
from stepline.store.sqlite_file_watch import FileWatch
from stepline.store.sqlite_lock_wait import LockWaitingConnection
from stepline.store.sqlite_notices import NoticeInbox, NoticeSender, socket_path
from stepline.store.sqlite_rows import (
    chunks,
    event_from_row,
    instance_from_row,
    marks,
    step_from_row,
    step_to_row,
    value_rows,
)
from stepline.store.sqlite_writer import (
    BeforeCommit,
    FencedWrite,
    ManyRows,
    NoSync,
    SqliteWriter,
    close_unless_lost,
)

__all__ = ["SqliteStore"]

T = TypeVar("T")
_SYNC_MODES = ("FULL", "NORMAL", "EXTRA", "OFF")
_NO_WAIT_MODES = ("NORMAL", "OFF")
"""In WAL mode a commit under these waits for no disk write, only checkpoints do."""


class SqliteStore(SqliteCatalog):
    """The default store: one file, many readers, one batching writer."""

    backend = "sqlite"
    exclusive = True
    """One engine per file: on start it may take back every instance left running."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        synchronous = synchronous.upper()
        if synchronous not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {_SYNC_MODES}")
        self.path = Path(path)
        self.synchronous = synchronous
        self._writer = SqliteWriter(
            self._connect_writer,
            inline=synchronous in _NO_WAIT_MODES,
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
        self._sender = NoticeSender(socket_path(self.path))

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        # No busy handler: the connection waits for another process's lock itself.
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            factory=LockWaitingConnection,
            timeout=0,
        )
        conn.execute("PRAGMA foreign_keys = ON")
        return self._set_up_writer(conn)

    def _set_up_writer(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA temp_store = MEMORY")
        if self.synchronous in _NO_WAIT_MODES:
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the writer thread checkpoints
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._read_connections.append(conn)
        return conn

    async def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: operation(self._reader()))
        except sqlite3.Error as error:
            raise as_store_error(error) from error

    def _lookup(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """One indexed row, read on the calling thread (``None`` if there is none).

        A WAL reader never waits for the writer, and a lookup by key takes microseconds, less
        than the two thread switches of :meth:`_read`; the request and engine hot paths use
        this. Scans and anything that can return many rows stay on the reader threads.
        """
        try:
            return self._reader().execute(sql, params).fetchone()
        except sqlite3.Error as error:
            raise as_store_error(error) from error

    def _lookup_rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Like :meth:`_lookup`, for an indexed query whose ``LIMIT`` bounds its rows."""
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise as_store_error(error) from error

    async def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        return await self._writer.run(operation)

    async def open(self) -> None:
        check_writable(self.path)  # else SQLite's words, or a traceback, or a later failure
        self._engine_lock.attach()  # before any connection: see sqlite_engine_lock
        try:
            await self._open_writer()
        except BaseException:
            self._engine_lock.detach()
            raise

    async def _open_writer(self) -> None:
        try:
            await asyncio.to_thread(self._writer.start)
            try:
                await self._write(_migrate)
            except BaseException:  # a refused schema, say: leave no writer thread holding it
                await asyncio.to_thread(self._writer.stop)
                raise
        except (sqlite3.Error, StoreUnavailable) as error:  # not a database, say
            said = cannot_open(self.path, error)
            if said is error:
                raise
            raise said from error

    @property
    def available(self) -> bool:
        """A local file is always reachable; ``ping`` tells whether it answers."""
        return True

    async def ping(self) -> bool:
        """The file answers a read, and takes writes: after a write failed (a full disk),
        a probe write tells whether it takes them again; after its file was deleted or
        replaced under the writer, never."""
        if self._writer.files_lost():
            return False
        try:
            if self._writer.failing is not None:
                await self._write(_probe_write)
            return bool(await self._read(lambda c: c.execute("SELECT 1").fetchone()[0]))
        except (sqlite3.Error, StoreUnavailable, RuntimeError):  # RuntimeError: closed
            return False

    def hold_engine(self, owner: str) -> None:
        try:
            self._hold_engine(owner)
        except OSError as error:  # made read-only since open() looked
            if not is_refusal(error):
                raise
            raise not_writable(Path(error.filename), error) from error

    def _hold_engine(self, owner: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._engine_lock.acquire(owner)
        if self._inbox is None:
            inbox = NoticeInbox(socket_path(self.path), self._deliver, database=self.path)
            try:
                inbox.open(asyncio.get_running_loop())
            except BaseException:
                self._engine_lock.release()
                raise
            self._inbox = inbox

    def release_engine(self) -> None:
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.close()
        self._engine_lock.release()

    async def close(self) -> None:
        self._writer.flush()
        await asyncio.to_thread(self._writer.stop)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._read_connections:
                close_unless_lost(conn, self._writer.lost)
            self._read_connections.clear()
        self._local = threading.local()  # the calling thread's connection is closed too
        self._sender.close()
        self.release_engine()  # last: nothing of this process's is left to write
        self._engine_lock.detach()  # and no connection of this store's is open

    # -- instances: creation and reading -----------------------------------------------------
    async def insert_instances(
        self, records: Sequence[InstanceRecord], *, skip_existing: bool, now: int
    ) -> list[InstanceRecord]:
        if not records:
            return []
        workflow_id = records[0].workflow_id
        ids = [r.id for r in records]
        values = [v for r in records for v in _instance_values(r)]

        def op(conn: sqlite3.Connection) -> list[InstanceRecord]:
            # Two statements for the whole batch: ids whose instance expired are free again
            # (the sweep may not have run yet), then one multi-row insert.
            for chunk in chunks(ids, 500):
                sql = q.DELETE_EXPIRED_IDS.format(marks=marks(len(chunk)))
                conn.execute(sql, (workflow_id, now, *chunk))
            added: dict[str, int] = {}
            for start in range(0, len(records), _INSERT_ROWS):
                part = records[start : start + _INSERT_ROWS]
                first = start * _INSTANCE_VALUES
                params = values[first : first + len(part) * _INSTANCE_VALUES]
                try:
                    added.update(_insert_part(conn, part, params))
                except sqlite3.IntegrityError as exc:
                    if "FOREIGN KEY" not in str(exc):
                        raise
                    raise WorkflowNotFound(WORKFLOW_GONE) from None
            inserted = []
            seen: set[str] = set()
            for record in records:
                pk = added.get(record.id)
                if pk is None or record.id in seen:
                    if not skip_existing:
                        raise InstanceAlreadyExists(f"instance {record.id!r} already exists")
                    continue
                seen.add(record.id)
                record.pk = pk
                inserted.append(record)
            if inserted:
                conn.execute(q.TOUCH_TRIGGERED, (now, workflow_id))
            return inserted

        return await self._write(op)

    async def get_instance(self, workflow_id: str, instance_id: str) -> InstanceRecord | None:
        row = self._lookup(q.INSTANCE_BY_ID, (workflow_id, instance_id))
        return None if row is None else instance_from_row(row)

    async def get_instance_by_pk(self, pk: int) -> InstanceRecord | None:
        row = self._lookup(q.INSTANCE_BY_PK, (pk,))
        return None if row is None else instance_from_row(row)

    async def list_instances(
        self,
        workflow_id: str,
        where: InstanceFilter,
        *,
        descending: bool,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> list[InstanceRecord]:
        clauses, params = _filter_sql(workflow_id, where)
        if after is not None:
            clauses.append(
                "(created_on, pk) < (?, ?)" if descending else "(created_on, pk) > (?, ?)"
            )
            params.extend(after)
        order = "DESC" if descending else "ASC"
        sql = q.LIST_INSTANCES.format(where=" AND ".join(clauses), order=order)
        params.extend((limit, offset))
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [instance_from_row(r) for r in rows]

    async def count_instances(self, workflow_id: str, where: InstanceFilter) -> int:
        clauses, params = _filter_sql(workflow_id, where)
        sql = q.COUNT_INSTANCES.format(where=" AND ".join(clauses))
        row = await self._read(lambda c: c.execute(sql, params).fetchone())
        return int(row[0])

    async def load_steps(self, pk: int, *, output_chars: int | None = None) -> list[StepRecord]:
        if output_chars is None:
            rows = await self._read(lambda c: c.execute(q.STEPS_OF, (pk,)).fetchall())
        else:
            params = (output_chars, pk)
            rows = await self._read(lambda c: c.execute(q.STEPS_CUT_OF, params).fetchall())
        return [step_from_row(r) for r in rows]

    async def load_step(self, pk: int, key: str) -> StepRecord | None:
        row = await self._read(lambda c: c.execute(q.STEP_OF, (pk, key)).fetchone())
        return None if row is None else step_from_row(row)

    async def count_steps(self, pk: int) -> int:
        row = await self._read(lambda c: c.execute(q.COUNT_STEPS, (pk,)).fetchone())
        return int(row[0])

    async def step_output(self, pk: int, key: str) -> str | None:
        row = await self._read(lambda c: c.execute(q.STEP_OUTPUT, (pk, key)).fetchone())
        return None if row is None else row[0]

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

        def op(conn: sqlite3.Connection) -> bool:
            _save_steps(conn, pk, generation, values)
            woken = bool(
                status == "waiting" and conn.execute(q.EVENT_READY_FOR_WAIT, (pk,)).fetchone()
            )
            due = now if woken else wake_at
            paused_on = now if status == "paused" else None
            conn.execute(q.SUSPEND, (status, due, wake_kind, paused_on, now, pk, generation))
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

    # -- control -----------------------------------------------------------------------------
    async def buffer_event(
        self,
        pk: int,
        event_type: str,
        payload: str,
        *,
        now: int,
        owner: str | None = None,
        lease_until: int = 0,
        limit: int | None = None,
    ) -> BufferedEvent:
        def op(conn: sqlite3.Connection) -> BufferedEvent:
            row = conn.execute(q.EVENT_TARGET, (pk,)).fetchone()
            if row is None:
                raise InstanceNotFound()
            instance = instance_from_row(row[:-1])
            if instance.status in FINISHED_STATUSES:
                raise CannotSendEvent(f"instance is {instance.status}; it takes no more events")
            check_buffered(row[-1], payload, limit)
            conn.execute(q.INSERT_EVENT, (pk, event_type, payload, now))
            if instance.status != "waiting":
                return BufferedEvent(instance)
            if owner is not None:
                lease = (now, now, owner, lease_until)
                claimed = conn.execute(q.CLAIM_WOKEN, (*lease, pk, pk, event_type, now)).fetchone()
                if claimed is not None:
                    _hand_to_wait(conn, pk, event_type, now)
                    steps = [step_from_row(r) for r in conn.execute(q.RUN_STEPS_OF, (pk,))]
                    return BufferedEvent(instance, (instance_from_row(claimed), steps))
            conn.execute(q.WAKE_FOR_EVENT, (now, now, pk, pk, event_type, now))
            return BufferedEvent(instance)

        return await self._write(op)

    async def update_instance(
        self,
        pk: int,
        *,
        expect: Collection[str],
        changes: dict[str, Any],
        bump_generation: bool = False,
    ) -> InstanceRecord | None:
        sets = [f"{column} = ?" for column in changes]
        if bump_generation:
            sets.append("generation = generation + 1")
        sql = q.UPDATE_INSTANCE_IF.format(sets=", ".join(sets), marks=marks(len(expect)))
        params = (*changes.values(), pk, *expect)
        row = await self._write(lambda c: c.execute(sql, params).fetchone())
        return None if row is None else instance_from_row(row)

    async def terminate(
        self, pks: Sequence[int], *, now: int, expect: Collection[str] | None = None
    ) -> list[InstanceRecord]:
        statuses = tuple(expect) if expect is not None else None

        def op(conn: sqlite3.Connection) -> list[InstanceRecord]:
            done: list[InstanceRecord] = []
            for chunk in chunks(list(pks), 500):
                sql = q.TERMINATE.format(marks=marks(len(chunk)))
                params: tuple[Any, ...] = (now, now, now, *chunk)
                if statuses is not None:
                    sql += f" AND status IN ({marks(len(statuses))})"
                    params += statuses
                rows = conn.execute(sql + " RETURNING " + q.INSTANCE_COLS, params).fetchall()
                for row in rows:
                    instance = instance_from_row(row)
                    conn.execute(q.ADD_TERMINATION_STEP, (instance.pk, instance.pk, now))
                    done.append(instance)
            return done

        return await self._write(op)

    async def resume(self, pk: int, *, now: int) -> InstanceRecord | None:
        def op(conn: sqlite3.Connection) -> InstanceRecord | None:
            row = conn.execute(q.INSTANCE_BY_PK, (pk,)).fetchone()
            if row is None or row[4] != "paused":
                return None
            instance = instance_from_row(row)
            shift = max(0, now - (instance.paused_on or now))
            conn.execute(q.SHIFT_STEP_TIMERS, (shift, pk))
            resumed = conn.execute(q.RESUME, (now, pk)).fetchone()
            return instance_from_row(resumed)

        return await self._write(op)

    async def restart(self, pk: int, *, from_seq: int | None, now: int) -> InstanceRecord | None:
        def op(conn: sqlite3.Connection) -> InstanceRecord | None:
            if from_seq is None:
                conn.execute(q.DELETE_ALL_EVENTS, (pk,))
                conn.execute(q.DELETE_ALL_STEPS, (pk,))
            else:
                conn.execute(q.DELETE_EVENTS_OF_WIPED, (pk, pk, from_seq))
                conn.execute(q.DELETE_STEPS_FROM, (pk, from_seq))
            row = conn.execute(q.RESTART, (now, pk)).fetchone()
            return None if row is None else instance_from_row(row)

        return await self._write(op)

    async def delete_instances(self, pks: Sequence[int]) -> set[int]:
        def op(conn: sqlite3.Connection) -> set[int]:
            deleted: set[int] = set()
            for chunk in chunks(list(pks), 500):
                sql = q.DELETE_INSTANCES.format(marks=marks(len(chunk)))
                deleted.update(pk for (pk,) in conn.execute(sql, chunk))
            return deleted

        return await self._write(op)

    async def select_instance_pks(
        self, workflow_id: str, *, statuses: Collection[str], limit: int, created_by: int
    ) -> list[int]:
        sql = q.SELECT_PKS_BY_STATUS.format(marks=marks(len(statuses)))
        params = (workflow_id, *statuses, created_by, limit)
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [r[0] for r in rows]

    async def delete_expired(self, now: int, *, limit: int) -> int:
        return await self._write(lambda c: int(c.execute(q.DELETE_EXPIRED, (now, limit)).rowcount))

    # -- schedules: firing -----------------------------------------------------------------
    async def fire_schedule(
        self, schedule: ScheduleRecord, *, next_fire_at: int, instance: InstanceRecord, now: int
    ) -> InstanceRecord | None:
        def op(conn: sqlite3.Connection) -> InstanceRecord | None:
            advanced = conn.execute(
                q.ADVANCE_SCHEDULE,
                (next_fire_at, schedule.workflow_id, schedule.cron, schedule.next_fire_at),
            ).rowcount
            if not advanced:  # another engine fired this slot, or the schedule changed
                return None
            row = conn.execute(q.INSERT_INSTANCE, _instance_values(instance)).fetchone()
            if row is None:
                return None
            conn.execute(q.TOUCH_TRIGGERED, (now, instance.workflow_id))
            instance.pk = row[0]
            return instance

        return await self._write(op)

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
def _probe_write(conn: sqlite3.Connection) -> None:
    """Rewrite the header's unused ``user_version`` as it is: a page written, nothing changed."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(f"PRAGMA user_version = {int(version)}")


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations not yet applied, in the writer's transaction (one process at a
    time); refuse, before any, a database that a newer Stepline migrated."""
    conn.execute(q.CREATE_MIGRATIONS_TABLE)
    migrations = load_migrations("sqlite")
    applied = dict(conn.execute(q.APPLIED_MIGRATIONS).fetchall())
    refuse_newer_schema(applied, migrations)
    for migration in migrations:
        if migration.number in applied:
            continue
        for statement in _split_sql(migration.sql):
            conn.execute(statement)
        conn.execute(
            q.RECORD_MIGRATION, (migration.number, migration.name, int(time.time() * 1000))
        )


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


def _split_sql(script: str) -> list[str]:
    """The script's statements, one each; a trigger's body, with its own semicolons, stays
    in its ``CREATE TRIGGER``."""
    statements, pending = [], ""
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        pending += line + "\n"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip().removesuffix(";"))
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements


def _fence(conn: sqlite3.Connection, pk: int, generation: int) -> None:
    row = conn.execute(q.GENERATION_OF, (pk,)).fetchone()
    if row is None or row[0] != generation:
        raise StaleRunError(f"instance {pk} moved on from generation {generation}")


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


def _hand_to_wait(conn: sqlite3.Connection, pk: int, event_type: str, now: int) -> None:
    """Give the oldest unconsumed event of ``event_type`` to the first wait for it, as the
    runner's ``consume_event`` would when its replay reached that wait."""
    (key,) = conn.execute(q.FIRST_WAIT_FOR, (pk, event_type, now)).fetchone()
    event = event_from_row(conn.execute(q.OLDEST_EVENT, (pk, event_type, now)).fetchone())
    conn.execute(q.CONSUME_EVENT, (key, event.id))
    conn.execute(q.COMPLETE_WAIT, (now, event.payload, event.created_on, pk, key))


def _copy_step(step: StepRecord) -> StepRecord:
    return step_from_row(step_to_row(step))


# The many-row forms of the fenced writes; a padding row names instance -1, which never exists.
# Its other values are 0, not None: binding None costs Python's sqlite3 ten times as much
# (it looks for an adapter first), and the writer holds the GIL while it binds.
_STEPS_MANY = ManyRows(q.UPSERT_STEPS_FENCED, 18, (0,) * 16 + (-1, -1))
_FINISH_MANY = ManyRows(q.FINISH_MANY, 10, (0,) * 8 + (-1, -1))
_INSERT_ROWS = 200
_INSTANCE_VALUES = 16


def _insert_part(
    conn: sqlite3.Connection, part: Sequence[InstanceRecord], params: list[Any]
) -> dict[str, int]:
    """Insert one multi-row statement's instances; returns the pk of each id inserted.

    Without ``RETURNING`` the insert is one step of the statement, not one per row (each of
    which gives up the GIL and takes it back). A new row's pk is one more than the largest
    in the table, so when every row went in and the last one got ``before + n``, the rows
    got ``before + 1 … before + n`` in order; otherwise (an id already there) they are
    looked up."""
    before = conn.execute(q.MAX_INSTANCE_PK).fetchone()[0] or 0
    cursor = conn.execute(_insert_instances_sql(len(part)), params)
    if cursor.rowcount == len(part) and cursor.lastrowid == before + len(part):
        return {record.id: before + 1 + index for index, record in enumerate(part)}
    return {instance_id: pk for pk, instance_id in conn.execute(q.INSTANCES_AFTER, (before,))}


@functools.lru_cache(maxsize=16)
def _insert_instances_sql(rows: int) -> str:
    return q.INSERT_INSTANCES.format(rows=value_rows(_INSTANCE_VALUES, rows))


_NULL = q.NULL_MARK


def _fenced_step_params(step: StepRecord, pk: int, generation: int) -> tuple[Any, ...]:
    """``UPSERT_STEP_FENCED``'s parameters: the step's columns, NULLs as :data:`_NULL`, then
    the fence."""
    return (*step_to_row(step, _NULL), pk, generation)


def _instance_values(r: InstanceRecord) -> tuple[Any, ...]:
    return (
        r.workflow_id,
        r.id,
        r.version_id,
        r.status,
        r.params,
        r.created_on,
        r.modified_on,
        r.trigger_source,
        r.success_retention_ms,
        r.error_retention_ms,
        r.schedule_cron,
        r.scheduled_time,
        r.started_on,
        r.generation,
        r.lease_owner,
        r.lease_expires,
    )


def _filter_sql(workflow_id: str, where: InstanceFilter) -> tuple[list[str], list[Any]]:
    clauses = ["workflow_id = ?"]
    params: list[Any] = [workflow_id]
    if where.status is not None:
        clauses.append("status = ?")
        params.append(where.status)
    if where.created_from is not None:
        clauses.append("created_on >= ?")
        params.append(where.created_from)
    if where.created_to is not None:
        clauses.append("created_on <= ?")
        params.append(where.created_to)
    if where.live_at is not None:
        clauses.append("(expires_on IS NULL OR expires_on > ?)")
        params.append(where.live_at)
    return clauses, params
