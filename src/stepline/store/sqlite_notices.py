"""Notices to the engine of a SQLite file from the other processes using it.

A SQLite file has one engine (``sqlite_engine_lock``), but other processes may use it too: an
API served with ``--no-engine``, a script with an engine-less ``Stepline``. The engine must
learn at once of what they change (a create, an event, a pause, a terminate), as engines on
PostgreSQL learn it through ``NOTIFY``. So the engine's process listens on a Unix datagram
socket whose address follows from the database's path, and the other processes send their
notices there. A notice that finds no engine is dropped: an engine looks at everything
runnable when it starts.

The socket lies beside the database (``<database>-engine.sock``), so that reaching it takes
the same folder permissions as the database. Where that path is too long for a socket address
(about 100 bytes), it lies in a folder of the user's own in the temporary directory instead,
named by a hash of the database's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from stepline.store.port import Notice, notice_from_json, notice_to_json
from stepline.store.sqlite_engine_lock import beside_database

__all__ = ["NoticeInbox", "NoticeSender", "socket_path"]

log = logging.getLogger("stepline.store.sqlite")

_MAX_ADDRESS = 100
"""Bytes of a socket path that every system takes (Linux takes 107, macOS 103)."""
_MAX_NOTICE = 4096


def socket_path(database: Path) -> Path:
    """Where the engine of ``database`` listens, the same for every process using the file."""
    beside = beside_database(database, "-engine.sock")
    if len(os.fsencode(beside)) <= _MAX_ADDRESS:
        return beside
    digest = hashlib.sha256(os.fsencode(os.path.realpath(database))).hexdigest()[:32]
    return _private_folder() / f"{digest}.sock"


def _private_folder() -> Path:
    return Path(tempfile.gettempdir()) / f"stepline-{os.getuid()}"


def _prepare_private_folder(folder: Path) -> None:
    """Make ``folder`` this user's alone, or refuse one that someone else made."""
    folder.mkdir(mode=0o700, exist_ok=True)
    found = os.lstat(folder)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        raise PermissionError(f"{folder} is not a folder of this user's: remove it")
    os.chmod(folder, 0o700)


class NoticeInbox:
    """The engine's side: the socket, read on the event loop, while the engine holds the file
    (so no other process binds it; one left by a crashed engine is removed first)."""

    def __init__(self, path: Path, deliver: Callable[[Notice], None]) -> None:
        self.path = path
        self._deliver = deliver
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.path.parent == _private_folder():
            _prepare_private_folder(self.path.parent)
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(os.fspath(self.path))
            loop.add_reader(sock.fileno(), self._receive)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop = sock, loop

    def _receive(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(_MAX_NOTICE)
            except BlockingIOError:
                return
            try:
                notice = notice_from_json(data.decode())
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed notice: %r", data[:200])
                continue
            self._deliver(notice)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
        self.path.unlink(missing_ok=True)


class NoticeSender:
    """Another process's side: one unbound socket, a datagram for each notice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None

    def send(self, notice: Notice) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        try:
            self._sock.sendto(notice_to_json(notice).encode(), os.fspath(self.path))
        except (FileNotFoundError, ConnectionRefusedError):
            pass  # no engine is running: the next one to start looks at everything
        except OSError as exc:  # its queue is full, say
            log.warning(
                "could not tell the engine of %s (%s): it acts on the change at its next look "
                "for work",
                notice,
                exc,
            )

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
