"""Open a store from a database URL: ``sqlite:///path`` (or a bare path)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from stepline.errors import ConfigError
from stepline.store.port import Store
from stepline.store.sqlite import SqliteStore

__all__ = ["DEFAULT_DATABASE", "open_store"]

DEFAULT_DATABASE = "sqlite:///.stepline/stepline.sqlite3"


def open_store(url: str = DEFAULT_DATABASE, *, synchronous: str = "FULL") -> Store:
    """A store for ``url``, not yet opened (``await store.open()``).

    ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or a plain file path.
    """
    if "://" not in url:
        return SqliteStore(Path(url), synchronous=synchronous)
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parsed.path
        if not path:
            raise ConfigError(f"{url!r} names no file: use sqlite:///path/to/file.sqlite3")
        return SqliteStore(Path(path), synchronous=synchronous)
    raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///path")
