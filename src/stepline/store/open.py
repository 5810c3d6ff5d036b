"""Open a store from a database URL: ``sqlite:///path`` (or a bare path), or
``postgresql://user@host:port/database`` (``postgres://`` too)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from stepline.errors import ConfigError
from stepline.store.port import Store
from stepline.store.sqlite import SqliteStore

__all__ = ["DEFAULT_DATABASE", "open_store"]

DEFAULT_DATABASE = "sqlite:///.stepline/stepline.sqlite3"
_POSTGRES_SCHEMES = ("postgresql", "postgres")


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
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parsed.path
        if not path:
            raise ConfigError(f"{url!r} names no file: use sqlite:///path/to/file.sqlite3")
        return SqliteStore(Path(path), synchronous=synchronous)
    raise ConfigError(
        f"unsupported database URL {_shown(url)!r}: use sqlite:///path or postgresql://host/database"
    )


def _shown(url: str) -> str:
    """``url`` as a refusal may show it: anything before its last ``@`` may hold a password."""
    before, at, after = url.rpartition("@")
    if not at:
        return url
    scheme, slashes, _ = before.partition("://")
    if not slashes:
        scheme, slashes = before.partition(":")[0], ":"
    return f"{scheme}{slashes}***@{after}"


def _postgres_store(url: str) -> Store:
    from stepline.store.postgres import PostgresStore  # asyncpg only when asked for
    from stepline.store.postgres_access import refuse_unencoded_credentials

    # Before any parsing: a password with a "/" or "?" would be cut, and its query mangled.
    refuse_unencoded_credentials(url)
    parsed = urlparse(url)
    query = dict(parse_qsl(parsed.query, keep_blank_values=True))
    pool_size = query.pop("pool_size", "10")
    if not pool_size.isdigit() or int(pool_size) < 1:
        raise ConfigError(f"pool_size must be a whole number above 0, not {pool_size!r}")
    dsn = urlunparse(parsed._replace(query=urlencode(query)))
    return PostgresStore(dsn, max_size=int(pool_size))
