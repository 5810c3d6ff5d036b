"""``open_store``: which database a URL names, and the URLs it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepline.errors import ConfigError
from stepline.store.open import open_store
from stepline.store.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/s.sqlite3", "data/s.sqlite3"),
        ("sqlite:////tmp/s.sqlite3", "/tmp/s.sqlite3"),
        ("data/s.sqlite3", "data/s.sqlite3"),
        ("/tmp/s.sqlite3", "/tmp/s.sqlite3"),
    ],
)
def test_sqlite_urls_and_plain_paths_name_a_file(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    assert store.path == Path(path)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("sqlite:r3.sqlite3", "is not a database URL"),
        ("postgresql:host/db", "is not a database URL"),
        ("sqlite://", "names no file"),
        ("mysql://host/db", "unsupported database URL"),
        ("postgresql://host/db?pool_size=0", "pool_size must be a whole number above 0"),
    ],
)
def test_urls_that_name_no_database_are_refused(url: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresq://app:s3cret@db/x", "'postgresq://***@db/x'"),  # a scheme's typo
        ("mysql://root:s3cret@db:3306/x", "'mysql://***@db:3306/x'"),
        ("postgresql:app:s3cret@db/x", "'postgresql:***@db/x'"),  # the slashes left out
        ("sqlite:app:s3cret@db", "'sqlite:***@db'"),
    ],
)
def test_a_refused_url_is_shown_without_its_password(url: str, shown: str) -> None:
    """These were said whole, password and all, in a message that goes to the log."""
    with pytest.raises(ConfigError) as refused:
        open_store(url)
    assert shown in str(refused.value)
    assert "s3cret" not in str(refused.value)
