"""One engine per SQLite file, held with an advisory lock on a file beside the database.

An engine alone on its SQLite file treats every instance it finds running as its own, left
by a crash, and takes it back when it starts. A second engine on the same file (a second
``stepline serve``, a ``stepline worker`` left on the default database, an application
server started with two worker processes) would take the first engine's running instances
from under it, and their steps would run twice. So an engine holds an exclusive ``flock`` on
``<database>-engine.lock`` while it runs, and a second one is refused with the holder's name.
The system drops the lock when the process ends, however it ends: a crash never leaves the
file locked, and the next engine to start recovers what the crash left running.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from stepline.errors import EngineAlreadyRunning

__all__ = ["EngineLock", "beside_database"]


def beside_database(database: Path, suffix: str) -> Path:
    """A file of Stepline's next to the database's real file (symbolic links followed, as
    SQLite follows them for its ``-wal``), the same for every process however it names it."""
    real = Path(os.path.realpath(database))
    return real.with_name(real.name + suffix)


class EngineLock:
    """The lock for the engine of the SQLite database at ``database``."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = beside_database(database, "-engine.lock")
        self._fd: int | None = None

    def acquire(self, owner: str) -> None:
        """Hold the lock for engine ``owner``, or raise :class:`EngineAlreadyRunning`."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EngineAlreadyRunning(
                f"another Stepline engine ({holder}) is running on {self.database.absolute()}: "
                "a SQLite database has one engine. Stop that one first, or use PostgreSQL to "
                "run several engines."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()}, engine {owner}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let another engine start on the file (closing the descriptor drops the lock)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
