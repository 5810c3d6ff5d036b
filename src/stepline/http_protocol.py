"""The HTTP/1.1 connection of ``stepline serve``: uvicorn's httptools protocol, with bounds on
what a client may make it hold before a request's head (its request line and headers) ends.

Uvicorn bounds neither. Without a token, one client could send a header of hundreds of
megabytes, which the parser gathers by copying it whole at each read (minutes of the event
loop for 200 MB, in which no request is answered and no step runs), or open connections that
never finish a head and hold them forever, each a file descriptor. Here a head is at most
:data:`MAX_HEAD_BYTES`, else the answer is 431 and the connection is closed; and once its first
byte has come, the rest must come within :data:`HEAD_TIMEOUT_S`, else the connection is closed.
A fresh connection waits for its first request as long as an idle one waits for the next.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from stepline.api.envelope import error_response
from stepline.errors import InvalidRequest

__all__ = ["HEAD_TIMEOUT_S", "MAX_HEAD_BYTES", "BoundedHttpToolsProtocol"]

MAX_HEAD_BYTES = 64 * 1024
"""A request line and headers of more are refused: nginx takes at most 32 KiB (four buffers of
8 KiB) and Cloudflare 32 KiB of headers; a client of this API sends under 1 KiB."""

HEAD_TIMEOUT_S = 10.0
"""How long the rest of a request's head may take once its first byte has come."""

_LINGER_S = 2.0
"""How long a refused connection's further bytes are read and dropped before it is closed:
closed with bytes unread, it is reset, and the reset can destroy the 431 before the client
has read it."""


def _too_large_response() -> bytes:
    error = InvalidRequest(f"the request line and headers are larger than {MAX_HEAD_BYTES} bytes")
    body = error_response(error).body
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"content-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (len(body), bytes(body))
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses a head over :data:`MAX_HEAD_BYTES` and closes a
    connection whose head takes over :data:`HEAD_TIMEOUT_S`."""

    _awaiting_head = True
    _head_bytes = 0
    _head_timer: asyncio.TimerHandle | None = None
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Uvicorn arms its idle timer only after a response; a connection that never sends
        # a byte would be held forever.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head:
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)
        super().data_received(data)
        # After the parser has read it, as the head's end may be in this read: the parser
        # copies an unfinished head whole at each read, so it gets no read past the bound.
        if (
            self._awaiting_head
            and self._head_bytes > MAX_HEAD_BYTES
            and not self.transport.is_closing()
        ):
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        super().on_message_complete()

    def _refuse_head(self) -> None:
        self._refused = True
        self._stop_head_timer()
        self._unset_keepalive_if_required()
        self.transport.write(_too_large_response())
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(_LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._awaiting_head and not self.transport.is_closing():
            self.transport.close()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
