"""TCP keepalive on every PostgreSQL connection Stepline opens, at both ends.

A peer gone without a FIN or RST (a network partition, a VM gone) leaves a connection that
nothing reads an end from: a client waiting for an answer (a migration's DDL, which has no
command timeout) or an idle pooled connection waits until the kernel gives up, hours later,
and the server keeps a vanished Stepline's session (its migration lock, its row locks, its
connection slot) as long. Neither asyncpg (0.32 sets only ``TCP_NODELAY``) nor asyncio's or
uvloop's transports turn keepalive on, and PostgreSQL's ``tcp_keepalives_*`` default to the
kernel's: two hours idle, then nine probes 75 s apart.

Stepline probes after 30 s idle, every 10 s, and gives up after 3 unanswered probes: a dead
peer is found within a minute, about when a pooled query's own timeout (60 s) would give up;
a probe costs an empty segment on an idle connection; three in a row are not one lost packet;
and 30 s idle keeps the connection's entry alive in a NAT or firewall that drops idle flows
after a few minutes (a frequent cause of such silent deaths). Over a Unix socket there is no
peer to lose: nothing is set on it, and the server ignores its settings there.
"""

from __future__ import annotations

import socket

import asyncpg

from stepline.store import postgres_queries as q

__all__ = ["IDLE_S", "INTERVAL_S", "PROBES", "keep_alive"]

IDLE_S = 30
"""Seconds a connection is idle before the first probe."""
INTERVAL_S = 10
"""Seconds between unanswered probes."""
PROBES = 3
"""Unanswered probes after which the connection is given up."""

_SERVER_KEEPALIVE = q.SERVER_KEEPALIVE.format(idle=IDLE_S, interval=INTERVAL_S, probes=PROBES)
_TCP_OPTIONS = (
    # Linux; macOS names the idle time TCP_KEEPALIVE. A platform without one keeps its default.
    ("TCP_KEEPIDLE", IDLE_S),
    ("TCP_KEEPALIVE", IDLE_S),
    ("TCP_KEEPINTVL", INTERVAL_S),
    ("TCP_KEEPCNT", PROBES),
)


async def keep_alive(conn: asyncpg.Connection, *, timeout: float | None = None) -> None:
    """Turn keepalive on at both ends of ``conn``, a new connection: on this process's
    socket, and on the server's for each ``tcp_keepalives_*`` setting nobody chose (one set
    in the URL's query, for the role or database, or in the server's configuration stays).
    ``timeout``: for the statement, on a connection without a command timeout."""
    # asyncpg gives a connection's socket to nobody; its transport is where asyncpg itself
    # reaches it (to set TCP_NODELAY). Should a later asyncpg keep it elsewhere, the server's
    # end is still set below, and the tests that read the socket's options back say so.
    transport = getattr(conn, "_transport", None)
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _TCP_OPTIONS:
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    try:
        await conn.execute(_SERVER_KEEPALIVE, timeout=timeout)
    except asyncpg.InsufficientPrivilegeError:
        # pg_settings revoked from PUBLIC (a hardened database): the server keeps its own
        # settings and this end still probes, not a connection refused for it.
        pass
