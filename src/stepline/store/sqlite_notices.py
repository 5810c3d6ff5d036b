"""Notices to the engine of a SQLite file from the other processes using it.

A SQLite file has one engine (``sqlite_engine_lock``), but other processes may use it too: an
API served with ``--no-engine``, a script with an engine-less ``Stepline``. The engine must
learn at once of what they change (a create, an event, a pause, a terminate), as engines on
PostgreSQL learn it through ``NOTIFY``. So the engine's process listens on a Unix datagram
socket whose address follows from the database's path, and the other processes send their
notices there. A notice that finds no engine is dropped: an engine looks at everything
runnable when it starts.

None may be lost while an engine runs: a lost pause lets its runner run on to the end, a
lost resume leaves it parked. The engine reads its socket on its event loop, and the kernel
queues only a few datagrams for it meanwhile (10 on Linux by default), while one group
commit of many pauses or events publishes all their notices at once. So a sender puts all
the notices of one loop turn into one datagram, in order, and when the engine's queue is
full it keeps them and sends them again shortly, in the same order.

The socket lies beside the database (``<database>-engine.sock``), so that reaching it takes
the same folder permissions as the database. Where that path is too long for a socket address
(about 100 bytes), it lies in a folder of the user's own in the temporary directory instead,
named by a hash of the database's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from stepline.errors import ConfigError
from stepline.store.port import Notice, notice_from_object, notice_to_json
from stepline.store.sqlite_engine_lock import beside_database

__all__ = ["NoticeInbox", "NoticeSender", "socket_path"]

log = logging.getLogger("stepline.store.sqlite")

_MAX_ADDRESS = 100
"""Bytes of a socket path that every system takes (Linux takes 107, macOS 103)."""
_MAX_DATAGRAM = 65_536
"""Bytes of one datagram: the notices of a loop turn, as many as fit."""
_RETRY_FIRST = 0.001
_RETRY_MAX = 0.1
"""Seconds between tries to send to an engine whose queue is full: from the first, doubling
up to the most."""
_CLOSE_WAIT = 1.0
"""Seconds a closing sender keeps trying to hand over the notices it still holds."""
_WAKE = notice_to_json(Notice("wake"))


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
    """Make ``folder`` this user's alone, or refuse one that someone else made (whoever owns
    it could read the notices, or bind the socket first)."""
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except FileExistsError:
        pass  # not a folder (a file, a dangling link): refused below
    found = os.lstat(folder)
    if stat.S_ISDIR(found.st_mode) and found.st_uid == os.getuid():
        os.chmod(folder, 0o700)
        return
    what = "folder" if stat.S_ISDIR(found.st_mode) else "path"
    raise ConfigError(
        f"the engine's notice socket goes in {folder} (the database's path is too long for a "
        f"socket beside it), but that {what} is not this user's (uid {os.getuid()}): remove "
        "it, or give the database a shorter path"
    )


class NoticeInbox:
    """The engine's side: the socket, read on the event loop, while the engine holds the file
    (so no other process binds it; one left by a crashed engine is removed first).

    ``database``: the socket takes its read and write permissions, as whoever may change the
    database may tell its engine so (an API run as another user of the database's group).
    That holds beside the database only: the folder used for a path too long for a socket is
    each user's own, so there only the engine's user reaches it."""

    def __init__(
        self, path: Path, deliver: Callable[[Notice], None], *, database: Path | None = None
    ) -> None:
        self.path = path
        self.database = database
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
            if self.database is not None and self.database.exists():
                os.chmod(self.path, stat.S_IMODE(os.stat(self.database).st_mode) & 0o666)
            loop.add_reader(sock.fileno(), self._receive)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop = sock, loop

    def _receive(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            try:
                raw = json.loads(data)
            except ValueError:
                log.warning("ignoring a malformed notice: %r", data[:200])
                continue
            for item in raw if isinstance(raw, list) else [raw]:
                try:
                    notice = notice_from_object(item)
                except (ValueError, KeyError, TypeError):
                    log.warning("ignoring a malformed notice: %r", item)
                    continue
                self._deliver(notice)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:  # its folder turned read-only, say: the stop goes on
            log.warning(
                "could not remove the engine's notice socket %s (%s); the next engine on this "
                "database replaces it",
                self.path,
                exc.strerror or exc,
            )


class NoticeSender:
    """Another process's side: one unbound socket; the notices of a loop turn as one datagram
    (a JSON list), sent again shortly while the engine's queue is full."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._pending: list[str] = []
        """Notices not sent yet, as text, oldest first."""
        self._wake_pending = False
        """A ``wake`` is among them: another adds nothing (a wake makes the engine look at
        everything runnable)."""
        self._flush_handle: asyncio.Handle | None = None
        self._delay = 0.0

    def send(self, notice: Notice) -> None:
        """Send ``notice`` at the end of this loop turn (at once, outside an event loop)."""
        if notice.kind == "wake":
            if self._wake_pending:
                return
            self._wake_pending = True
        self._pending.append(notice_to_json(notice))
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send what is pending, in order; when the engine's queue is full, try again later."""
        self._flush_handle = None
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        address = os.fspath(self.path)
        while self._pending:
            count, size = 0, 1
            for text in self._pending:
                if count and size + len(text) + 1 > _MAX_DATAGRAM:
                    break
                count, size = count + 1, size + len(text) + 1
            data = ("[" + ",".join(self._pending[:count]) + "]").encode()
            try:
                self._sock.sendto(data, address)
            except BlockingIOError:
                self._retry_later()
                return
            except (FileNotFoundError, ConnectionRefusedError):
                # No engine is running: the next one to start looks at everything.
                self._drop(len(self._pending))
            except OSError as exc:
                log.warning(
                    "could not tell the engine of %d changes (%s): it acts on them at its "
                    "next look for work",
                    count,
                    exc,
                )
                self._drop(count)
            else:
                self._drop(count)
        self._delay = 0.0

    def _drop(self, count: int) -> None:
        """Forget the oldest ``count`` pending notices: sent, or given up on."""
        del self._pending[:count]
        if self._wake_pending:
            self._wake_pending = _WAKE in self._pending

    def _retry_later(self) -> None:
        self._delay = min(max(self._delay * 2, _RETRY_FIRST), _RETRY_MAX)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # outside a loop: the next send, or close, tries again
        self._flush_handle = loop.call_later(self._delay, self._flush)

    def close(self) -> None:
        """Hand over what is still pending (for up to a second), then close the socket."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        deadline = time.monotonic() + _CLOSE_WAIT
        while self._pending:
            self._flush()
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            if not self._pending:
                break
            if time.monotonic() >= deadline:
                log.warning(
                    "the engine did not take %d notices before this process closed the "
                    "database: it acts on those changes when it next looks for work (at its "
                    "next timer, notice or start)",
                    len(self._pending),
                )
                self._drop(len(self._pending))
                break
            time.sleep(_RETRY_FIRST)
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
