"""The SQLite store's connections, from opening the file to closing it.

A mixin of :class:`~stepline.store.sqlite.SqliteStore`, split out to keep each module about
one thing. Opening checks that the process may write where the file lies, locks the file for
the engine, starts the writer and applies the migrations. Reads run on two reader threads
(a lookup of one indexed row on the calling thread); writes go to the one writer
(:mod:`~stepline.store.sqlite_writer`). The store's other parts reach the database only
through :class:`Database`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from stepline.errors import NotStarted, StoreUnavailable
from stepline.store import sqlite_queries as q
from stepline.store.migrations import Migration, load_migrations, refuse_newer_schema
from stepline.store.port import Notice
from stepline.store.sqlite_access import check_writable, is_refusal, not_writable
from stepline.store.sqlite_engine_lock import EngineLock
from stepline.store.sqlite_errors import as_store_error, cannot_open
from stepline.store.sqlite_lock_wait import LockWaitingConnection
from stepline.store.sqlite_notices import NoticeInbox, NoticeSender, socket_path
from stepline.store.sqlite_writer import SqliteWriter, close_unless_lost

__all__ = ["NO_WAIT_MODES", "Database", "SqliteConnections"]

T = TypeVar("T")
NO_WAIT_MODES = ("NORMAL", "OFF")
"""In WAL mode a commit under these waits for no disk write, only checkpoints do."""


class Database(Protocol):
    """What the store's other parts use of its connections."""

    async def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T: ...

    async def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T: ...

    def _lookup(self, sql: str, params: tuple[Any, ...] = ()) -> Any: ...

    def _lookup_rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]: ...


class SqliteConnections:
    """The file's readers and writer, opened and closed."""

    # Set by the store's constructor.
    path: Path
    synchronous: str
    _writer: SqliteWriter
    _readers: ThreadPoolExecutor
    _local: threading.local
    _read_connections: list[sqlite3.Connection]
    _lock: threading.Lock
    _engine_lock: EngineLock
    _inbox: NoticeInbox | None
    _sender: NoticeSender
    _deliver: Callable[[Notice], None]
    _applied_at_open: list[Migration]
    _is_open: bool
    """Between ``open`` and ``close``: before, a reader would make a file with no tables."""

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
        if self.synchronous in NO_WAIT_MODES:
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the writer thread checkpoints
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if not self._is_open:
                raise NotStarted()
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
        self._is_open = True
        try:
            await self._open_writer()
        except BaseException:
            self._is_open = False
            self._engine_lock.detach()
            raise

    async def _open_writer(self) -> None:
        try:
            await asyncio.to_thread(self._writer.start)
            try:
                self._applied_at_open = await self._write(_migrate)
            except BaseException:  # a refused schema, say: leave no writer thread holding it
                await asyncio.to_thread(self._writer.stop)
                raise
        except (sqlite3.Error, StoreUnavailable) as error:  # not a database, say
            said = cannot_open(self.path, error)
            if said is error:
                raise
            raise said from error

    async def apply_migrations(self) -> list[Migration]:
        """Apply the migrations the file lacks, and return them (``stepline migrate``). SQLite
        applies them at open, in the writer's transaction, and nothing else at open needs a
        privilege that writing does not: this opens the store and closes it."""
        await self.open()
        await self.close()
        return self._applied_at_open

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
        self._is_open = False  # no reader is made again: the threads' pool is shut down
        self._local = threading.local()  # the calling thread's connection is closed too
        self._sender.close()
        self.release_engine()  # last: nothing of this process's is left to write
        self._engine_lock.detach()  # and no connection of this store's is open


# -- helpers run on the writer thread ------------------------------------------------------------
def _probe_write(conn: sqlite3.Connection) -> None:
    """Rewrite the header's unused ``user_version`` as it is: a page written, nothing changed."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(f"PRAGMA user_version = {int(version)}")


def _migrate(conn: sqlite3.Connection) -> list[Migration]:
    """Apply the migrations not yet applied, in the writer's transaction (one process at a
    time), and return them; refuse, before any, a database that a newer Stepline migrated."""
    conn.execute(q.CREATE_MIGRATIONS_TABLE)
    migrations = load_migrations("sqlite")
    applied = dict(conn.execute(q.APPLIED_MIGRATIONS).fetchall())
    refuse_newer_schema(applied, migrations)
    pending = [m for m in migrations if m.number not in applied]
    for migration in pending:
        for statement in _split_sql(migration.sql):
            conn.execute(statement)
        conn.execute(
            q.RECORD_MIGRATION, (migration.number, migration.name, int(time.time() * 1000))
        )
    return pending


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
