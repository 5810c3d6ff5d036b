"""Notices between engines over LISTEN/NOTIFY.

``publish`` sends ``NOTIFY stepline_notices, '{"kind": ..., "pk": ..., "owner": ...,
"generation": ...}'`` through the pool. Each store keeps one connection of its own that
LISTENs and hands every notice to the subscribed handlers, the notices of this process
included: a notice reaches a handler once, through the database. When that connection is
lost, notices published meanwhile are delivered here directly, and once it is back the
handlers get a ``wake`` so that engines look for work they may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from stepline.store.port import Notice, notice_from_json
from stepline.store.postgres_queries import NOTICE_CHANNEL

__all__ = ["NoticeListener"]

log = logging.getLogger("stepline.store.postgres")

_KEEPALIVE_S = 5.0
_MAX_BACKOFF_S = 2.0


class NoticeListener:
    """One LISTEN connection, kept alive and reconnected, feeding the handlers."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self._handlers: list[Callable[[Notice], None]] = []
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed() and not self._lost.is_set()

    def subscribe(self, handler: Callable[[Notice], None]) -> None:
        self._handlers.append(handler)

    def unsubscribe(self, handler: Callable[[Notice], None]) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.remove(handler)

    async def start(self) -> None:
        """Connect and LISTEN (raising if the database cannot be reached), then keep at it."""
        await self._listen()
        self._task = asyncio.create_task(self._keep_listening(), name="stepline-postgres-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._drop()

    def deliver(self, notice: Notice) -> None:
        """Hand ``notice`` to every handler, here and now."""
        for handler in list(self._handlers):
            try:
                handler(notice)
            except Exception:
                log.exception("notice handler failed on %s", notice)

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            self._lost.clear()
            conn.add_termination_listener(self._on_terminated)
            await conn.add_listener(NOTICE_CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()

    def _on_terminated(self, conn: asyncpg.Connection) -> None:
        self._lost.set()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            notice = notice_from_json(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed notice: %r", payload)
            return
        self.deliver(notice)

    async def _keep_listening(self) -> None:
        while True:
            await self._until_lost()
            log.warning("the LISTEN connection to PostgreSQL was lost; reconnecting")
            await self._drop()
            delay = 0.05
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._listen()
                except Exception as exc:
                    log.debug("LISTEN reconnect failed: %s", exc)
                    delay = min(delay * 2, _MAX_BACKOFF_S)
                    continue
                break
            log.warning("listening to PostgreSQL notices again")
            self.deliver(Notice("wake"))  # notices sent while we were away are gone

    async def _until_lost(self) -> None:
        """Return once the connection is gone: closed by the server, or silent to a probe."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), _KEEPALIVE_S)
                return
            conn = self._conn
            if conn is None or conn.is_closed():
                return
            try:
                await conn.fetchval("SELECT 1", timeout=_KEEPALIVE_S)
            except Exception as exc:
                log.debug("LISTEN connection probe failed: %s", exc)
                return
