"""SQLite's errors that mean the file cannot be used now, as Stepline's :class:`StoreUnavailable`.

A full disk, an I/O error, a lock held past the timeout, a file turned read-only: none is the
fault of the write that met it, and each may pass. The engine treats an unavailable store as
it does a lost PostgreSQL server: a run whose step result cannot be recorded is abandoned as it
stands (past any ``try`` in the workflow, which would otherwise go on as if the step had been
recorded) and replayed once its lease lapses; the API answers 503. Errors of the statement
itself (a constraint, a mistake in SQL) stay as they are.

Met while the store opens, at the start of a process, the same errors are said for the person
who started it (:func:`cannot_open`): which file, what SQLite found, and what to do.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from stepline.errors import StoreUnavailable
from stepline.store.sqlite_access import NEEDS

__all__ = ["as_store_error", "cannot_open"]

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

_CHECK = "check that this process may read and write the file and its folder"
_WHAT_TO_DO = {
    sqlite3.SQLITE_NOTADB: "point Stepline at its own database file, or at a path with no file "
    "yet to start a new one",
    sqlite3.SQLITE_CORRUPT: "the file is damaged: restore it from a backup, or start a new "
    "database at another path",
    sqlite3.SQLITE_FULL: "free some space on its disk, then start again",
    sqlite3.SQLITE_BUSY: "another process holds it locked: start again once that one lets go",
    sqlite3.SQLITE_LOCKED: "another process holds it locked: start again once that one lets go",
    sqlite3.SQLITE_READONLY: NEEDS,
    sqlite3.SQLITE_IOERR: f"the disk or file system failed to read or write it: {_CHECK}, "
    "and the system's log for disk errors",
}


def as_store_error(error: BaseException) -> BaseException:
    """``error`` as :class:`StoreUnavailable` when SQLite says the file cannot be used now;
    any other error as it is."""
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(error, sqlite3.Error) or code is None or code & 0xFF not in _UNAVAILABLE:
        return error
    unavailable = StoreUnavailable(f"the SQLite database cannot be used now: {error}")
    unavailable.__cause__ = error
    return unavailable


def cannot_open(database: Path, error: BaseException) -> BaseException:
    """``error``, met while opening ``database``, as :class:`StoreUnavailable` saying which
    file, what SQLite found and what to do, when it is an error of the file (as for
    :func:`as_store_error`); any other error as it is."""
    cause = error.__cause__ if isinstance(error, StoreUnavailable) else error
    if not isinstance(cause, sqlite3.Error) or as_store_error(cause) is cause:
        return error
    what_to_do = _WHAT_TO_DO.get(cause.sqlite_errorcode & 0xFF, _CHECK)
    where = database.absolute()
    said = StoreUnavailable(f"cannot open the SQLite database {where}: {cause}; {what_to_do}")
    said.__cause__ = cause
    return said
