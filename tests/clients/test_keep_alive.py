"""A client's pooled connection is still open when the client reuses it: the server keeps an idle
connection longer than the clients and proxies in front of it keep theirs, so that they are the
ones to close it.

The other way round, the server closes a connection just as a request goes out on it, and that
request gets a reset or a disconnect without an answer (``httpx.ReadError``), and the server logs
nothing. httpx and the cloudflare SDK drop a connection after it has idled for 5 s, which was
also how long uvicorn kept one by default. (The SDK retries the request, but the retry adds at
least half a second.)"""

from __future__ import annotations

import http.client
import time

import cloudflare
import httpx
import pytest

from tests.clients.server import RunningServer

pytestmark = pytest.mark.clients

CLIENT_IDLE_S = max(
    httpx.Limits().keepalive_expiry or 0.0,
    cloudflare.DEFAULT_CONNECTION_LIMITS.keepalive_expiry or 0.0,
)
"""How long the Python clients keep an idle connection before they drop it."""


def test_a_connection_idle_as_long_as_a_client_keeps_one_still_answers(
    server: RunningServer,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        first.read()
        assert first.status == 200 and not first.will_close
        pooled = connection.sock
        time.sleep(CLIENT_IDLE_S + 0.5)
        # The same socket: http.client opens no new connection while it holds one.
        connection.request("GET", "/healthz")
        assert connection.sock is pooled
        again = connection.getresponse()  # the server had closed it: RemoteDisconnected
        again.read()
        assert again.status == 200
    finally:
        connection.close()
