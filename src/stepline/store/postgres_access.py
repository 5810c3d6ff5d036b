"""What the PostgreSQL store says when it cannot open, at the start of a process.

Once running, a lost server is an outage the engine rides out (``StoreUnavailable``, a 503).
At start, the same failure is most often a wrong URL, a server not started, a user without
privileges: said for the person who started the process, with the URL (its password hidden),
what PostgreSQL answered and what to do.
"""

from __future__ import annotations

from urllib.parse import urlparse

import asyncpg

from stepline.errors import DatabaseNotWritable, StoreUnavailable

__all__ = ["cannot_open", "public_url"]

_CHECK_SERVER = "check that PostgreSQL is running there and that the URL's host and port are right"


def public_url(dsn: str) -> str:
    """``dsn`` without its password and its query (which may hold one)."""
    parsed = urlparse(dsn)
    user = parsed.username or ""
    if user and parsed.password is not None:
        user += ":***"
    # As written, not parsed: several hosts (``h1:5432,h2:5433``) or ``[::1]`` are valid.
    hosts = parsed.netloc.rpartition("@")[2]
    return f"{parsed.scheme}://{user}{'@' if user else ''}{hosts}{parsed.path}"


def cannot_open(dsn: str, error: BaseException) -> BaseException:
    """``error``, met while opening the database at ``dsn``, said with the URL, the cause and
    what to do: a server that could not be reached, as :class:`StoreUnavailable`; a user or a
    server that may not create Stepline's tables, as :class:`DatabaseNotWritable`. Any other
    error as it is."""
    url = public_url(dsn)
    if isinstance(error, StoreUnavailable):
        cause = error.__cause__ or error
        said = StoreUnavailable(
            f"cannot connect to PostgreSQL at {url}: {_why(cause)}; {_what_to_do(dsn, cause)}"
        )
        said.__cause__ = cause
        return said
    if isinstance(error, asyncpg.InsufficientPrivilegeError):
        user = urlparse(dsn).username or "<user>"
        return DatabaseNotWritable(
            f"cannot set up Stepline's tables in PostgreSQL database {url}: {error}; start "
            "Stepline once as the database's owner, or grant this user what it lacks (for a "
            f"new database: GRANT CREATE ON SCHEMA public TO {user})"
        )
    if isinstance(error, asyncpg.ReadOnlySQLTransactionError):
        return DatabaseNotWritable(
            f"cannot set up Stepline's tables in PostgreSQL database {url}: {error}; point "
            "Stepline at the primary server, not a standby, or turn the database's "
            "default_transaction_read_only off"
        )
    return error


def _why(cause: BaseException) -> str:
    if isinstance(cause, TimeoutError):
        return "no answer in time"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror  # "Connection refused", without the "[Errno 111]"
    return str(cause) or type(cause).__name__


def _what_to_do(dsn: str, cause: BaseException) -> str:
    if isinstance(cause, asyncpg.InvalidCatalogNameError):
        name = urlparse(dsn).path.lstrip("/") or "<database>"
        return f"create it (createdb {name}), or correct the URL"
    if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
        return "check the user and password in the URL, and that the server lets them in"
    if isinstance(cause, asyncpg.TooManyConnectionsError):
        return "the server takes no more connections: raise its max_connections or lower pool_size"
    if isinstance(cause, asyncpg.CannotConnectNowError):
        return "the server is starting or stopping: start again in a moment"
    return _CHECK_SERVER
