"""Notice that the SQLite database's files were deleted or replaced under us.

SQLite keeps writing to the files it opened. Once one of them is unlinked (``rm``, a restore
that renames a copy over it), every later commit goes to a file nobody can open again: the
API would answer 200 for instances that vanish at the next start, and a second engine
started on the path would find a fresh file and run beside this one. So before and after each
commit the writer asks :meth:`FileWatch.problem`, three ``stat`` calls, and from the first
change on refuses every write (the store is unavailable, ``/healthz`` says so), runs no
checkpoint and closes no connection (either would copy pages into whatever file the path
names now, by a WAL index that may be stale) until the process is restarted on whatever
the path holds then.
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
    """The files of the database at ``database`` as this process opened them: the file, and
    its ``-wal`` and ``-shm`` (another process that finds either missing makes a new one and
    writes without this one's WAL index and locks, which corrupts the file for everyone).
    SQLite itself deletes those two only at the last connection's close, which cannot come
    while this process holds its own."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self._path: Path | None = None
        self._opened: _Identity | None = None
        self._beside: dict[Path, _Identity | None] = {}

    def remember(self) -> None:
        """Note the files the writer's connection has just opened (symbolic links followed,
        as SQLite follows them)."""
        real = Path(os.path.realpath(self.database))
        self._path = real
        self._opened = _identity(real)
        beside = (real.with_name(real.name + suffix) for suffix in ("-wal", "-shm"))
        self._beside = {path: _identity(path) for path in beside}

    def problem(self) -> str | None:
        """Why the next commit would be lost, for the log, or ``None`` while the paths still
        name the files this process writes to."""
        if self._path is None or self._opened is None:
            return None
        if _identity(self._path) != self._opened:
            return self._describe(self._path)
        for path, known in self._beside.items():
            found = _identity(path)
            if known is None:
                self._beside[path] = found  # SQLite creates it with the first transaction
            elif found != known:
                return self._describe(path)
        return None

    def _describe(self, path: Path) -> str:
        assert self._path is not None
        copies = _open_copies([self._path, self._path.with_name(self._path.name + "-wal")])
        kept = ""
        if copies:
            kept = (
                "; what this process wrote is still readable until it exits: copy "
                + " and ".join(f"{copy} to {name}" for name, copy in copies)
                + " side by side before opening the copy"
            )
        return (
            f"the SQLite file {path} was deleted or replaced while Stepline had it open: "
            "no write is accepted from now on, as it would be lost. Restart Stepline on the "
            f"database you mean to keep{kept}"
        )


def _open_copies(paths: list[Path]) -> list[tuple[str, str]]:
    """``(name, /proc/<pid>/fd/<n>)`` for each of ``paths`` that is unlinked and that this
    process still holds, where the system shows it (Linux): an operator can copy them out
    (the database and its ``-wal``, which holds its latest commits) before the process ends."""
    wanted = {f"{path} (deleted)": path.name for path in paths}
    found: dict[str, str] = {}
    try:
        entries = list(Path("/proc/self/fd").iterdir())
    except OSError:
        return []
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target in wanted and wanted[target] not in found:
            found[wanted[target]] = f"/proc/{os.getpid()}/fd/{entry.name}"
    return [(path.name, found[path.name]) for path in paths if path.name in found]
