"""Every connection the PostgreSQL store opens probes a silent peer, at both ends: a server
gone without a FIN or RST (a partition, a VM gone) is noticed within a minute, not when the
kernel gives up hours later, and the server notices a vanished Stepline the same way (its
locks and its connection slot freed). Over a Unix socket there is no such peer: nothing to
set, and such a URL still works."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import asyncpg
import pytest

from stepline.store.postgres import PostgresStore

from .databases import opened_pool

pytestmark = pytest.mark.postgres

PROBING = {"SO_KEEPALIVE": True, "TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}
"""A dead peer is given up on after 30 s idle and three probes 10 s apart."""
UNIX_SOCKET = Path("/var/run/postgresql/.s.PGSQL.5432")


def client_probing(conn: asyncpg.Connection) -> dict[str, object]:
    """The keepalive options of ``conn``'s socket, read back from the kernel."""
    sock = conn._transport.get_extra_info("socket")
    assert sock.family in (socket.AF_INET, socket.AF_INET6)
    return {
        "SO_KEEPALIVE": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
        "TCP_KEEPIDLE": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        "TCP_KEEPINTVL": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        "TCP_KEEPCNT": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    }


async def server_probing(conn: asyncpg.Connection) -> tuple[str, ...]:
    row = await conn.fetchrow(
        "SELECT current_setting('tcp_keepalives_idle'), "
        "current_setting('tcp_keepalives_interval'), current_setting('tcp_keepalives_count')"
    )
    return tuple(row)


async def probing(conn: asyncpg.Connection) -> tuple[dict[str, object], tuple[str, ...]]:
    """What ``conn`` probes with: at this end, and at the server's."""
    return client_probing(conn), await server_probing(conn)


BOTH_ENDS = (PROBING, ("30", "10", "3"))


def with_url(url: str, **parts: str) -> str:
    return urlunparse(urlparse(url)._replace(**parts))


async def test_pooled_connections_probe_a_silent_server(postgres_database: str) -> None:
    async with opened_pool(postgres_database) as database:
        assert await database.run(probing) == BOTH_ENDS


@pytest.mark.parametrize("timed", [True, False])
async def test_connections_of_their_own_probe_a_silent_server(
    postgres_database: str, timed: bool
) -> None:
    """Migrations' (untimed: a DDL statement waited on a dead server for as long as the
    kernel kept the connection) and the probe's once the database was lost."""
    async with opened_pool(postgres_database) as database:
        conn = await database.connect(timed=timed)
        try:
            assert await probing(conn) == BOTH_ENDS
        finally:
            await conn.close()


async def test_the_listen_connection_probes_a_silent_server(postgres_database: str) -> None:
    store = PostgresStore(postgres_database)
    await store.open()
    try:
        conn = store._listener._conn
        assert conn is not None
        assert await probing(conn) == BOTH_ENDS
    finally:
        await store.close()


async def test_server_settings_chosen_in_the_url_are_kept(postgres_database: str) -> None:
    async with opened_pool(with_url(postgres_database, query="tcp_keepalives_idle=45")) as db:
        assert await db.run(server_probing) == ("45", "10", "3")


@pytest.mark.skipif(not UNIX_SOCKET.exists(), reason=f"no PostgreSQL socket at {UNIX_SOCKET}")
async def test_a_unix_socket_url_still_works(postgres_database: str) -> None:
    user = urlparse(postgres_database).username
    over_socket = with_url(postgres_database, netloc=f"{user}@", query=f"host={UNIX_SOCKET.parent}")

    async def family_and_setting(conn: asyncpg.Connection) -> tuple[int, str]:
        sock = conn._transport.get_extra_info("socket")
        return sock.family, await conn.fetchval("SHOW tcp_keepalives_idle")

    async with opened_pool(over_socket) as db:
        assert await db.run(family_and_setting) == (socket.AF_UNIX, "0")
        own = await db.connect()
        await own.close()
