"""SQLite's errors that mean the file cannot be used now, as Stepline's :class:`StoreUnavailable`.

A full disk, an I/O error, a lock held past the timeout, a file turned read-only: none is the
fault of the write that met it, and each may pass. The engine treats an unavailable store as
it does a lost PostgreSQL server: a run whose step result cannot be recorded is abandoned as it
stands (past any ``try`` in the workflow, which would otherwise go on as if the step had been
recorded) and replayed once its lease lapses; the API answers 503. Errors of the statement
itself (a constraint, a mistake in SQL) stay as they are.
"""

from __future__ import annotations

import sqlite3

from stepline.errors import StoreUnavailable

__all__ = ["as_store_error"]

_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)
"""Primary result codes (the low byte of an extended one) of a file that cannot be used now."""


def as_store_error(error: BaseException) -> BaseException:
    """``error`` as :class:`StoreUnavailable` when SQLite says the file cannot be used now;
    any other error as it is."""
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(error, sqlite3.Error) or code is None or code & 0xFF not in _UNAVAILABLE:
        return error
    unavailable = StoreUnavailable(f"the SQLite database cannot be used now: {error}")
    unavailable.__cause__ = error
    return unavailable
