"""The PostgreSQL store's connections: a pool, outage detection and reconnection.

Every operation runs through :meth:`Database.run`, which maps a lost or refused connection to
``StoreUnavailable`` (503) and retries deadlocks. The first connection error marks the
database down and starts a watcher that probes it with backoff; while it is down, operations
fail at once instead of queueing up behind connect timeouts (``run(..., wait_s=...)`` waits
for it to come back instead, for writes that are safe to repeat). When a probe succeeds the
pool's old connections are retired and ``on_reconnect`` is called.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import asyncpg

from stepline.errors import NotStarted, StoreUnavailable
from stepline.store.postgres_access import (
    may_quote_password,
    no_connect_right,
    refused_setting,
    unreadable_url,
)
from stepline.store.postgres_keepalive import keep_alive

__all__ = ["Database", "is_connection_error"]

T = TypeVar("T")
log = logging.getLogger("stepline.store.postgres")

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, timeouts (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01: the server is stopping
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    asyncpg.InternalClientError,  # a connection left mid-operation by a drop
    asyncpg.InvalidAuthorizationSpecificationError,  # class 28: no such role, a bad password
    asyncpg.InvalidCatalogNameError,  # 3D000: no such database (a wrong URL, or dropped)
)
_REFUSING_CONNECTIONS = asyncpg.ObjectNotInPrerequisiteStateError
"""55000 itself (not its subclasses, such as 55P03 lock_not_available): what a connection gets
from a database that takes none (``ALTER DATABASE ... ALLOW_CONNECTIONS false``)."""
_DEADLOCK_RETRIES = 5
_MAX_BACKOFF_S = 2.0


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a pooled connection needs on its way back to the pool beyond asyncpg's own rollback
    of an open transaction: nothing. asyncpg's default also sends ``pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL``, one more round trip per operation, for session state that
    pooled connections never take: advisory locks are transaction-scoped, cursors live in
    transactions, LISTEN and the migration lock use connections of their own, and nothing is
    SET but the keepalive settings that each new connection gets for its whole life
    (:mod:`stepline.store.postgres_keepalive`)."""


def is_connection_error(exc: BaseException) -> bool:
    """True for errors that say the database cannot be reached (not that a query is wrong)."""
    return isinstance(exc, _CONNECTION_ERRORS) or type(exc) is _REFUSING_CONNECTIONS


class Database:
    """An asyncpg pool that knows whether the database is reachable."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 60.0,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.on_reconnect = on_reconnect
        self._pool: asyncpg.Pool | None = None
        self._up = asyncio.Event()
        self._ever_opened = False
        """Once ``open`` has begun: before, a call is a Stepline used unstarted (not a
        database down, for which a pool closed by a stop is taken, as in the past)."""
        self._watcher: asyncio.Task[None] | None = None
        self._down_since = 0.0
        self._closing = False

    @property
    def available(self) -> bool:
        """False from the first connection error until a probe reaches the database again."""
        return self._up.is_set()

    async def connect(self, *, timed: bool = True) -> asyncpg.Connection:
        """A connection of its own (migrations, LISTEN), outside the pool. ``timed=False``:
        with no command timeout, for migrations, whose wait for the lock and whose index
        builds may take longer than any query should."""
        try:
            return await self._connect(command_timeout=self.command_timeout if timed else None)
        except Exception as exc:
            self._not_connected(exc)

    async def _connect(self, *, command_timeout: float | None = None) -> asyncpg.Connection:
        """A new connection outside the pool, with keepalive on as in the pool's."""
        conn = await asyncpg.connect(
            self.dsn, timeout=self.connect_timeout, command_timeout=command_timeout
        )
        try:
            await keep_alive(conn, timeout=self.connect_timeout)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def open(self) -> None:
        self._ever_opened = True
        self._closing = False
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                init=keep_alive,
                reset=_keep_session,
            )
        except Exception as exc:
            self._not_connected(exc)
        self._up.set()

    def _not_connected(self, exc: Exception) -> NoReturn:
        """Raise what a failed connection says: a URL asyncpg could not read is the URL's
        fault (asyncpg's ClientConfigurationError is also an InterfaceError, which a dropped
        connection raises), and not from asyncpg's words when they may quote a password, as is
        a setting of its query refused at login; a privilege refused is the right to connect;
        a database that cannot be reached is StoreUnavailable; anything else as it is."""
        quoted = None if may_quote_password(self.dsn) else exc
        if isinstance(exc, ValueError):
            raise unreadable_url(self.dsn, exc) from quoted
        if isinstance(exc, asyncpg.UndefinedObjectError | asyncpg.InvalidParameterValueError):
            raise refused_setting(self.dsn, exc) from quoted
        if isinstance(exc, asyncpg.InsufficientPrivilegeError):  # at login: no CONNECT
            raise no_connect_right(self.dsn, exc) from exc
        if is_connection_error(exc):
            raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}") from exc
        raise exc

    async def close(self) -> None:
        self._closing = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 10)
            except Exception:  # a pool that cannot close politely is closed by force
                self._pool.terminate()
            self._pool = None
        self._up.clear()

    async def run(
        self, operation: Callable[[asyncpg.Connection], Awaitable[T]], *, wait_s: float = 0.0
    ) -> T:
        """Run ``operation`` on a pooled connection.

        Raises ``StoreUnavailable`` when the database cannot be reached; with ``wait_s``, first
        waits that long for it to come back and tries again (only for operations that are
        safe to repeat after an unknown outcome).
        """
        deadline = time.monotonic() + wait_s
        deadlocks = 0
        if not self._ever_opened:
            raise NotStarted()
        while True:
            if not self._up.is_set():
                await self._wait_up(deadline)
            pool = self._pool
            if pool is None:
                raise StoreUnavailable("the PostgreSQL store is closed")
            try:
                conn = await pool.acquire()
                try:
                    return await operation(conn)
                finally:
                    await self._release(pool, conn)
            except asyncpg.TransactionRollbackError as exc:
                # A deadlock or serialisation failure rolled everything back: safe to redo.
                # Said aloud, as PostgreSQL takes a second to find a deadlock.
                deadlocks += 1
                log.warning("PostgreSQL rolled a transaction back (%s); trying again", exc)
                if deadlocks >= _DEADLOCK_RETRIES:
                    raise
                await asyncio.sleep(0.005 * deadlocks)
            except Exception as exc:
                if not is_connection_error(exc) or self._closing:
                    raise
                self.lost(exc)
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(f"PostgreSQL is unreachable: {exc}") from exc

    async def _release(self, pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
        """Give ``conn`` back. A connection that breaks now is the pool's to replace: the
        operation's outcome (committed or not) is already known and must not be lost."""
        try:
            await pool.release(conn)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            log.debug("dropped a broken connection on release: %s", exc)

    async def wait_available(self) -> None:
        """Until the database is reachable (at once when it is)."""
        await self._up.wait()

    async def _wait_up(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StoreUnavailable("PostgreSQL is unreachable; retry later")
        try:
            await asyncio.wait_for(self._up.wait(), remaining)
        except TimeoutError:
            raise StoreUnavailable("PostgreSQL is still unreachable; retry later") from None

    async def ping(self, timeout: float = 2.0) -> bool:
        """Whether a trivial query answers within ``timeout`` seconds (never raises)."""
        pool = self._pool
        if pool is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                async with pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")
        except Exception as exc:
            if is_connection_error(exc) and not self._closing:
                self.lost(exc)
            return False
        return True

    def lost(self, exc: BaseException) -> None:
        """Note a connection error: mark the database down and start probing it."""
        if self._closing or not self._up.is_set():
            return
        self._up.clear()
        self._down_since = time.monotonic()
        log.warning("PostgreSQL unreachable (%s: %s); reconnecting", type(exc).__name__, exc)
        self._watcher = asyncio.create_task(self._watch(), name="stepline-postgres-watch")

    async def _watch(self) -> None:
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            try:
                conn = await self._connect()
                try:
                    await conn.fetchval("SELECT 1", timeout=self.connect_timeout)
                finally:
                    await conn.close(timeout=self.connect_timeout)
            except Exception as exc:
                log.debug("PostgreSQL still unreachable: %s", exc)
                delay = min(delay * 2, _MAX_BACKOFF_S)
                continue
            break
        if self._pool is not None:
            await self._pool.expire_connections()  # every pooled one predates the outage
        self._up.set()
        log.warning("PostgreSQL reachable again after %.1f s", time.monotonic() - self._down_since)
        if self.on_reconnect is not None:
            self.on_reconnect()
