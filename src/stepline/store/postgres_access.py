"""What the PostgreSQL store says when it cannot open, at the start of a process.

Once running, a lost server is an outage the engine rides out (``StoreUnavailable``, a 503).
At start, the same failure is most often a wrong URL, a server not started, a user without
privileges: said for the person who started the process, with the URL (its password hidden),
what PostgreSQL answered and what to do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

import asyncpg

from stepline.errors import ConfigError, DatabaseNotWritable, StoreUnavailable
from stepline.store.migrations import Migration

__all__ = [
    "cannot_migrate",
    "cannot_open",
    "cannot_use_tables",
    "may_quote_password",
    "name_taken",
    "no_connect_right",
    "no_schema",
    "not_stepline_table",
    "public_url",
    "read_only_server",
    "refuse_misread_address",
    "refuse_unencoded_credentials",
    "refused_setting",
    "said_at_start",
    "tables_elsewhere",
    "unreadable_url",
]

_CHECK_SERVER = "check that PostgreSQL is running there and that the URL's host and port are right"


_ENDS_AUTHORITY = re.compile(r"[/?#]")
_QUERY = re.compile(r"\?[A-Za-z_][A-Za-z0-9_.]*=")
"""A query as a URL's ends it: ``?`` and a parameter's name (``?sslmode=``, ``?password=``)."""
_MUST_BE_ENCODED = frozenset("@/?#[]")
"""What a user or password may not hold as it is: each ends or splits the URL's authority
(asyncpg's parser and Python's cut it at the first ``/``, ``?`` or ``#`` and take the first
``@`` as the end of the password; Python's refuses a ``[`` or ``]`` outside an IPv6 host)."""


@dataclass(frozen=True, slots=True)
class _Url:
    """A PostgreSQL URL as written, cut where a person who wrote a password into it meant."""

    scheme: str
    credentials: str | None = None
    """The user and password, up to the last ``@``; None if there are none."""
    where: str | None = None
    """The hosts and the database; None when they cannot be told apart from a password."""
    query: str = ""
    """What follows the ``?`` after ``where``, as written."""

    @property
    def user(self) -> str:
        return (self.credentials or "").partition(":")[0]


def _read_url(dsn: str) -> _Url:
    """``dsn`` read so that no part of a password is taken for anything else: the user and
    password run to the last ``@``, not the first ``/``, ``?`` or ``#``. But an ``@`` in a
    query may be a value's (``?password=p@ss``) or end a password that holds ``?name=``:
    either way what follows it may be a password, and the hosts and database are not known."""
    scheme, slashes, rest = dsn.partition("://")
    if not slashes:  # postgresql:/db?host=..., which asyncpg reads too: nothing here is known
        return _Url(dsn.partition(":")[0])
    at = rest.rfind("@")
    query = _QUERY.search(rest)
    if at > _ends(rest, _ENDS_AUTHORITY) and query is not None and query.start() < at:
        return _Url(scheme)
    after = rest[at + 1 :]
    where, _, query_text = after.partition("#")[0].partition("?")
    return _Url(scheme, rest[:at] if at >= 0 else None, where, query_text)


def refuse_misread_address(dsn: str) -> None:
    """Refuse a URL whose server asyncpg would take for another. A port past 65535: a socket
    refuses it with an ``OverflowError`` (a traceback), and uvloop's takes it modulo 65536,
    connecting to another port than the one the URL names (70968 to 5432); the same for
    ``PGPORT``, which asyncpg reads when the URL names no port. And a ``?port=`` or
    ``?host=`` beside hosts in the URL, which asyncpg does not read: the server it names was
    not the one connected to (port 5432, or ``PGPORT``'s)."""
    url = _read_url(dsn)
    hosts = (url.where or "").partition("/")[0]
    named = []
    for host in hosts.split(","):
        _, colon, port = host.rpartition("]")[2].rpartition(":")  # past an IPv6 address
        if colon and port:
            named.append(port)
    query = parse_qs(url.query, keep_blank_values=True)
    for name in ("host", "port"):
        if hosts and name in query:
            raise ConfigError(
                f"cannot use the PostgreSQL URL {public_url(dsn)}: its ?{name}= is not read "
                "when the URL names a host; name hosts and ports before the database "
                "(postgresql://host:5433/database)"
            )
    for value in query.get("port", []):
        named.extend(value.split(","))
    if named:
        _refuse_past_65535(named, f"the PostgreSQL URL {public_url(dsn)}", "correct the URL")
    elif os.environ.get("PGPORT"):
        _refuse_past_65535(os.environ["PGPORT"].split(","), "PGPORT", "correct PGPORT")


def _refuse_past_65535(ports: list[str], source: str, fix: str) -> None:
    for port in ports:
        if port.strip().isdigit() and int(port) > 65535:
            raise ConfigError(f"cannot use {source}: port {port.strip()} is past 65535; {fix}")


def _ends(text: str, ending: re.Pattern[str]) -> int:
    found = ending.search(text)
    return found.start() if found else len(text)


def _database(dsn: str) -> str:
    """The URL's database, as written; empty if it names none (or cannot be told)."""
    return (_read_url(dsn).where or "").partition("/")[2]


def public_url(dsn: str) -> str:
    """``dsn`` without its password and its query (which may hold one), whatever the password
    holds. Several hosts (``h1:5432,h2:5433``) and ``[::1]`` are kept as written."""
    url = _read_url(dsn)
    if url.where is None:
        return f"{url.scheme}://***"
    user = url.user
    if user and ":" in (url.credentials or ""):
        user += ":***"
    return f"{url.scheme}://{user}{'@' if user else ''}{url.where}"


def refuse_unencoded_credentials(dsn: str) -> None:
    """Refuse a URL whose user or password holds a character that every parser reads as the
    end of it: part of the password would be taken for the host, the port or the database
    (``postgresql://app:12/34@db/x`` connects to host ``app``, port 12), or fail to parse
    with it in the message."""
    url = _read_url(dsn)
    if url.credentials is not None and _MUST_BE_ENCODED & set(url.credentials):
        raise ConfigError(
            f"cannot use the PostgreSQL URL {public_url(dsn)}: a password (or user) that holds "
            "@, /, ?, #, [ or ] must be percent-encoded in the URL, each as %40, %2F, %3F, %23, "
            "%5B or %5D, else part of it is read as the host, the port or the database"
        )


def may_quote_password(dsn: str) -> bool:
    """Whether what a parser says of ``dsn`` may quote a piece of its password: its hosts
    cannot be told apart from one (an ``@`` in its query)."""
    return _read_url(dsn).where is None


def unreadable_url(dsn: str, error: ValueError) -> ConfigError:
    """A URL that asyncpg could not read (a port that is no number, an unknown ``sslmode``),
    said with asyncpg's words, unless they may quote a piece of its password
    (:func:`may_quote_password`): then raise it from None, not from ``error``."""
    why = (
        ": asyncpg could not read it (percent-encode a password that holds @, /, ? or #)"
        if may_quote_password(dsn)
        else f": {error}"
    )
    return ConfigError(f"cannot use the PostgreSQL URL {public_url(dsn)}{why}; correct the URL")


def refused_setting(dsn: str, error: BaseException) -> ConfigError:
    """A parameter of the URL's query that PostgreSQL refused at login: asyncpg sends those
    it does not know itself as server settings, so a misspelt one (``?pool_sise=5``) names no
    setting, and a setting's value may be one it cannot take. Said with PostgreSQL's words,
    unless they may quote a piece of the password (:func:`may_quote_password`)."""
    why = "" if may_quote_password(dsn) else f" ({error})"
    return ConfigError(
        f"cannot use the PostgreSQL URL {public_url(dsn)}: PostgreSQL refused a parameter of "
        f"its query as a server setting{why}; correct the URL"
    )


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
        # Not at login (no_connect_right says those), nor a migration's (cannot_migrate): the
        # tables are there, and the user may not use them. Where they are is known when the
        # start found them.
        return cannot_use_tables(dsn, error, schema=None)
    if isinstance(error, asyncpg.ReadOnlySQLTransactionError):
        return read_only_server(dsn, str(error))
    return error


def no_connect_right(dsn: str, error: BaseException) -> DatabaseNotWritable:
    """A user refused at login for want of the right to connect to the database: told apart
    by where it came (a new connection), not by PostgreSQL's words, which ``lc_messages`` may
    put in another language."""
    name = _database(dsn)
    database = _identifier(name) if name else "<database>"
    return DatabaseNotWritable(
        f"cannot connect to PostgreSQL database {public_url(dsn)}: {error}; grant this user the "
        f"right to connect (GRANT CONNECT ON DATABASE {database} TO {_user(dsn)})"
    )


def cannot_use_tables(dsn: str, error: BaseException, *, schema: str | None) -> DatabaseNotWritable:
    """A user that may not read or write Stepline's tables in ``schema`` (None: not known):
    what an application role is granted, on the tables there and on those later migrations
    create (``GRANT ... ON ALL TABLES`` covers only the tables there now)."""
    user = _user(dsn)
    where = _identifier(schema) if schema else "<schema>"
    defaults = f"ALTER DEFAULT PRIVILEGES FOR ROLE <owner> IN SCHEMA {where} GRANT"
    return DatabaseNotWritable(
        f"cannot use Stepline's tables in PostgreSQL database {public_url(dsn)}: {error}; grant "
        f"this user what an application role needs (GRANT SELECT, INSERT, UPDATE, DELETE ON ALL "
        f"TABLES IN SCHEMA {where} TO {user}; GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "
        f"{where} TO {user}), and on the tables later migrations create ({defaults} SELECT, "
        f"INSERT, UPDATE, DELETE ON TABLES TO {user}; {defaults} USAGE, SELECT ON SEQUENCES TO "
        f"{user})"
    )


def tables_elsewhere(dsn: str, *, schema: str, found_in: str) -> ConfigError:
    """Stepline's tables are in ``found_in``, further down the user's search_path than
    ``schema``, where its start would create new, empty ones (a schema named for the user,
    first on PostgreSQL's default ``"$user", public``, while the owner migrated ``public``)."""
    user = _user(dsn)
    there = _identifier(found_in)
    return ConfigError(
        f"Stepline's tables in PostgreSQL database {public_url(dsn)} are in schema {there}, "
        f"but this user's search_path puts schema {_identifier(schema)} first, where Stepline "
        f"would start again with new, empty tables: make every role that runs Stepline use "
        f"one schema (search_path={found_in} in the URL's query, or ALTER ROLE {user} SET "
        f"search_path = {there})"
    )


def not_stepline_table(dsn: str, *, schema: str) -> ConfigError:
    """A ``schema_migrations`` that is not Stepline's (no ``applied_on``: Rails', Ecto's or
    golang-migrate's) in ``schema``, where Stepline would keep its own."""
    there = _identifier(schema)
    return ConfigError(
        f"cannot use PostgreSQL database {public_url(dsn)}: table {there}.schema_migrations is "
        f"not Stepline's (another tool's, such as Rails', Ecto's or golang-migrate's: it has no "
        f"applied_on column), and schema {there}, first on this user's search_path, is where "
        f"Stepline would keep its own: {_own_schema(dsn)}"
    )


def name_taken(dsn: str, error: BaseException, migration: str, *, schema: str) -> ConfigError:
    """Migration ``migration`` met a table, index or type of its name in ``schema`` that it
    did not make: another application's (its ``workflows`` table, say)."""
    return ConfigError(
        f"cannot use PostgreSQL database {public_url(dsn)}: schema migration {migration} found "
        f"a name it creates already taken in schema {_identifier(schema)} ({error}), by "
        f"another application's table, index or type, not Stepline's: {_own_schema(dsn)} "
        "(nothing of that migration was applied)"
    )


def _own_schema(dsn: str) -> str:
    return (
        "give Stepline a schema of its own, for every role that runs it (CREATE SCHEMA "
        "stepline, then search_path=stepline in the URL's query, or "
        f"ALTER ROLE {_user(dsn)} SET search_path = stepline)"
    )


def no_schema(dsn: str, search_path: str) -> ConfigError:
    """No schema on the user's search_path exists, or none it may use."""
    return ConfigError(
        f"cannot use PostgreSQL database {public_url(dsn)}: no schema on this user's "
        f"search_path ({search_path}) exists or may be used, so there is nowhere to find or "
        "create Stepline's tables: name one that does (search_path=<schema> in the URL's query, "
        f"or ALTER ROLE {_user(dsn)} SET search_path = <schema>), or create it"
    )


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
    names = [m.label for m in pending]
    listed = names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}"
    return DatabaseNotWritable(
        f"cannot apply Stepline's pending schema migrations ({listed}) to PostgreSQL "
        f"database {url}: {error}; apply them with {migrate}, run as the owner of Stepline's "
        "tables"
    )


def _with_user(dsn: str, user: str) -> str:
    """:func:`public_url` of ``dsn`` with another user in it, and its query as written but
    for a password: a command to copy needs the search_path, host or sslmode it names."""
    url = _read_url(dsn)
    kept = [
        pair
        for pair in url.query.split("&")
        if pair and "password" not in unquote(pair.partition("=")[0]).lower()
    ]
    query = "?" + "&".join(kept) if kept else ""
    return f"{url.scheme}://{user}@{url.where or '***'}{query}"


def _user(dsn: str) -> str:
    """The URL's user, for a statement to copy."""
    user = _read_url(dsn).user
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
        name = _database(dsn) or "<database>"
        return f"create it (createdb {name}), or correct the URL"
    if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
        return "check the user and password in the URL, and that the server lets them in"
    if isinstance(cause, asyncpg.TooManyConnectionsError):
        return "the server takes no more connections: raise its max_connections or lower pool_size"
    if isinstance(cause, asyncpg.CannotConnectNowError):
        return "the server is starting or stopping: start again in a moment"
    return _CHECK_SERVER
