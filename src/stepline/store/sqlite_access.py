"""Whether this process may write a SQLite database where it lies, asked before it opens it.

SQLite needs more than the file: it creates ``-wal`` and ``-shm`` beside it, and Stepline
its engine lock and notice socket. Without write access, SQLite says only "unable to open
database file" or "attempt to write a readonly database", and the lock and the socket fail
with a traceback; a file that is writable in a folder that is not even opens, and fails at
its first write. So the store looks first, and names the path it may not write and what it
needs, in one sentence.

This is a check up front, not a guarantee: permissions can change a moment later, and
the errors met then say what they can (:func:`not_writable` for the engine's own files).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from stepline.errors import ConfigError, DatabaseNotWritable

__all__ = ["NEEDS", "check_writable", "is_refusal", "not_writable"]

NEEDS = (
    "Stepline needs write access to the database and its folder "
    "(for -wal, -shm, the engine lock and the notice socket)"
)
_REFUSALS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_COMPANIONS = ("-wal", "-shm")
"""SQLite's files beside the database that every process opens for writing when they exist.
(The engine lock is the engine's alone: a process without one, an API run as another user
of the database's group, never opens it; :meth:`SqliteStore.hold_engine` says when the
engine cannot.)"""


def check_writable(database: Path) -> None:
    """Make the database's folder if it is missing, then check that this process can write
    it and every file of the database that exists; :class:`DatabaseNotWritable` naming the
    first that it cannot write."""
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        missing = Path(error.filename or database.parent)
        if error.errno in _REFUSALS:
            raise not_writable(missing, error, verb="create") from None
        raise ConfigError(
            f"cannot create {missing} for the database: {_in_the_way(missing, error)}"
        ) from None
    # SQLite follows a symbolic link and puts its -wal beside the real file; so does Stepline.
    real = Path(os.path.realpath(database))
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise not_writable(real.parent)
    for path in (real, *(real.with_name(real.name + suffix) for suffix in _COMPANIONS)):
        if _refused(path):
            raise not_writable(path)


def _refused(path: Path) -> bool:
    """Exists and may not be read and written: the same file before and after ``access``
    said no (another process's last close deletes -wal and -shm, and the next open makes
    them again, between any two looks)."""
    try:
        before = os.stat(path)
        if os.access(path, os.R_OK | os.W_OK):
            return False
        after = os.stat(path)
    except FileNotFoundError:
        return False
    return (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)


def not_writable(
    path: Path, error: OSError | None = None, *, verb: str = "write"
) -> DatabaseNotWritable:
    """``cannot write PATH: permission denied; Stepline needs ...``; ``error``, when there is
    one, says why (a read-only file system, say)."""
    return DatabaseNotWritable(f"cannot {verb} {path}: {_reason(path, error)}; {NEEDS}")


def is_refusal(error: OSError) -> bool:
    """Whether ``error`` is the system refusing a write to a path it names."""
    return error.errno in _REFUSALS and error.filename is not None


def _in_the_way(folder: Path, error: OSError) -> str:
    """Why ``folder`` could not be made when the system allowed it: a file on its path, most
    likely."""
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                return f"{place} is a file, not a folder"
            break
    return (error.strerror or str(error)).lower()


def _reason(path: Path, error: OSError | None) -> str:
    if error is not None and error.errno == errno.EROFS:
        return "read-only file system"
    if error is None:
        for place in (path, *path.parents):
            try:
                if os.statvfs(place).f_flag & os.ST_RDONLY:
                    return "read-only file system"
                break
            except OSError:
                continue
    return "permission denied"
