"""What the PostgreSQL store says when it cannot open, at the start of a process.

Once running, a lost server is an outage the engine rides out (``StoreUnavailable``, a 503).
At start, the same failure is most often a wrong URL, a server not started, a user without
privileges: said for the person who started the process, with the URL (its password hidden),
what PostgreSQL answered and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlparse

import asyncpg

from stepline.errors import DatabaseNotWritable, StoreUnavailable
from stepline.store.migrations import Migration

__all__ = ["cannot_migrate", "cannot_open", "public_url", "read_only_server", "said_at_start"]

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


@contextmanager
def said_at_start(dsn: str) -> Iterator[None]:
    """Raise what :func:`cannot_open` says of an error met in the block, from that error."""
    try:
        yield
    except Exception as error:
        said = cannot_open(dsn, error)
        if said is error:
            raise
        raise said from error


def cannot_open(dsn: str, error: BaseException) -> BaseException:
    """``error``, met while opening the database at ``dsn``, said with the URL, the cause and
    what to do: a server that could not be reached, as :class:`StoreUnavailable`; a user that
    may not use Stepline's tables, or a server that takes no writes, as
    :class:`DatabaseNotWritable`. Any other error as it is."""
    url = public_url(dsn)
    if isinstance(error, StoreUnavailable):
        cause = error.__cause__ or error
        said = StoreUnavailable(
            f"cannot connect to PostgreSQL at {url}: {_why(cause)}; {_what_to_do(dsn, cause)}"
        )
        said.__cause__ = cause
        return said
    if isinstance(error, asyncpg.InsufficientPrivilegeError):
        # Not a migration's (cannot_migrate says those): the tables are there, and the user
        # may not use them.
        user = _user(dsn)
        return DatabaseNotWritable(
            f"cannot use Stepline's tables in PostgreSQL database {url}: {error}; grant this "
            f"user what an application role needs (GRANT SELECT, INSERT, UPDATE, DELETE ON ALL "
            f"TABLES IN SCHEMA public TO {user}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public "
            f"TO {user})"
        )
    if isinstance(error, asyncpg.ReadOnlySQLTransactionError):
        return read_only_server(dsn, str(error))
    return error


def read_only_server(dsn: str, why: str) -> DatabaseNotWritable:
    """A server that takes no writes (a standby, or ``default_transaction_read_only``)."""
    return DatabaseNotWritable(
        f"cannot write to PostgreSQL database {public_url(dsn)}: {why}; point Stepline at the "
        "primary server, not a standby, or turn the database's default_transaction_read_only off"
    )


def cannot_migrate(
    dsn: str, error: BaseException, pending: Sequence[Migration], *, schema: str | None
) -> DatabaseNotWritable:
    """A user without the privilege to apply the ``pending`` migrations (``error`` said so).

    ``schema``: where the tables would go when there are none yet, else None. A user that may
    only read and write the tables (the usual application role) gets them applied by one
    that may: ``stepline migrate``, run as the database's owner, say at each deploy.
    """
    url = public_url(dsn)
    migrate = f"stepline migrate --database {_with_user(dsn, '<owner>')}"
    if schema is not None:
        return DatabaseNotWritable(
            f"cannot set up Stepline's tables in PostgreSQL database {url}: {error}; create "
            f"them with {migrate}, run as the database's owner or another role that may; or let "
            "this user create them "
            f"(GRANT CREATE ON SCHEMA {_identifier(schema)} TO {_user(dsn)})"
        )
    names = [f"{m.number:04d}_{m.name}" for m in pending]
    listed = names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}"
    return DatabaseNotWritable(
        f"cannot apply Stepline's pending schema migrations ({listed}) to PostgreSQL "
        f"database {url}: {error}; apply them with {migrate}, run as the owner of Stepline's "
        "tables"
    )


def _with_user(dsn: str, user: str) -> str:
    """:func:`public_url` of ``dsn`` with another user in it."""
    url = public_url(dsn)
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{user}@{rest.rpartition('@')[2]}"


def _user(dsn: str) -> str:
    """The URL's user, for a statement to copy."""
    user = urlparse(dsn).username
    return _identifier(user) if user else "<user>"


def _identifier(name: str) -> str:
    """``name`` as PostgreSQL reads it back in a statement to copy: quoted when it must be."""
    if name.isidentifier() and name == name.lower() and name.isascii():
        return name
    return '"' + name.replace('"', '""') + '"'


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
