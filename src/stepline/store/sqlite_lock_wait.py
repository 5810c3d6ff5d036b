"""How the writer of a SQLite file waits for another process's write lock.

SQLite lets one connection write at a time. Several processes may write one file: its engine
and an API served with ``--no-engine``, say. One that finds the file locked waits in SQLite's
busy handler, which sleeps 1, 2, 5, 10 and then up to 100 ms between tries. Against an engine
that commits back to back, with a moment between two commits, a process waiting like that
catches the lock only now and then: its writes took up to a second, while the engine's went on.
So the writer's connection has no busy handler: a statement turned away by the lock, outside
a transaction (it wrote nothing, so trying it again is safe), is tried again every 0.1 ms for
the first second, then every millisecond, for as long as SQLite's timeout would have waited.

On the event loop's thread the writer must not wait at all (``wait_for_lock`` off): there a
locked file raises :class:`LockHeld` at once, and the writes go to the writer's thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LockHeld", "LockWaitingConnection"]

_FAST_S = 0.0001
_SLOW_S = 0.001
_FAST_FOR_S = 1.0
_TIMEOUT_S = 10.0
"""As long as the busy timeout of Stepline's other connections."""


class LockHeld(sqlite3.OperationalError):
    """Another connection holds the write lock, and this one was told not to wait."""


class LockWaitingConnection(sqlite3.Connection):
    """A connection that waits for another's write lock by trying again (see the module)."""

    wait_for_lock = True

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return self._tried(lambda: sqlite3.Connection.execute(self, sql, parameters))

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        rows = parameters if isinstance(parameters, list) else list(parameters)
        return self._tried(lambda: sqlite3.Connection.executemany(self, sql, rows))

    def _tried(self, statement: Callable[[], sqlite3.Cursor]) -> sqlite3.Cursor:
        try:
            return statement()
        except sqlite3.OperationalError as error:
            if not _locked_out(self, error):
                raise
            if not self.wait_for_lock:
                raise LockHeld(str(error)) from None
        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            time.sleep(_FAST_S if waited < _FAST_FOR_S else _SLOW_S)
            try:
                return statement()
            except sqlite3.OperationalError as error:
                if not _locked_out(self, error) or waited >= _TIMEOUT_S:
                    raise


def _locked_out(conn: sqlite3.Connection, error: sqlite3.OperationalError) -> bool:
    """The statement found the file locked by another connection before it did anything."""
    code = getattr(error, "sqlite_errorcode", None)  # the extended code: BUSY and its kinds
    return not conn.in_transaction and code is not None and code & 0xFF == sqlite3.SQLITE_BUSY
