"""One engine per SQLite file, held with advisory locks on the database file and beside it.

An engine alone on its SQLite file treats every instance it finds running as its own, left
by a crash, and takes it back when it starts. A second engine on the same file (a second
``stepline serve``, a ``stepline worker`` left on the default database, an application
server started with two worker processes) would take the first engine's running instances
from under it, and their steps would run twice. So an engine holds an exclusive ``flock`` on
the database file itself, which nobody deletes to make a refusal go away, and on
``<database>-engine.lock``, which names the holder for the refusal and is the lock earlier
versions of Stepline take. A second engine is refused with the holder's name. The system
drops both locks when the process ends, however it ends: a crash never leaves the file
locked, and the next engine to start recovers what the crash left running.

The database file's descriptor is never closed while this process may have SQLite
connections to the file: closing any descriptor of a file drops every POSIX lock the process
holds on it, SQLite's included, and another process could then take the file from under
those connections (delete the ``-wal`` they write to, say). So there is one descriptor per
file and process, shared by its stores, closed when the last of them has closed its
connections. ``flock`` locks are independent of SQLite's POSIX locks on Linux's local file
systems; elsewhere (a network file system, where Linux makes a ``flock`` a POSIX lock on the
whole file, or another system) they may clash with SQLite's own, so there the lock file
alone holds the engine.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
from pathlib import Path

from stepline.errors import EngineAlreadyRunning

__all__ = ["EngineLock", "beside_database"]


def beside_database(database: Path, suffix: str) -> Path:
    """A file of Stepline's next to the database's real file (symbolic links followed, as
    SQLite follows them for its ``-wal``), the same for every process however it names it."""
    real = Path(os.path.realpath(database))
    return real.with_name(real.name + suffix)


class _SharedDescriptors:
    """This process's descriptors of database files, by file, with the stores using each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[int, int], tuple[int, int]] = {}
        """(device, inode) -> (descriptor, stores using it)."""
        self.engines: set[tuple[int, int]] = set()
        """The files an engine of this process holds (one ``flock`` serves the process)."""

    def take(self, path: Path) -> tuple[tuple[int, int], int]:
        """The descriptor of ``path``, made if it does not exist yet (an empty file is a new
        database to SQLite): never a second one of a file this process already holds, as
        closing it again would drop the locks."""
        with self._lock:
            try:
                found = os.stat(path)
            except FileNotFoundError:
                fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
                found = os.fstat(fd)
            else:
                key = (found.st_dev, found.st_ino)
                if key in self._open:
                    fd, users = self._open[key]
                    self._open[key] = (fd, users + 1)
                    return key, fd
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                found = os.fstat(fd)
            key = (found.st_dev, found.st_ino)
            self._open[key] = (fd, 1)
            return key, fd

    def give_back(self, key: tuple[int, int]) -> None:
        with self._lock:
            fd, users = self._open[key]
            if users > 1:
                self._open[key] = (fd, users - 1)
                return
            del self._open[key]
            os.close(fd)


_DESCRIPTORS = _SharedDescriptors()

_NETWORK_FILE_SYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "gpfs"}
)


def _lockable(path: Path) -> bool:
    """Whether a ``flock`` on the database file itself leaves SQLite's locks alone: on Linux,
    on a local file system (the one ``/proc/self/mounts`` gives for the deepest mount point
    above ``path``)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return False
    best, kind = "", ""
    target = str(path)
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return not (kind in _NETWORK_FILE_SYSTEMS or kind.startswith("fuse"))


class EngineLock:
    """The lock for the engine of the SQLite database at ``database``."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = beside_database(database, "-engine.lock")
        self._fd: int | None = None
        """The lock file's descriptor, while the lock is held."""
        self._database: tuple[tuple[int, int], int] | None = None
        """The database file's (key, descriptor) from :meth:`attach` to :meth:`detach`."""
        self._holds_database = False

    def attach(self) -> None:
        """Before the store's connections open: share this process's descriptor of the
        database file, for :meth:`acquire` (none where its ``flock`` could clash with
        SQLite's locks, :func:`_lockable`)."""
        if self._database is None:
            real = Path(os.path.realpath(self.database))
            if _lockable(real):
                self._database = _DESCRIPTORS.take(real)

    def detach(self) -> None:
        """After the store closed its connections: let go of the lock and the descriptor."""
        self.release()
        held, self._database = self._database, None
        if held is not None:
            _DESCRIPTORS.give_back(held[0])

    def acquire(self, owner: str) -> None:
        """Hold the lock for engine ``owner``, or raise :class:`EngineAlreadyRunning`."""
        if self._fd is not None:
            return
        self.attach()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if self._database is not None:
                key, database_fd = self._database
                if key in _DESCRIPTORS.engines:
                    raise BlockingIOError  # another store of this process runs its engine
                fcntl.flock(database_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)  # drops its lock, if it was taken
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
        if self._database is not None:
            self._holds_database = True
            _DESCRIPTORS.engines.add(self._database[0])

    def release(self) -> None:
        """Let another engine start on the file (the database file's descriptor stays open
        until :meth:`detach`)."""
        if self._holds_database and self._database is not None:
            key, database_fd = self._database
            _DESCRIPTORS.engines.discard(key)
            fcntl.flock(database_fd, fcntl.LOCK_UN)
        self._holds_database = False
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
