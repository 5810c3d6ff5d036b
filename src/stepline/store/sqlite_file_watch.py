"""Notice that the SQLite database's file, or its ``-wal``, was deleted or replaced under us.

SQLite keeps writing to the files it opened. Once one of them is unlinked (``rm``, a restore
that renames a copy over it), every later commit goes to a file nobody can open again: the
API would answer 200 for instances that vanish at the next start, and a second engine
started on the path would find a fresh file and run beside this one. So before each commit
the writer asks :meth:`FileWatch.problem`, two ``stat`` calls, and from the first change on
refuses every write (the store is unavailable, ``/healthz`` says so) until the process is
restarted on whatever the path holds then.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REFUSAL", "FileWatch"]

REFUSAL = (
    "its file was deleted or replaced while Stepline had it open, and no write is accepted "
    "from now on (the server's log says more)"
)
"""What a refused write says (to API clients too: no path of the server's)."""

_Identity = tuple[int, int]
"""A file's device and inode numbers."""


def _identity(path: Path) -> _Identity | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


class FileWatch:
    """The files of the database at ``database`` as this process opened them."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self._paths: tuple[Path, Path] | None = None
        self._opened: _Identity | None = None
        self._wal: _Identity | None = None

    def remember(self) -> None:
        """Note the files the writer's connection has just opened (symbolic links followed,
        as SQLite follows them)."""
        real = Path(os.path.realpath(self.database))
        self._paths = (real, real.with_name(real.name + "-wal"))
        self._opened = _identity(real)
        self._wal = _identity(self._paths[1])

    def problem(self) -> str | None:
        """Why the next commit would be lost, for the log, or ``None`` while the paths still
        name the files this process writes to."""
        if self._paths is None or self._opened is None:
            return None
        path, wal_path = self._paths
        if _identity(path) != self._opened:
            return self._describe(path)
        wal = _identity(wal_path)
        if self._wal is None:
            self._wal = wal  # SQLite creates it with the first transaction
        elif wal != self._wal:
            return self._describe(wal_path)
        return None

    def _describe(self, path: Path) -> str:
        copy = _open_copy(path)
        kept = (
            f"; what this process wrote is still readable at {copy} until it exits"
            if copy is not None
            else ""
        )
        return (
            f"the SQLite file {path} was deleted or replaced while Stepline had it open: "
            "no write is accepted from now on, as it would be lost. Restart Stepline on the "
            f"database you mean to keep{kept}"
        )


def _open_copy(path: Path) -> str | None:
    """``/proc/<pid>/fd/<n>`` for the unlinked file this process still holds, where the
    system shows it (Linux); an operator can copy it out before the process ends."""
    folder = Path("/proc/self/fd")
    wanted = f"{path} (deleted)"
    try:
        entries = list(folder.iterdir())
    except OSError:
        return None
    for entry in entries:
        try:
            if os.readlink(entry) == wanted:
                return f"/proc/{os.getpid()}/fd/{entry.name}"
        except OSError:
            continue
    return None
