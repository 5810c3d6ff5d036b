"""Open a store from a database URL: ``sqlite:///path`` (or a bare path), or
``postgresql://user@host:port/database`` (``postgres://`` too)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote_plus, urlparse

from stepline.errors import ConfigError
from stepline.store.port import Store
from stepline.store.sqlite import SqliteStore

__all__ = ["DEFAULT_DATABASE", "open_store"]

DEFAULT_DATABASE = "sqlite:///.stepline/stepline.sqlite3"
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_ENDS_PATH = re.compile(r"[?#]")


def open_store(url: str = DEFAULT_DATABASE, *, synchronous: str = "FULL") -> Store:
    """A store for ``url``, not yet opened (``await store.open()``).

    ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or a plain file path; or
    ``postgresql://user:password@host:5432/database`` with an optional ``pool_size=N``
    query parameter (connections per process, default 10). ``synchronous`` is SQLite's.
    """
    if "://" not in url:
        if url.partition(":")[0] in ("sqlite", *_POSTGRES_SCHEMES):
            # A URL with its slashes missing, not a file named "sqlite:..." to create.
            raise ConfigError(
                f"{_shown(url)!r} is not a database URL: use sqlite:///path/to/file.sqlite3 or "
                "postgresql://host/database"
            )
        return SqliteStore(Path(url), synchronous=synchronous)
    if url.partition("://")[0].lower() in _POSTGRES_SCHEMES:
        return _postgres_store(url)
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        _refuse_misread_sqlite(url)
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parsed.path
        if not path:
            raise ConfigError(f"{url!r} names no file: use sqlite:///path/to/file.sqlite3")
        return SqliteStore(Path(path), synchronous=synchronous)
    raise ConfigError(
        f"unsupported database URL {_shown(url)!r}: use sqlite:///path or postgresql://host/database"
    )


def _refuse_misread_sqlite(url: str) -> None:
    """A SQLite URL that would name another file than meant: one with a host (two slashes,
    ``sqlite://data/s.sqlite3``, dropped ``data`` and made ``/s.sqlite3``) or a query (taken
    into the file's name, ``s.sqlite3?mode=ro``)."""
    rest = url[len("sqlite://") :]
    host, _, path = rest.partition("/")
    if host:
        said = f"{_shown(url)!r} names a host"
        if not re.search(r"[@:?#]", host):  # else it may hold a password: no suggestion
            # localhost is this machine, as in a file:// URL: the path after it is absolute.
            meant = f"/{path}" if host.lower() == "localhost" else f"{host}/{path}"
            said += f", {host!r}, and SQLite has none: did you mean sqlite:///{meant}"
            raise ConfigError(
                f"{said} (three slashes before a relative path, four before an absolute one)?"
            )
        raise ConfigError(f"{said}, and SQLite has none: use sqlite:///path/to/file.sqlite3")
    if "?" in path:  # not shown: a query may hold what a log should not
        raise ConfigError(
            "a SQLite URL takes no query (what follows its '?'): name the file alone, "
            f"sqlite:///{path.partition('?')[0]}"
        )


def _shown(url: str) -> str:
    """``url`` as a refusal may show it: its scheme, hosts and path, without what may hold a
    password: anything before its last ``@``, and its query (``?password=``). An ``@`` after
    a ``?`` or ``#`` may be a query value's, with more of it after: then only the scheme."""
    scheme, slashes, rest = url.partition("://")
    if not slashes:
        scheme, slashes, rest = url.partition(":")
    before, at, after = rest.rpartition("@")
    if at and _ENDS_PATH.search(before):
        return f"{scheme}{slashes}***"
    return f"{scheme}{slashes}{'***@' if at else ''}{_ENDS_PATH.split(after, maxsplit=1)[0]}"


def _postgres_store(url: str) -> Store:
    from stepline.store.postgres import PostgresStore  # asyncpg only when asked for
    from stepline.store.postgres_access import (
        refuse_misread_address,
        refuse_unencoded_credentials,
    )

    # Before any parsing: a password with a "/" or "?" would be cut, and its query mangled.
    refuse_unencoded_credentials(url)
    refuse_misread_address(url)
    # The rest goes to asyncpg as written: parsed and put together again, the URL lost the
    # "//" of postgresql:///db?host=/run/postgresql, and its query's "@" was encoded, the one
    # by which a password that holds "?name=" is told apart from the hosts (the URL shown
    # then held the password).
    head, hash_, fragment = url.partition("#")
    base, _, query = head.partition("?")
    pool_size = "10"
    kept = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if unquote_plus(name) == "pool_size":
            pool_size = unquote_plus(value)
        elif pair:
            kept.append(pair if equals else f"{pair}=")  # asyncpg refuses a name alone
    if not pool_size.isdigit() or int(pool_size) < 1:
        raise ConfigError(f"pool_size must be a whole number above 0, not {pool_size!r}")
    dsn = f"{base}{'?' if kept else ''}{'&'.join(kept)}{hash_}{fragment}"
    return PostgresStore(dsn, max_size=int(pool_size))
